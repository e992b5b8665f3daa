"""Revision 0008: ``idx_conversations_bot_channel`` dropped, its queries served by the next index.

On both backends the upgrade removes the index and keeps every row; a channel's queries (its
newest name, a rename, its history) then read ``idx_conversations_bot_channel_time`` (SQLite's
history: its covering index); the downgrade creates the index again.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from alembic import command
from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import Connection, Engine, make_url

from convostore import BotStore, ChannelInfo
from convostore.repositories.messages import MessageRepository
from tests.conftest import ConfigFactory, alembic_config, revision_named, upgrade

T0 = datetime(2026, 4, 1, 8, 0, tzinfo=UTC)
DROPPED = "idx_conversations_bot_channel"
SERVES = {"idx_conversations_bot_channel_time", "idx_conversations_history"}
REVISION = revision_named("drop_redundant_channel_index")


def _engine(url: str) -> Engine:
    parsed = make_url(url)
    driver = "sqlite" if parsed.get_backend_name() == "sqlite" else "postgresql+psycopg"
    return create_engine(parsed.set(drivername=driver))


def _indexes(url: str) -> set[str]:
    engine = _engine(url)
    try:
        with engine.connect() as connection:
            return {str(i["name"]) for i in inspect(connection).get_indexes("conversations")}
    finally:
        engine.dispose()


def _plan_of_channel_name(connection: Connection) -> str:
    """The plan of the channel-name lookup, as the store runs it, with only indexes allowed."""
    sent: list[tuple[str, object]] = []

    def record(_c: object, _cur: object, statement: str, parameters: object, *_: object) -> None:
        sent.append((statement, parameters))

    event.listen(connection, "before_cursor_execute", record)
    try:
        assert MessageRepository(connection, "sage").channel_name("100") == "room-a"
    finally:
        event.remove(connection, "before_cursor_execute", record)
    statement, parameters = sent[0]
    if connection.dialect.name == "sqlite":
        rows = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
        return "\n".join(str(r[-1]) for r in rows)
    for setting in ("enable_seqscan", "enable_bitmapscan"):
        connection.exec_driver_sql(f"SET LOCAL {setting} = off")
    return "\n".join(
        str(r[0]) for r in connection.exec_driver_sql(f"EXPLAIN {statement}", parameters)
    )


async def test_upgrade_drops_the_index_keeps_the_rows_and_downgrade_restores_it(
    backend: str, empty_db_url: str, make_config: ConfigFactory
) -> None:
    url = empty_db_url
    await asyncio.to_thread(upgrade, url, REVISION.down_revision)
    assert DROPPED in _indexes(url)
    base = make_config("sage")
    config = base.model_copy(update={"storage": base.storage.model_copy(update={"url": url})})
    async with BotStore.open(config) as store:
        for n in range(40):
            channel = ChannelInfo.channel(100 + n % 2, "room-a" if n % 2 == 0 else "room-b")
            await store.add_message(
                channel,
                user_id=42,
                username="alice",
                role="user",
                content=f"line {n}",
                message_id=7000 + n,
                timestamp=T0 + timedelta(minutes=n),
            )
        before = await store.history(ChannelInfo.channel(100, "room-a"), limit=100)

    await asyncio.to_thread(upgrade, url)
    assert DROPPED not in _indexes(url)
    assert SERVES & _indexes(url)
    engine = _engine(url)
    try:
        with engine.connect() as connection, connection.begin():
            plan = _plan_of_channel_name(connection)
            assert any(index in plan for index in SERVES), plan
            count = connection.execute(text("SELECT count(*) FROM conversations")).scalar()
            assert count == 40
    finally:
        engine.dispose()
    async with BotStore.open(config) as store:
        assert await store.history(ChannelInfo.channel(100, "room-a"), limit=100) == before
        # Writes and a channel's rename go on without the index.
        stored = await store.add_message(
            ChannelInfo.channel(100, "room-a"),
            user_id=42,
            username="alice",
            role="user",
            content="after the upgrade",
            message_id=8000,
            timestamp=T0 + timedelta(hours=2),
        )
        assert (await store.history(ChannelInfo.channel(100, "room-a"), limit=1)) == [stored]

    await asyncio.to_thread(command.downgrade, alembic_config(url), REVISION.down_revision)
    assert DROPPED in _indexes(url)
    engine = _engine(url)
    try:
        with engine.connect() as connection:
            count = connection.execute(text("SELECT count(*) FROM conversations")).scalar()
            assert count == 41
    finally:
        engine.dispose()
