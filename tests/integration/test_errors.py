"""Bad databases get one clear line, in the convostore exception tree, with no secret in it."""

from __future__ import annotations

import shutil
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from convostore import BotConfig, BotStore, ChannelInfo, ConfigError
from convostore.errors import (
    DatabaseLockedError,
    DatabaseUnavailableError,
    ReadOnlyDatabaseError,
    SchemaError,
)

GENERAL = ChannelInfo.channel(channel_id=1, name="general")


def sqlite_config(path: Path, **storage: object) -> BotConfig:
    return BotConfig.model_validate(
        {"name": "sage", "storage": {"path": str(path), **storage}}, strict=False
    )


async def test_missing_schema_says_to_run_alembic(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match="alembic upgrade head"):
        async with BotStore.open(sqlite_config(tmp_path / "empty.db")):
            pass


async def test_database_from_a_newer_version_is_refused(
    tmp_path: Path, sqlite_template: Path
) -> None:
    db = tmp_path / "newer.db"
    shutil.copyfile(sqlite_template, db)
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0099'")
    with pytest.raises(SchemaError, match="revision 0099, newer than this convostore knows"):
        async with BotStore.open(sqlite_config(db)):
            pass


async def test_read_only_database_error_is_clear(tmp_path: Path, sqlite_template: Path) -> None:
    # Root ignores file modes, so open the file through SQLite's read-only URI mode instead.
    db = tmp_path / "ro.db"
    shutil.copyfile(sqlite_template, db)
    config = BotConfig.model_validate(
        {"name": "sage", "storage": {"url": f"sqlite:///file:{db}?mode=ro&uri=true"}}, strict=False
    )
    async with BotStore.open(config) as store:
        assert await store.history(GENERAL) == []
        with pytest.raises(ReadOnlyDatabaseError, match="read-only") as info:
            await store.add_message(GENERAL, user_id=1, username="a", role="user", content="x")
    assert "\n" not in str(info.value)


async def test_locked_database(
    tmp_path: Path, sqlite_template: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import convostore.engine

    monkeypatch.setattr(convostore.engine, "BUSY_TIMEOUT_MS", 200)
    db = tmp_path / "locked.db"
    shutil.copyfile(sqlite_template, db)
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        async with BotStore.open(sqlite_config(db)) as store:
            # Readers are not blocked by a writer in WAL mode...
            assert await store.history(GENERAL) == []
            # ...but a writer waits for the busy timeout and then gets a clear error.
            with pytest.raises(DatabaseLockedError, match="locked by another process"):
                await store.add_message(
                    GENERAL,
                    user_id=1,
                    username="a",
                    role="user",
                    content="x",
                    timestamp=datetime(2024, 1, 1, tzinfo=UTC),
                )
    finally:
        holder.rollback()
        holder.close()
    async with BotStore.open(sqlite_config(db)) as store:
        await store.add_message(GENERAL, user_id=1, username="a", role="user", content="x")
        assert len(await store.history(GENERAL)) == 1


async def test_unreachable_server_hides_password() -> None:
    config = BotConfig.model_validate(
        {
            "name": "sage",
            "storage": {"type": "postgresql", "url": "postgresql://bots:pa55word@127.0.0.1:1/bots"},
        },
        strict=False,
    )
    with pytest.raises(DatabaseUnavailableError) as info:
        async with BotStore.open(config):
            pass
    assert "pa55word" not in str(info.value)
    assert "***" in str(info.value)


async def test_disabled_storage_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"storage\.enabled is false"):
        async with BotStore.open(sqlite_config(tmp_path / "x.db", enabled=False)):
            pass
