"""``storage.synchronous``: the durability every connection of a store runs with."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy.engine import Connection

from convostore import BotConfig, BotStore, ChannelInfo
from tests.conftest import ConfigFactory

# PRAGMA synchronous answers with a number: 1 is NORMAL, 2 is FULL.
_LEVEL = {"normal": 1, "full": 2}


def _synchronous(connection: Connection) -> int:
    return int(connection.exec_driver_sql("PRAGMA synchronous").scalar_one())


@pytest.mark.parametrize("setting", ["normal", "full"])
async def test_every_sqlite_connection_applies_the_setting(
    sqlite_template: Path, tmp_path: Path, setting: str
) -> None:
    path = tmp_path / "conversations.db"
    shutil.copyfile(sqlite_template, path)
    config = BotConfig.model_validate(
        {"name": "sage", "storage": {"path": str(path), "synchronous": setting}}
    )
    async with BotStore.open(config) as store:
        # The worker thread's connections: the one writes use, and the one reads reuse.
        assert await store._runner.write(_synchronous) == _LEVEL[setting]
        assert await store._runner.read(_synchronous) == _LEVEL[setting]
        # The async engine's connections (opening the store, maintenance jobs).
        async with store.engine.connect() as connection:
            assert await connection.run_sync(_synchronous) == _LEVEL[setting]


async def test_full_stores_and_reads_on_both_backends(make_config: ConfigFactory) -> None:
    # On PostgreSQL the key changes nothing (the server's synchronous_commit decides); on both
    # backends a store set to full works as one set to normal.
    channel = ChannelInfo.channel(channel_id=1, name="general")
    async with BotStore.open(make_config(synchronous="full")) as store:
        stored = await store.add_message(
            channel, user_id=7, username="ann", role="user", content="hi", message_id=11
        )
        assert [m.message_id for m in await store.history(channel)] == [stored.message_id]
