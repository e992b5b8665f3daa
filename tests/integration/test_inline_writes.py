"""SQLite: a small write that comes alone runs on the event loop's thread, on a connection that
never waits for the lock; concurrent ones, a lock held elsewhere and a slow disk send writes to
the writer thread."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy.engine import Connection

from convostore import BotStore
from convostore.engine import BUSY_TIMEOUT_MS
from convostore.unit_of_work import INLINE_BUDGET_S, INLINE_COOLDOWN_S, UnitOfWorkRunner
from tests.integration.test_group_commit import CHANNEL, add, write_lock


@pytest.fixture
def store(sqlite_store: BotStore) -> BotStore:
    return sqlite_store


def where(connection: Connection) -> tuple[int, int]:
    """The thread a unit of work runs in, and its connection's busy timeout."""
    timeout = connection.exec_driver_sql("PRAGMA busy_timeout").scalar()
    return threading.get_ident(), int(timeout or 0)


def runner_of(store: BotStore) -> UnitOfWorkRunner:
    return store._runner


def slow(connection: Connection) -> int:
    """A unit of work three times the budget (a disk slow to sync, a cold cache): its thread."""
    time.sleep(INLINE_BUDGET_S * 3)
    return threading.get_ident()


def assert_slow_calls_leave_the_loop(threads: list[int]) -> None:
    """``threads``: where 20 slow calls in a row ran. A few run on the loop until their typical
    time passes the budget; then the worker thread takes them (at most one on the loop a
    cooldown)."""
    inline = [t == threading.get_ident() for t in threads]
    assert inline[0] and not all(inline)
    assert inline.index(False) < 10 and sum(inline[inline.index(False) :]) <= 1


async def test_a_lone_small_write_runs_on_the_event_loop_without_waiting_for_the_lock(
    store: BotStore,
) -> None:
    runner = runner_of(store)
    loop_thread = threading.get_ident()
    thread, timeout = await runner.write(where, small=True)
    assert (thread, timeout) == (loop_thread, 0)
    # Any other write (a backfill batch, a cleanup) still runs in the writer thread, which waits
    # for the lock up to the busy timeout.
    thread, timeout = await runner.write(where)
    assert thread != loop_thread and timeout == BUSY_TIMEOUT_MS


async def test_add_message_alone_is_written_inline_and_stored(store: BotStore) -> None:
    runner = runner_of(store)
    await add(store, 1)
    groups_before = runner.groups_committed
    for message_id in range(2, 12):
        await add(store, message_id)
    assert runner.groups_committed - groups_before == 10
    assert runner._inline_connection is not None
    assert [m.message_id for m in await store.history(CHANNEL)] == [str(i) for i in range(1, 12)]
    session = await store.current_session(CHANNEL)
    assert session is not None and session.message_count == 11


async def test_concurrent_small_writes_are_grouped_in_the_writer_thread(store: BotStore) -> None:
    runner = runner_of(store)
    await add(store, 1)
    loop_thread = threading.get_ident()
    threads: list[int] = []

    def record(connection: Connection) -> None:
        threads.append(threading.get_ident())

    groups_before = runner.groups_committed
    await asyncio.gather(*(runner.write(record, small=True) for _ in range(32)))
    assert len(threads) == 32
    assert loop_thread not in threads, "concurrent writes ran one by one on the event loop"
    assert runner.groups_committed - groups_before < 32


async def test_a_lock_held_elsewhere_sends_the_write_to_the_writer_thread(
    store: BotStore, sqlite_db_path: Path
) -> None:
    runner = runner_of(store)
    await add(store, 1)
    with write_lock(sqlite_db_path):
        pending = add(store, 2)
        # The event loop is not held up: this sleep ends while the write waits for the lock.
        started = time.monotonic()
        await asyncio.sleep(0.2)
        assert time.monotonic() - started < 1.0
        assert not pending.done()
        assert runner._draining and not runner._queue  # the writer thread has it
    await pending
    assert [m.message_id for m in await store.history(CHANNEL)] == ["1", "2"]
    # The writer thread's connection kept its busy timeout (the inline one never reaches it).
    _, timeout = await runner.write(where)
    assert timeout == BUSY_TIMEOUT_MS


async def test_slow_writes_on_the_event_loop_send_the_next_ones_to_the_writer_thread(
    store: BotStore,
) -> None:
    runner = runner_of(store)
    loop_thread = threading.get_ident()
    assert_slow_calls_leave_the_loop([await runner.write(slow, small=True) for _ in range(20)])
    # One slow write among fast ones (a checkpoint, a pause) does not.
    await asyncio.sleep(INLINE_COOLDOWN_S + 0.1)
    runner._inline_writes.cost = 0.0
    fast: Callable[[Connection], int] = lambda _connection: threading.get_ident()  # noqa: E731
    assert await runner.write(slow, small=True) == loop_thread
    assert [await runner.write(fast, small=True) for _ in range(5)] == [loop_thread] * 5


async def test_a_small_write_cancelled_before_it_ran_is_not_stored(store: BotStore) -> None:
    runner = runner_of(store)
    await add(store, 1)
    task = add(store, 2)
    await asyncio.sleep(0)  # queued, its dispatch not yet run
    assert len(runner._queue) == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0)
    assert not runner._queue and not runner._draining
    assert [m.message_id for m in await store.history(CHANNEL)] == ["1"]
    await add(store, 2)  # a retry stores it, once
    assert [m.message_id for m in await store.history(CHANNEL)] == ["1", "2"]
