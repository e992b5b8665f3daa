"""SQLite: concurrent writes of one store are group-committed, each with its own outcome; reads
never wait behind writes; a cancelled write is stored whole or not at all."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Connection

from convostore import BotConfig, BotStore, ChannelInfo
from convostore.unit_of_work import UnitOfWorkRunner

CHANNEL = ChannelInfo.channel(channel_id=1, name="general")
T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def db_path(sqlite_db_path: Path) -> Path:
    return sqlite_db_path


@pytest.fixture
def store(sqlite_store: BotStore) -> BotStore:
    return sqlite_store


@contextmanager
def write_lock(path: Path) -> Iterator[sqlite3.Connection]:
    """Another process's view: the write lock held by a second connection to the file."""
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        yield holder
    finally:
        holder.rollback()
        holder.close()


def add(
    store: BotStore, message_id: int, *, channel: ChannelInfo = CHANNEL
) -> asyncio.Task[object]:
    return asyncio.create_task(
        store.add_message(
            channel,
            user_id=7,
            username="ann",
            role="user",
            content=f"message {message_id}",
            message_id=message_id,
            timestamp=T0 + timedelta(seconds=message_id),
        )
    )


def idle(runner: UnitOfWorkRunner) -> bool:
    """No write queued or being written (the previous group's drain has finished)."""
    return not runner._draining


def taken(runner: UnitOfWorkRunner) -> bool:
    """The writer thread has taken every queued write and is writing them."""
    return runner._draining and not runner._queue


async def until(condition: Callable[[], bool]) -> None:
    """Wait until the writer thread has reached a state (it has no event to wait on)."""
    async with asyncio.timeout(10):
        while not condition():  # noqa: ASYNC110 - polled: the state belongs to another thread
            await asyncio.sleep(0.005)


async def test_concurrent_writes_share_transactions_and_all_land(store: BotStore) -> None:
    channels = [ChannelInfo.channel(channel_id=100 + c, name=f"c{c}") for c in range(8)]
    before = store._runner.groups_committed
    stored = await asyncio.gather(
        *(add(store, 1000 + i, channel=channels[i % 8]) for i in range(64))
    )
    assert sorted(m.message_id for m in stored) == [str(1000 + i) for i in range(64)]  # type: ignore[attr-defined]
    groups = store._runner.groups_committed - before
    assert store._runner.writes_committed >= 64
    assert groups < 64, "64 concurrent writes went one transaction each"
    for channel in channels:
        rows = await store.history(channel, limit=100)
        session = await store.current_session(channel)
        assert len(rows) == 8 and session is not None and session.message_count == 8


async def test_writes_queued_behind_a_lock_commit_as_one_group(
    store: BotStore, db_path: Path
) -> None:
    await add(store, 1)  # the writer's connection is open
    with write_lock(db_path):
        await until(lambda: idle(store._runner))
        first = add(store, 2)
        await until(lambda: taken(store._runner))
        rest = [add(store, 3 + i) for i in range(9)]
        await until(lambda: len(store._runner._queue) == 9)
        before = store._runner.groups_committed
    await asyncio.gather(first, *rest)
    # The first waited for the lock alone; the nine queued behind it went in one transaction.
    assert store._runner.groups_committed - before == 2
    assert [m.message_id for m in await store.history(CHANNEL)] == [str(i) for i in range(1, 12)]
    session = await store.current_session(CHANNEL)
    assert session is not None and session.message_count == 11


async def test_each_write_of_a_group_has_its_own_outcome(store: BotStore, db_path: Path) -> None:
    def insert(n: int, fail: bool) -> object:
        def work(connection: Connection) -> int:
            connection.execute(
                text(
                    "INSERT INTO sessions (bot_name, channel_id, session_id, started_at,"
                    " last_activity, message_count, is_active) VALUES ('raw', :c, 's',"
                    " '2026-01-01 00:00:00.000000', '2026-01-01 00:00:00.000000', 0, 0)"
                ),
                {"c": str(n)},
            )
            if fail:
                raise ValueError(f"write {n} refuses")
            return n

        return work

    await add(store, 1)
    runner = store._runner
    with write_lock(db_path):
        await until(lambda: idle(store._runner))
        first = asyncio.create_task(runner.write(insert(0, False)))  # type: ignore[arg-type]
        await until(lambda: taken(runner))
        group = [
            asyncio.create_task(runner.write(insert(n, n in (3, 5))))  # type: ignore[arg-type]
            for n in range(1, 8)
        ]
        await until(lambda: len(runner._queue) == 7)
    outcomes = await asyncio.gather(first, *group, return_exceptions=True)
    assert [o if isinstance(o, int) else str(o) for o in outcomes] == [
        0,
        1,
        2,
        "write 3 refuses",
        4,
        "write 5 refuses",
        6,
        7,
    ]
    with sqlite3.connect(db_path) as conn:
        kept = conn.execute("SELECT channel_id FROM sessions WHERE bot_name = 'raw'").fetchall()
    # The refused writes were rolled back alone (their insert undone), the rest committed.
    assert sorted(int(c) for (c,) in kept) == [0, 1, 2, 4, 6, 7]


async def test_duplicate_ids_in_one_group_store_one_row(store: BotStore, db_path: Path) -> None:
    await add(store, 1)
    with write_lock(db_path):
        await until(lambda: idle(store._runner))
        first = add(store, 2)
        await until(lambda: taken(store._runner))
        twins = [add(store, 3), add(store, 3), add(store, 3)]
        await until(lambda: len(store._runner._queue) == 3)
    await first
    a, b, c = await asyncio.gather(*twins)
    assert a == b == c  # every caller gets the one stored row
    assert [m.message_id for m in await store.history(CHANNEL)] == ["1", "2", "3"]
    session = await store.current_session(CHANNEL)
    assert session is not None and session.message_count == 3


async def test_reads_do_not_wait_behind_a_write_that_waits_for_the_lock(
    store: BotStore, db_path: Path
) -> None:
    await add(store, 1)
    with write_lock(db_path):
        await until(lambda: idle(store._runner))
        pending = add(store, 2)
        await until(lambda: taken(store._runner))
        # The write waits for the lock (up to the busy timeout); the read does not queue behind it:
        # a small history runs on the event loop's own read connection (test_inline_reads).
        started = time.monotonic()
        rows = await asyncio.wait_for(store.history(CHANNEL), timeout=5)
        assert time.monotonic() - started < 1.0
        assert [m.message_id for m in rows] == ["1"]
        assert store._runner._inline_read_connection is not None
        assert not pending.done()
    await pending
    assert [m.message_id for m in await store.history(CHANNEL)] == ["1", "2"]


async def test_a_cancelled_write_is_stored_whole_or_not_at_all(
    store: BotStore, db_path: Path
) -> None:
    await add(store, 1)
    with write_lock(db_path):
        await until(lambda: idle(store._runner))
        started = add(store, 2)  # taken by the writer, waiting for the lock
        await until(lambda: taken(store._runner))
        queued = add(store, 3)  # still in the queue
        await until(lambda: len(store._runner._queue) == 1)
        started.cancel()
        queued.cancel()
        for task in (started, queued):
            with pytest.raises(asyncio.CancelledError):
                await task
        assert not store._runner._queue  # the queued one was taken out: it never runs
    await until(lambda: not store._runner._draining)
    # The started one committed with its group: a retry with its message_id returns that row.
    ids = [m.message_id for m in await store.history(CHANNEL)]
    assert ids == ["1", "2"]
    again = await add(store, 2)
    assert again.id == (await store.history(CHANNEL))[1].id  # type: ignore[attr-defined]
    # The queued one was not stored; a retry stores it now, once.
    await add(store, 3)
    assert [m.message_id for m in await store.history(CHANNEL)] == ["1", "2", "3"]
    session = await store.current_session(CHANNEL)
    assert session is not None and session.message_count == 3


async def test_closing_the_store_finishes_the_accepted_writes(db_path: Path) -> None:
    config = BotConfig.model_validate({"name": "sage", "storage": {"path": str(db_path)}})
    async with BotStore.open(config) as store:
        tasks = [add(store, i) for i in range(1, 21)]
        await asyncio.sleep(0)  # every write is queued or being written
    assert all(task.done() and not task.cancelled() for task in tasks)
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT count(*) FROM conversations").fetchone()[0] == 20
