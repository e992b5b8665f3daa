"""Revision 0008: ``idx_conversations_bot_channel`` dropped, its queries served by the next index.

On both backends the upgrade removes the index and keeps every row; a channel's lookup by key (its
newest name) then reads ``idx_conversations_bot_channel_time`` (or, on SQLite, the covering
index), history returns the same records and writes go on; the downgrade creates the index again.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from alembic import command
from sqlalchemy.engine import Connection

from convostore import BotStore, ChannelInfo
from convostore.repositories.messages import MessageRepository
from tests.conftest import ConfigFactory, alembic_config, revision_named, upgrade
from tests.helpers.plans import index_names, statement_plan, sync_connection
from tests.helpers.rows import T0, add, query

DROPPED = "idx_conversations_bot_channel"
SERVES = {"idx_conversations_bot_channel_time", "idx_conversations_history"}
REVISION = revision_named("drop_redundant_channel_index")


def _plan_of_channel_name(connection: Connection) -> str:
    """The plan of the channel-name lookup, as the store runs it (only indexes allowed)."""

    def lookup(c: Connection) -> None:
        assert MessageRepository(c, "sage").channel_name("100") == "room-a"

    return statement_plan(connection, lookup)


async def test_upgrade_drops_the_index_keeps_the_rows_and_downgrade_restores_it(
    backend: str, empty_db_url: str, make_config: ConfigFactory
) -> None:
    url = empty_db_url
    await asyncio.to_thread(upgrade, url, REVISION.down_revision)
    assert DROPPED in index_names(url)
    base = make_config("sage")
    config = base.model_copy(update={"storage": base.storage.model_copy(update={"url": url})})
    async with BotStore.open(config) as store:
        for n in range(40):
            channel = ChannelInfo.channel(100 + n % 2, "room-a" if n % 2 == 0 else "room-b")
            await add(store, channel, n, f"line {n}")
        before = await store.history(ChannelInfo.channel(100, "room-a"), limit=100)

    await asyncio.to_thread(upgrade, url)
    assert DROPPED not in index_names(url)
    assert SERVES & index_names(url)
    with sync_connection(url) as connection, connection.begin():
        plan = _plan_of_channel_name(connection)
        assert any(index in plan for index in SERVES), plan
    assert query(url, "SELECT count(*) FROM conversations") == [(40,)]
    async with BotStore.open(config) as store:
        assert await store.history(ChannelInfo.channel(100, "room-a"), limit=100) == before
        # Writes go on without the index.
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
    assert DROPPED in index_names(url)
    assert query(url, "SELECT count(*) FROM conversations") == [(41,)]


async def test_upgrade_and_downgrade_beside_a_live_writer_lose_nothing(
    backend: str, empty_db_url: str, make_config: ConfigFactory
) -> None:
    """0007 → 0008 → 0007 → 0008 while a bot keeps writing: every acknowledged message survives."""
    url = empty_db_url
    await asyncio.to_thread(upgrade, url, REVISION.down_revision)
    base = make_config("sage")
    config = base.model_copy(update={"storage": base.storage.model_copy(update={"url": url})})
    acknowledged: list[str] = []
    stop = asyncio.Event()
    async with BotStore.open(config) as store:

        async def live_writer() -> None:
            n = 0
            while not stop.is_set():
                channel = ChannelInfo.channel(100 + n % 3, f"room-{n % 3}")
                await add(store, channel, n / 10, f"live {n}")
                acknowledged.append(f"live {n}")
                n += 1
                await asyncio.sleep(0)

        writer = asyncio.create_task(live_writer())
        during: list[int] = []
        for step, dropped in (
            (lambda: upgrade(url), False),
            (lambda: command.downgrade(alembic_config(url), REVISION.down_revision), True),
            (lambda: upgrade(url), False),
        ):
            await asyncio.sleep(0.2)
            before = len(acknowledged)
            await asyncio.to_thread(step)
            during.append(len(acknowledged) - before)  # written while the revision ran
            assert (DROPPED in index_names(url)) is dropped
        await asyncio.sleep(0.2)
        stop.set()
        await writer
    assert DROPPED not in index_names(url)
    assert all(count > 0 for count in during), during
    stored = [content for (content,) in query(url, "SELECT content FROM conversations")]
    assert sorted(stored) == sorted(acknowledged)
    assert query(url, "SELECT sum(message_count) FROM sessions") == [(len(acknowledged),)]
