"""Revision 0007: SQLite's covering index for history, through upgrade and downgrade."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta

from alembic import command
from sqlalchemy import create_engine, inspect
from sqlalchemy.engine import make_url

from convostore import BotStore, ChannelInfo
from convostore.models import HISTORY_INDEX_COLUMNS
from convostore.repositories.messages import newest_driver_sql
from tests.conftest import ConfigFactory, alembic_config, revision_named, upgrade
from tests.helpers.rows import sync_url

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
GENERAL = ChannelInfo.channel(channel_id=123, name="general")
RANDOM = ChannelInfo.channel(channel_id=456, name="random")
INDEX = "idx_conversations_history"
REVISION = revision_named("history_covering_index")


def index_columns(url: str) -> list[str] | None:
    engine = create_engine(sync_url(url))
    try:
        for index in inspect(engine).get_indexes("conversations"):
            if index["name"] == INDEX:
                return [str(c) for c in index["column_names"]]
        return None
    finally:
        engine.dispose()


def history_plan(url: str) -> str:
    path = make_url(url).database
    assert path is not None
    with sqlite3.connect(path) as conn:
        rows = conn.execute("EXPLAIN QUERY PLAN " + newest_driver_sql(), ("bench", "123", 100))
        return "; ".join(str(r[3]) for r in rows)


async def fill(store: BotStore, first: int, count: int) -> None:
    # Two channels written in turn, as live traffic interleaves them.
    for n in range(first, first + count):
        await store.add_message(
            GENERAL if n % 2 == 0 else RANDOM,
            user_id=42 + n % 3,
            username=f"user{n % 3}",
            role="user" if n % 4 < 2 else "assistant",
            content=f"message {n} " + "x" * (n % 7) * 300,
            message_id=10_000 + n,
            timestamp=T0 + timedelta(seconds=30 * n),
            metadata={"n": n},
        )


async def test_upgrade_adds_the_index_on_sqlite_only_and_downgrade_removes_it(
    backend: str, empty_db_url: str, make_config: ConfigFactory
) -> None:
    url = empty_db_url
    await asyncio.to_thread(upgrade, url, REVISION.down_revision)
    assert index_columns(url) is None
    config = make_config().model_copy(
        update={"storage": make_config().storage.model_copy(update={"url": url})}
    )
    async with BotStore.open(config) as store:
        await fill(store, 0, 40)
        before = await store.history(GENERAL, limit=100)
        before_user = await store.history(GENERAL, limit=5, user_id=43)
    await asyncio.to_thread(upgrade, url)
    if backend == "sqlite":
        assert index_columns(url) == list(HISTORY_INDEX_COLUMNS)
        assert f"USING COVERING INDEX {INDEX} " in history_plan(url)
    else:
        assert index_columns(url) is None  # PostgreSQL keeps reading the table (see the revision)
    async with BotStore.open(config) as store:
        # The same records, from the index: every field the read returns is in it.
        assert await store.history(GENERAL, limit=100) == before
        assert await store.history(GENERAL, limit=5, user_id=43) == before_user
        await fill(store, 40, 10)
        after = await store.history(GENERAL, limit=100)
        assert [m.message_id for m in after[: len(before)]] == [m.message_id for m in before]
        assert len(after) == len(before) + 5
    await asyncio.to_thread(command.downgrade, alembic_config(url), REVISION.down_revision)
    assert index_columns(url) is None
    if backend == "sqlite":
        assert INDEX not in history_plan(url)
    async with BotStore.open(config) as store:
        assert await store.history(GENERAL, limit=100) == after
        await fill(store, 50, 2)
    await asyncio.to_thread(upgrade, url)
    async with BotStore.open(config) as store:
        assert len(await store.history(GENERAL, limit=100)) == len(after) + 1


def test_the_index_holds_every_column_a_history_read_selects() -> None:
    # A column added to the read but not to the index would send every read back to the table.
    from convostore.repositories.rows import DRIVER_FIELDS

    assert set(DRIVER_FIELDS) | {"bot_name", "channel_id"} <= set(HISTORY_INDEX_COLUMNS)
    # channel_id first: a query on a bot's rows alone (a user's rows, say) never scans this index.
    assert HISTORY_INDEX_COLUMNS[:4] == ("channel_id", "bot_name", "timestamp", "id")
