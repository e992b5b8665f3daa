"""PostgreSQL: the common append and the history reads are one statement each, run straight on
asyncpg (a connection of the store's pool, in autocommit). Their records equal those of the general
path through Core; when the direct statement fails (a dropped connection, a missing table) the
general path runs, with its usual errors and retries; a cancelled direct append is stored whole or
not at all, and a retry stores it once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from sqlalchemy import event
from sqlalchemy.engine import Connection

from convostore import BotConfig, BotStore, ChannelInfo, SchemaError
from convostore.records import HistoryItem, StoredMessage
from convostore.repositories import MessageRepository
from tests.conftest import PostgresDatabases, _truncate, upgrade
from tests.helpers.rows import plain_url

CHANNEL = ChannelInfo.channel(channel_id=5, name="general")
T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
async def store(pg_template_url: str) -> AsyncIterator[BotStore]:
    _truncate(pg_template_url)
    config = BotConfig.model_validate(
        {"name": "sage", "storage": {"type": "postgresql", "url": pg_template_url}}
    )
    async with BotStore.open(config) as opened:
        yield opened


@contextmanager
def core_statements(store: BotStore) -> Iterator[list[str]]:
    """The first word of every statement the store sends through SQLAlchemy Core meanwhile."""
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement.split(None, 1)[0].upper())

    event.listen(store.engine.sync_engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(store.engine.sync_engine, "before_cursor_execute", count)


def backends(url: str) -> list[tuple[int, str, str]]:
    """(pid, state, last statement) of every other connection to the test database."""
    with psycopg.connect(plain_url(url), autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pid, state, query FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return [(int(pid), str(state), str(query)) for pid, state, query in rows]


async def add(store: BotStore, number: int, **extra: Any) -> StoredMessage:
    return await store.add_message(
        CHANNEL,
        user_id=1,
        username="a",
        role="user",
        content=f"message {number}",
        message_id=number,
        timestamp=T0 + timedelta(seconds=10 * number),
        **extra,
    )


async def test_common_append_is_one_statement_in_autocommit(
    store: BotStore, pg_template_url: str
) -> None:
    await add(store, 1)  # starts the session: the general path
    with core_statements(store) as statements:
        stored = await add(store, 2)
    # Nothing went through Core; the connection's last statement was the append itself, and it
    # is not inside a transaction (a BEGIN … COMMIT would have ended with COMMIT).
    assert statements == []
    assert any(
        state == "idle" and query.lstrip().startswith("WITH open_session")
        for _, state, query in backends(pg_template_url)
    )
    session = await store.current_session(CHANNEL)
    assert session is not None and stored.session_id == session.session_id
    # Stored as the full unit of work would: counted in its session, read back equal.
    assert session.message_count == 2
    assert session.last_activity == T0 + timedelta(seconds=20)
    assert (await store.history(CHANNEL))[-1] == stored
    # An id already stored is not counted twice: the one statement changes nothing, and the
    # full unit of work returns the stored row.
    again = await add(store, 2)
    assert again == stored
    session = await store.current_session(CHANNEL)
    assert session is not None and session.message_count == 2


async def test_direct_reads_equal_the_general_path(store: BotStore) -> None:
    await add(store, 1)
    await add(store, 2, metadata={"model": "m", "nested": {"k": [1, 2]}})
    await add(store, 3, attachments=[{"id": "9", "filename": "a.png"}], reply_to_message_id=2)
    await add(store, 4, edited_at=T0 + timedelta(hours=1), author_is_bot=True)
    await add(store, 5, metadata=None)

    def core(connection: Connection) -> list[StoredMessage]:
        return MessageRepository(connection, store.bot_name).newest(CHANNEL.id, 10)

    def core_items(connection: Connection) -> list[HistoryItem]:
        return MessageRepository(connection, store.bot_name).newest_items(CHANNEL.id, 10)

    with core_statements(store) as statements:
        direct = await store.history(CHANNEL, limit=10)
        direct_items = await store.history_items(CHANNEL, limit=10)
        direct_user = await store.history(CHANNEL, user_id=1)
        session = await store.current_session(CHANNEL)
        assert session is not None
        direct_session = await store.history(CHANNEL, session_id=session.session_id)
    assert statements == ["SELECT"]  # current_session only
    general = list(reversed(await store._read(core)))
    general_items = list(reversed(await store._read(core_items)))
    assert len(direct) == 5 and direct == general
    assert direct_user == general and direct_session == general
    assert direct_items == general_items
    assert direct[1].metadata == {"model": "m", "nested": {"k": [1, 2]}}
    assert [a["filename"] for a in direct[2].attachments] == ["a.png"]
    assert direct[3].edited_at == T0 + timedelta(hours=1) and direct[3].author_is_bot is True
    assert direct[3].timestamp.tzinfo is UTC and direct[4].metadata is None
    # The records do not share mutable values between reads.
    direct[1].metadata["model"] = "changed"  # type: ignore[index]
    assert (await store.history(CHANNEL, limit=10))[1].metadata == {
        "model": "m",
        "nested": {"k": [1, 2]},
    }


async def test_a_dropped_connection_falls_back_and_is_replaced(
    store: BotStore, pg_template_url: str
) -> None:
    for number in range(1, 4):
        await add(store, number)
    with psycopg.connect(plain_url(pg_template_url), autocommit=True) as admin:
        killed = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    assert any(ok for (ok,) in killed)
    # Every pooled connection is dead: the direct statements fail, their connections are
    # discarded, and the calls succeed through the general path (which reconnects).
    assert [m.message_id for m in await store.history(CHANNEL)] == ["1", "2", "3"]
    stored = await add(store, 4)
    assert stored.message_id == "4"
    assert len(await store.history_items(CHANNEL)) == 4
    # The pool is healthy again: the next direct read goes straight through.
    with core_statements(store) as statements:
        assert len(await store.history(CHANNEL)) == 4
    assert statements == []
    session = await store.current_session(CHANNEL)
    assert session is not None and session.message_count == 4


async def test_a_failing_direct_read_gives_the_general_paths_error(
    pg_databases: PostgresDatabases,
) -> None:
    url = pg_databases.create()
    await asyncio.to_thread(upgrade, url)
    config = BotConfig.model_validate(
        {"name": "sage", "storage": {"type": "postgresql", "url": url}}
    )
    async with BotStore.open(config) as store:
        await add(store, 1)
        # The table disappears under the running store: the direct read fails, and the general
        # path reports it as every read would.
        with psycopg.connect(plain_url(url), autocommit=True) as admin:
            admin.execute("DROP TABLE conversations CASCADE")
        before = {pid for pid, _, _ in backends(url)}
        for _ in range(3):
            with pytest.raises(SchemaError, match="convostore upgrade"):
                await store.history(CHANNEL)
            with pytest.raises(SchemaError, match="convostore upgrade"):
                await store.history_items(CHANNEL)
        # An error the server reported leaves the connection usable: it went back to the pool
        # instead of being replaced on every call.
        assert before and before <= {pid for pid, _, _ in backends(url)}


async def test_a_cancelled_direct_append_is_stored_whole_or_not_at_all(
    store: BotStore, pg_template_url: str
) -> None:
    await add(store, 1)
    # Another transaction holds the open session's row: the direct append waits for it.
    with psycopg.connect(plain_url(pg_template_url)) as holder:
        holder.execute("SELECT * FROM sessions WHERE is_active FOR UPDATE")
        task = asyncio.create_task(add(store, 2))
        await asyncio.sleep(0.3)
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        holder.rollback()
    # Retried with the same message id: stored once, counted once, whatever the cancelled
    # statement did.
    stored = await add(store, 2)
    history = await store.history(CHANNEL)
    assert [m.message_id for m in history] == ["1", "2"] and history[-1] == stored
    session = await store.current_session(CHANNEL)
    assert session is not None and session.message_count == 2


@contextmanager
def pool_checkouts(store: BotStore) -> Iterator[list[int]]:
    """One entry per connection checked out of the store's pool meanwhile."""
    seen: list[int] = []

    def count(*_: Any) -> None:
        seen.append(1)

    event.listen(store.engine.sync_engine.pool, "checkout", count)
    try:
        yield seen
    finally:
        event.remove(store.engine.sync_engine.pool, "checkout", count)


async def backend_pid(store: BotStore) -> int:
    rows = await store._runner.fetch_direct("SELECT pg_backend_pid()", [])
    assert rows is not None
    return int(rows[0][0])


async def test_direct_statements_one_after_another_use_one_kept_connection(
    store: BotStore,
) -> None:
    for number in range(1, 6):
        await add(store, number)
    pid = await backend_pid(store)
    with pool_checkouts(store) as checkouts, core_statements(store) as statements:
        for number in range(6, 26):
            await add(store, number)
            assert len(await store.history(CHANNEL, limit=5)) == 5
            assert len(await store.history_items(CHANNEL, limit=5)) == 5
    assert statements == [] and checkouts == []
    assert await backend_pid(store) == pid


async def test_concurrent_direct_statements_take_other_connections_of_the_pool(
    store: BotStore,
) -> None:
    for number in range(1, 6):
        await add(store, number)
    with pool_checkouts(store) as checkouts, core_statements(store) as statements:
        reads = await asyncio.gather(*(store.history(CHANNEL) for _ in range(20)))
    # None failed over to Core ("another operation is in progress" would have): the calls that
    # found the kept connection busy ran on connections checked out for them.
    assert statements == []
    assert checkouts
    assert all([m.message_id for m in read] == ["1", "2", "3", "4", "5"] for read in reads)
    assert store.engine.sync_engine.pool.checkedout() == 1  # only the kept one stays out


async def test_a_dropped_kept_connection_is_replaced(store: BotStore, pg_template_url: str) -> None:
    await add(store, 1)
    pid = await backend_pid(store)
    with psycopg.connect(plain_url(pg_template_url), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    # The kept connection is dead: the read runs through Core, the connection is discarded.
    assert [m.message_id for m in await store.history(CHANNEL)] == ["1"]
    replacement = await backend_pid(store)
    assert replacement != pid
    with core_statements(store) as statements:
        assert [m.message_id for m in await store.history(CHANNEL)] == ["1"]
    assert statements == [] and await backend_pid(store) == replacement


async def test_closing_the_store_returns_the_kept_connection(pg_template_url: str) -> None:
    _truncate(pg_template_url)
    config = BotConfig.model_validate(
        {"name": "sage", "storage": {"type": "postgresql", "url": pg_template_url}}
    )
    async with BotStore.open(config) as store:
        await add(store, 1)
        assert await store.history(CHANNEL)
        pool = store.engine.sync_engine.pool
        assert pool.checkedout() == 1
        await store._runner.close()
        assert pool.checkedout() == 0
