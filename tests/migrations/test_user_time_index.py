"""Revision 0005: a user's messages by time through ``idx_conversations_bot_user_time``.

The viewer's user page and the lookup of a user's rows (erase, export) read that index on both
backends, the upgrade replaces ``idx_conversations_bot_user`` and the downgrade restores it.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alembic import command

from convostore import BotStore, ChannelInfo
from convostore.ops.user_data import forget_user
from convostore.repositories.lifecycle import user_data
from convostore.web import queries
from tests.conftest import ConfigFactory, alembic_config, upgrade
from tests.helpers.plans import index_names as _indexes
from tests.helpers.plans import statement_plan as _plan
from tests.helpers.plans import sync_connection as _connection

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
NEW, OLD = "idx_conversations_bot_user_time", "idx_conversations_bot_user"


async def _fill(config: Any) -> None:
    async with BotStore.open(config) as store:
        for n in range(30):
            channel = ChannelInfo.channel(100 + n % 3, f"room-{n % 3}")
            await store.add_message(
                channel,
                user_id=42 if n % 2 == 0 else 43,
                username="alice" if n % 2 == 0 else "bob",
                role="user",
                content=f"line {n}",
                message_id=9000 + n,
                # Out of order across channels: the page must order by time, not by row id.
                timestamp=T0 + timedelta(minutes=(n * 7) % 30),
            )


@pytest.fixture
def old_url(empty_db_url: str) -> str:
    upgrade(empty_db_url, "0004")
    return empty_db_url


async def test_upgrade_replaces_the_user_index_and_the_user_page_reads_it(
    old_url: str, make_config: ConfigFactory
) -> None:
    assert OLD in _indexes(old_url) and NEW not in _indexes(old_url)
    base = make_config("sage")
    config = base.model_copy(update={"storage": base.storage.model_copy(update={"url": old_url})})
    await _fill(config)

    await asyncio.to_thread(upgrade, old_url)
    indexes = _indexes(old_url)
    assert NEW in indexes and OLD not in indexes

    with _connection(old_url) as connection, connection.begin():
        page = queries.user_messages(connection, "sage", "42", 1, 10)
        stamps = [(m.timestamp, m.id) for m in page.items]
        assert len(stamps) == 10 and page.has_next
        assert stamps == sorted(stamps, reverse=True)
        second = queries.user_messages(connection, "sage", "42", 2, 10)
        assert [m.content for m in second.items] and not second.has_next
        assert {m.user_id for m in page.items + second.items} == {"42"}
        assert len({m.id for m in page.items + second.items}) == 15

        plan = _plan(connection, lambda c: queries.user_messages(c, "sage", "42", 2, 10))
        assert NEW in plan, plan
        assert "TEMP B-TREE" not in plan and "Sort" not in plan, plan
        plan = _plan(connection, lambda c: user_data(c, "sage", "42"))
        assert NEW in plan, plan

    counts = await forget_user(config, "42")
    assert counts.messages == 15

    await asyncio.to_thread(command.downgrade, alembic_config(old_url), "0004")
    indexes = _indexes(old_url)
    assert OLD in indexes and NEW not in indexes
    async with BotStore.open(config) as store:
        assert len(await store.history(ChannelInfo.channel(100, "room-0"), user_id=43)) == 5
    await asyncio.to_thread(upgrade, old_url)
    assert NEW in _indexes(old_url)
