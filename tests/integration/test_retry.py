"""Which failed units of work are run again: only those a second attempt can cure.

Constraint violations (CHECK, foreign key, NOT NULL, an unexpected unique key) surface at once as
``InvalidInput`` naming the constraint; serialization failures, deadlocks, a dropped connection, a
lock that outlasted the busy timeout, and the store's own unique-key races are retried.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Connection

from convostore import BotConfig, BotStore, ChannelInfo, InvalidInput
from tests.conftest import ConfigFactory

T0 = datetime(2024, 1, 8, 14, 30, 0, tzinfo=UTC)
GENERAL = ChannelInfo.channel(channel_id=123, name="general")


def count_attempts(store: BotStore) -> list[int]:
    """Count the units of work the store hands to its transactions (a spy, not a mock)."""
    calls: list[int] = []
    transactions = store._runner
    original_write, original_read = transactions.write, transactions.read

    async def write(work: Callable[[Connection], Any], *, small: bool = False) -> Any:
        calls.append(1)
        return await original_write(work, small=small)

    async def read(work: Callable[[Connection], Any], *, small: bool = False) -> Any:
        calls.append(1)
        return await original_read(work, small=small)

    transactions.write = write  # type: ignore[method-assign]
    transactions.read = read  # type: ignore[method-assign]
    return calls


def insert_message(session_id: str, *, content: str | None = "x", row_id: int | None = None) -> Any:
    def work(connection: Connection) -> None:
        connection.execute(
            text(
                "INSERT INTO conversations (id, bot_name, channel_id, channel_name, channel_type,"
                " user_id, username, session_id, message_id, role, content, timestamp)"
                " VALUES (coalesce(:id, (SELECT coalesce(max(id), 0) + 1 FROM conversations)),"
                " 'sage', '123', 'general', 'channel', '1', 'a', :session, :mid, 'user',"
                " :content, :at)"
            ),
            {
                "id": row_id,
                "session": session_id,
                "mid": f"{session_id}-{row_id}",
                "content": content,
                "at": T0,
            },
        )

    return work


async def test_check_violation_is_invalid_input_at_once(store: BotStore) -> None:
    bad = ChannelInfo.channel(channel_id=5, name="x")
    object.__setattr__(bad, "type", "group")  # past the validation, as a buggy caller could
    calls = count_attempts(store)
    with pytest.raises(InvalidInput, match="ck_conversations_channel_type") as info:
        await store.add_message(bad, user_id=1, username="a", role="user", content="x")
    assert len(calls) == 1
    assert "\n" not in str(info.value)


async def test_foreign_key_violation_is_invalid_input_at_once(
    store: BotStore, backend: str
) -> None:
    calls = count_attempts(store)
    expected = "fk_conversations_bot_name_channel_id_session_id_sessions"
    with pytest.raises(InvalidInput, match=expected if backend == "postgresql" else "FOREIGN KEY"):
        await store._write(insert_message("no-such-session"))
    assert len(calls) == 1


async def test_not_null_violation_is_invalid_input_at_once(store: BotStore) -> None:
    first = await store.add_message(GENERAL, user_id=1, username="a", role="user", content="x")
    calls = count_attempts(store)
    with pytest.raises(InvalidInput, match=r"(?i)not.null|content"):
        await store._write(insert_message(first.session_id, content=None))
    assert len(calls) == 1


async def test_unexpected_unique_violation_is_invalid_input_at_once(
    store: BotStore, backend: str
) -> None:
    first = await store.add_message(GENERAL, user_id=1, username="a", role="user", content="x")
    calls = count_attempts(store)
    expected = "pk_conversations" if backend == "postgresql" else "conversations.id"
    with pytest.raises(InvalidInput, match=expected):
        await store._write(insert_message(first.session_id, row_id=first.id))
    assert len(calls) == 1


@pytest.mark.parametrize("backend", ["postgresql"])
@pytest.mark.parametrize("code", ["serialization_failure", "deadlock_detected"])
async def test_serialization_failure_and_deadlock_are_retried(
    store: BotStore, backend: str, code: str
) -> None:
    attempts: list[int] = []

    def work(connection: Connection) -> str:
        attempts.append(1)
        if len(attempts) == 1:
            # The server's own error with the real SQLSTATE (40001 / 40P01).
            connection.execute(
                text(f"DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = '{code}'; END $$")
            )
        return "done"

    assert await store._write(work) == "done"
    assert len(attempts) == 2
    attempts.clear()
    assert await store._read(work) == "done"
    assert len(attempts) == 2


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_a_connection_the_server_dropped_is_retried(store: BotStore, backend: str) -> None:
    await store.add_message(GENERAL, user_id=1, username="a", role="user", content="before")
    attempts: list[int] = []

    def work(connection: Connection) -> int:
        attempts.append(1)
        if len(attempts) == 1:
            connection.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))
        return int(connection.execute(text("SELECT count(*) FROM conversations")).scalar_one())

    assert await store._write(work) == 1
    assert len(attempts) >= 2


def test_a_lock_released_during_the_wait_is_retried(
    tmp_path: Path, sqlite_template: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import convostore.engine

    monkeypatch.setattr(convostore.engine, "BUSY_TIMEOUT_MS", 300)
    db = tmp_path / "locked.db"
    shutil.copyfile(sqlite_template, db)
    config = BotConfig.model_validate({"name": "sage", "storage": {"path": str(db)}}, strict=False)
    holder = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    # Held past the first attempt's busy timeout, released during the second one.
    release = threading.Timer(0.45, holder.execute, args=("ROLLBACK",))

    async def scenario() -> int:
        async with BotStore.open(config) as store:
            calls = count_attempts(store)
            release.start()
            await store.add_message(GENERAL, user_id=1, username="a", role="user", content="x")
            assert len(await store.history(GENERAL)) == 1
            return len(calls)

    try:
        calls = asyncio.run(scenario())
    finally:
        release.join()
        holder.close()
    assert calls == 3  # two write attempts and the history read


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_concurrent_writers_racing_for_the_same_session_all_succeed(
    make_config: ConfigFactory, backend: str
) -> None:
    # Eight bot processes' worth of stores (own engines and pools) write into the same new
    # channels at the same instants: they race to open the session (uq_sessions_one_active),
    # to start it under the same id, and to store the same message ids. Every write must succeed.
    config = make_config()
    channels = [ChannelInfo.channel(channel_id=900 + n, name=f"c{n}") for n in range(3)]
    writers = 8
    rounds = 6

    async def writer(index: int) -> int:
        written = 0
        async with BotStore.open(config) as store:
            for step in range(rounds):
                at = T0 + timedelta(seconds=step)
                for channel in channels:
                    # Half the writers store the same message ids (a duplicate delivery).
                    message_id = 10_000 * int(channel.id) + step if index % 2 else None
                    row = await store.add_message(
                        channel,
                        user_id=index + 1,
                        username=f"u{index}",
                        role="user",
                        content=f"{index}-{step}",
                        message_id=message_id,
                        timestamp=at,
                    )
                    assert row.session_id
                    written += 1
        return written

    written = await asyncio.gather(*(writer(n) for n in range(writers)))
    assert sum(written) == writers * rounds * len(channels)
    async with BotStore.open(config) as store:
        for channel in channels:
            sessions = await store.sessions(channel)
            assert [s.is_active for s in sessions].count(True) == 1
            history = await store.history(channel, limit=1000)
            # The unique ids once each, plus one row per write with a generated id.
            assert len(history) == rounds + (writers // 2) * rounds
            assert sum(s.message_count for s in sessions) == len(history)
