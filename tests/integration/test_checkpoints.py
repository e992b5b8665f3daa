"""SQLite: the WAL is copied into the database file by the store's checkpoint thread, not by the
writer at commit; the writer's automatic checkpoint stays as a backstop; the thread ends with the
store."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import threading
from pathlib import Path

import pytest
from sqlalchemy.engine import Connection

from convostore import BotConfig, BotStore, ChannelInfo, unit_of_work
from convostore.unit_of_work import WRITER_AUTOCHECKPOINT_PAGES, UnitOfWorkRunner
from tests.helpers.rows import add

CHANNEL = ChannelInfo.channel(channel_id=1, name="general")
# Two rows changed per message (the message, its session): 100 messages make 200 changes, past
# one request (CHECKPOINT_CHANGES = 128), and about 1,400 WAL pages, short of the writer's backstop.
MESSAGES = 100


async def add_messages_one_by_one(store: BotStore, count: int) -> None:
    for number in range(count):
        await add(store, CHANNEL, number / 60, f"message {number}")  # a second apart


async def checkpoints_done(runner: UnitOfWorkRunner) -> None:
    """Wait for the checkpoint thread to finish what it was asked (it runs one task at a time)."""
    assert runner._checkpointer is not None
    await asyncio.get_running_loop().run_in_executor(runner._checkpointer, lambda: None)


def rows_in_database_file(db_path: Path, copy: Path) -> int:
    """Messages in the database file itself: a copy of it without its WAL."""
    shutil.copyfile(db_path, copy)
    with sqlite3.connect(copy) as connection:
        count: int = connection.execute("SELECT count(*) FROM conversations").fetchone()[0]
    return count


async def rows_in_file_between_checkpoints(
    runner: UnitOfWorkRunner, db_path: Path, copy: Path
) -> int:
    """:func:`rows_in_database_file` of an open store, taken on its checkpoint thread: no
    checkpoint (asked for by a later write, such as the search index's batch) writes into the
    file while it is copied, which would leave a torn copy."""
    assert runner._checkpointer is not None
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(runner._checkpointer, rows_in_database_file, db_path, copy)


async def test_checkpoint_thread_copies_the_wal_into_the_file(
    sqlite_store: BotStore, sqlite_db_path: Path, tmp_path: Path
) -> None:
    runner = sqlite_store._runner
    await add_messages_one_by_one(sqlite_store, MESSAGES)
    await checkpoints_done(runner)
    assert runner.checkpoints_run >= 1
    # At least the messages written before the first request are in the file; the writer alone
    # would not have copied any yet (its backstop is far off).
    copy = tmp_path / "copy.db"
    assert await rows_in_file_between_checkpoints(runner, sqlite_db_path, copy) >= 64
    # Every message is still read back whole (from the file and the WAL).
    assert len(await sqlite_store.history(CHANNEL, limit=MESSAGES)) == MESSAGES


async def test_without_the_thread_the_writer_keeps_the_pages_in_the_wal(
    sqlite_store: BotStore, sqlite_db_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The control for the test above: with requests switched off, no row reaches the file at this
    # size, so the rows found there were copied by the checkpoint thread.
    monkeypatch.setattr(unit_of_work, "CHECKPOINT_CHANGES", 10**9)
    await add_messages_one_by_one(sqlite_store, MESSAGES)
    await checkpoints_done(sqlite_store._runner)
    assert sqlite_store._runner.checkpoints_run == 0
    copy = tmp_path / "copy.db"
    assert await rows_in_file_between_checkpoints(sqlite_store._runner, sqlite_db_path, copy) == 0
    assert len(await sqlite_store.history(CHANNEL, limit=MESSAGES)) == MESSAGES


async def test_writer_backstop_bounds_the_wal(sqlite_store: BotStore) -> None:
    def setting(connection: Connection) -> int:
        driver = connection.connection.driver_connection
        assert isinstance(driver, sqlite3.Connection)
        value: int = driver.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
        return value

    assert await sqlite_store._runner.write(setting) == WRITER_AUTOCHECKPOINT_PAGES


async def test_checkpoint_thread_ends_with_the_store(sqlite_db_path: Path) -> None:
    config = BotConfig.model_validate({"name": "sage", "storage": {"path": str(sqlite_db_path)}})
    async with BotStore.open(config) as store:
        await add_messages_one_by_one(store, MESSAGES)
        await checkpoints_done(store._runner)
        assert store._runner.checkpoints_run >= 1
        threads = [
            thread
            for thread in threading.enumerate()
            if thread.name.startswith("convostore-sqlite-checkpoint")
        ]
        assert threads
    for thread in threads:
        thread.join(timeout=10)
        assert not thread.is_alive()
    # Closed cleanly: the last connection folded the WAL into the file.
    after_close = sqlite_db_path.with_name("after-close.db")
    assert rows_in_database_file(sqlite_db_path, after_close) == MESSAGES
