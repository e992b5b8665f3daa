"""SQLite: a small read (a history of a bounded size) runs on the event loop's thread, on a
connection that never waits for a lock; larger reads, a lock in the way and slow reads go to the
reader thread."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest
from sqlalchemy.engine import Connection

from convostore import BotStore
from convostore.engine import BUSY_TIMEOUT_MS
from convostore.unit_of_work import SMALL_READ_ROWS
from tests.integration.test_group_commit import CHANNEL, add, write_lock
from tests.integration.test_inline_writes import (
    assert_slow_calls_leave_the_loop,
    runner_of,
    slow,
    where,
)


@pytest.fixture
def store(sqlite_store: BotStore) -> BotStore:
    return sqlite_store


def locked_error(path: Path) -> sqlite3.OperationalError:
    """A real SQLITE_BUSY from the driver: a connection that does not wait meets a held lock."""
    with write_lock(path):
        other = sqlite3.connect(path, isolation_level=None, timeout=0)
        try:
            other.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            return exc
        finally:
            other.close()
    raise AssertionError("the lock was not in the way")


async def test_a_small_read_runs_on_the_event_loop_and_a_large_one_in_the_reader_thread(
    store: BotStore,
) -> None:
    runner = runner_of(store)
    loop_thread = threading.get_ident()
    assert await runner.read(where, small=True) == (loop_thread, 0)
    thread, timeout = await runner.read(where)
    assert thread != loop_thread and timeout == BUSY_TIMEOUT_MS


async def test_history_reads_as_before_on_the_event_loop(store: BotStore) -> None:
    runner = runner_of(store)
    for message_id in range(1, 6):
        await add(store, message_id)
    assert [m.message_id for m in await store.history(CHANNEL, limit=3)] == ["3", "4", "5"]
    items = await store.history_items(CHANNEL, limit=2)
    assert [i.message_id for i in items] == ["4", "5"]
    assert runner._inline_read_connection is not None
    # A history longer than SMALL_READ_ROWS reads in the reader thread: the same rows.
    runner._close_inline()
    everything = await store.history(CHANNEL, limit=SMALL_READ_ROWS + 1)
    assert [m.message_id for m in everything] == ["1", "2", "3", "4", "5"]
    assert runner._inline_read_connection is None


async def test_a_lock_in_the_way_sends_the_read_to_the_reader_thread(
    store: BotStore, sqlite_db_path: Path
) -> None:
    runner = runner_of(store)
    busy = locked_error(sqlite_db_path)
    assert busy.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY
    loop_thread = threading.get_ident()
    calls: list[int] = []

    def read(connection: Connection) -> int:
        calls.append(threading.get_ident())
        if len(calls) == 1:
            raise busy
        return len(calls)

    assert await runner.read(read, small=True) == 2
    assert calls[0] == loop_thread and calls[1] != loop_thread
    # The next small reads go to the reader thread for a while.
    thread, _ = await runner.read(where, small=True)
    assert thread != loop_thread
    # Any other error reaches the caller as from the reader thread.
    runner._inline_reads.after = 0.0

    def broken(connection: Connection) -> None:
        raise ValueError("not a lock")

    with pytest.raises(ValueError, match="not a lock"):
        await runner.read(broken, small=True)
    assert await runner.read(where, small=True) == (loop_thread, 0)


async def test_slow_reads_on_the_event_loop_send_the_next_ones_to_the_reader_thread(
    store: BotStore,
) -> None:
    runner = runner_of(store)
    assert_slow_calls_leave_the_loop([await runner.read(slow, small=True) for _ in range(20)])


async def test_an_event_loop_in_another_thread_uses_the_worker_threads(store: BotStore) -> None:
    runner = runner_of(store)
    await add(store, 1)
    assert await runner.read(where, small=True) == (threading.get_ident(), 0)

    async def elsewhere() -> tuple[tuple[int, int], tuple[int, int], list[str]]:
        read = await runner.read(where, small=True)
        written = await runner.write(where, small=True)
        return read, written, [m.message_id for m in await store.history(CHANNEL)]

    other_loop: list[int] = []

    def run() -> tuple[tuple[int, int], tuple[int, int], list[str]]:
        other_loop.append(threading.get_ident())
        return asyncio.run(elsewhere())

    read, written, ids = await asyncio.to_thread(run)
    assert ids == ["1"]
    # Neither ran on that loop's thread with the connections of this one: the worker threads did.
    assert read[0] != other_loop[0] and read[1] == BUSY_TIMEOUT_MS
    assert written[0] != other_loop[0] and written[1] == BUSY_TIMEOUT_MS
