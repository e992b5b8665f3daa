"""Values no backend can store alike, and mistyped paths: one clear line, nothing left behind."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import pytest

from convostore import BotConfig, BotStore, ChannelInfo, ConfigError, InvalidInput, load_config
from convostore.engine import make_engine
from convostore.errors import DatabaseUnavailableError, SchemaError, StorageError

GENERAL = ChannelInfo.channel(channel_id=1, name="general")


async def _add(store: BotStore, channel: ChannelInfo = GENERAL, **fields: Any) -> None:
    values: dict[str, Any] = {
        "user_id": 1,
        "username": "alice",
        "role": "user",
        "content": "hi",
        **fields,
    }
    await store.add_message(channel, **values)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"content": "bad\ud800"},
            "content contains a lone surrogate ('\\ud800' at position 3), which is not valid UTF-8",
        ),
        (
            {"username": "\udfffx"},
            "username contains a lone surrogate ('\\udfff' at position 0), which is not valid "
            "UTF-8",
        ),
    ],
)
async def test_lone_surrogates_are_invalid_input(
    store: BotStore, fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidInput) as info:
        await _add(store, **fields)
    assert str(info.value) == message
    assert await store.history(GENERAL) == []


async def test_lone_surrogate_in_the_channel_name(store: BotStore) -> None:
    channel = ChannelInfo.channel(channel_id=2, name="chan\ud83d")
    with pytest.raises(InvalidInput, match=r"^channel name contains a lone surrogate"):
        await _add(store, channel)
    # A proper pair (an emoji) is fine.
    await _add(store, ChannelInfo.channel(channel_id=2, name="chan\U0001f600"))


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ({"score": math.nan}, "metadata['score'] is nan; JSON has no NaN or infinity"),
        ({"a": [1, {"b": math.inf}]}, "metadata['a'][1]['b'] is inf; JSON has no NaN or infinity"),
        ({"x": -math.inf}, "metadata['x'] is -inf; JSON has no NaN or infinity"),
        ({"k": "v\ud800"}, "metadata['k'] contains a lone surrogate"),
        ({"k\udc00": 1}, "metadata: a key contains a lone surrogate"),
        ({"k": "a\x00"}, "metadata['k'] contains a NUL character"),
    ],
)
async def test_metadata_every_backend_refuses(
    store: BotStore, metadata: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidInput) as info:
        await _add(store, metadata=metadata)
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)
    assert await store.history(GENERAL) == []
    # Finite floats still go through, unchanged.
    await _add(store, metadata={"score": 0.5, "big": 1e308})
    [row] = await store.history(GENERAL)
    assert row.metadata == {"score": 0.5, "big": 1e308}


def _config(path: Path) -> BotConfig:
    return BotConfig.model_validate({"name": "sage", "storage": {"path": str(path)}}, strict=False)


async def test_mistyped_path_leaves_nothing_behind(tmp_path: Path) -> None:
    path = tmp_path / "dta" / "deeper" / "conversations.db"
    with pytest.raises(DatabaseUnavailableError) as info:
        async with BotStore.open(_config(path)):
            pass
    assert str(info.value) == (
        f"{path}: cannot open the database: {path.parent} does not exist; check storage.path"
    )
    assert os.listdir(tmp_path) == []


async def test_missing_file_in_an_existing_directory_is_not_created(tmp_path: Path) -> None:
    path = tmp_path / "conversatons.db"
    with pytest.raises(SchemaError, match="no database file here; run `alembic upgrade head`"):
        async with BotStore.open(_config(path)):
            pass
    assert os.listdir(tmp_path) == []


async def test_parent_that_is_a_file(tmp_path: Path) -> None:
    blocker = tmp_path / "data"
    blocker.write_text("not a directory")
    path = blocker / "conversations.db"
    with pytest.raises(DatabaseUnavailableError, match=r"data is not a directory; check"):
        async with BotStore.open(_config(path)):
            pass
    # Where a database is created (alembic, init), the same path is one StorageError line.
    with pytest.raises(StorageError) as info:
        make_engine(f"sqlite+aiosqlite:///{path}")
    assert str(info.value).startswith(f"{path}: cannot create the database's directory {blocker}: ")
    assert "\n" not in str(info.value)
    assert os.listdir(tmp_path) == ["data"]


def test_recursive_yaml_alias_is_one_config_error(tmp_path: Path) -> None:
    file = tmp_path / "sage.yaml"
    file.write_text("a: &a [*a]\n")
    with pytest.raises(ConfigError) as info:
        load_config(file)
    assert str(info.value) == (
        f"{file}: a[0]: a YAML alias refers to itself (recursive data is not allowed)"
    )
    file.write_text("storage:\n  extra: &x {loop: *x}\n")
    with pytest.raises(ConfigError, match=r"storage\.extra\.loop: a YAML alias refers to itself"):
        load_config(file)


def test_deeply_nested_yaml_is_one_config_error(tmp_path: Path) -> None:
    file = tmp_path / "sage.yaml"
    file.write_text("a: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ConfigError) as info:
        load_config(file)
    assert "\n" not in str(info.value) and str(info.value).startswith(f"{file}: ")
