"""PostgreSQL: a backfill that creates many sessions analyzes ``sessions`` itself.

The foreign-key check of every inserted message looks up its session by (bot, channel, session
id). Planned without statistics (a new database, before autovacuum's next round) that lookup
takes ``idx_sessions_bot_channel`` and reads every session of the channel per message; with them
it takes the unique index and reads one (a table of a few pages is read whole, the planner's
choice: the tests use 600 sessions, eight pages). Autovacuum is switched off on these databases'
``sessions``, so only the store can have analyzed it; the control (the store's threshold out of
reach) shows the plan the checks get without.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from convostore import BotConfig, BotStore, ChannelInfo
from convostore.repositories import backfill
from tests.conftest import PostgresDatabases, upgrade
from tests.helpers.rows import plain_url

CHANNEL = ChannelInfo.channel(channel_id=5, name="general")
T0 = datetime(2026, 1, 1, tzinfo=UTC)
UNIQUE_INDEX = "uq_sessions_bot_name_channel_id_session_id"
# The statement PostgreSQL's foreign-key trigger runs for each inserted message, planned generic.
FK_LOOKUP = (
    "PREPARE fk_lookup(text, text, text) AS SELECT 1 FROM ONLY sessions x"
    " WHERE bot_name = $1 AND channel_id = $2 AND session_id = $3 FOR KEY SHARE OF x"
)


@pytest.fixture
def fresh_url(pg_databases: PostgresDatabases) -> Iterator[str]:
    url = pg_databases.create()
    upgrade(url)
    with psycopg.connect(plain_url(url), autocommit=True) as admin:
        admin.execute("ALTER TABLE sessions SET (autovacuum_enabled = false)")
    yield url


def messages(count: int) -> list[dict[str, Any]]:
    """``count`` messages two hours apart: each one a session of its own (default gap 30 min)."""
    return [
        {
            "user_id": 7,
            "username": "alice",
            "role": "user",
            "content": f"message {i}",
            "message_id": 1000 + i,
            "timestamp": T0 + timedelta(hours=2 * i),
        }
        for i in range(count)
    ]


async def backfill_sessions(url: str, count: int) -> None:
    config = BotConfig.model_validate(
        {"name": "sage", "storage": {"type": "postgresql", "url": url}}
    )
    async with BotStore.open(config) as store:
        stored = await store.add_messages(CHANNEL, messages(count)[::-1])
        assert len(stored) == count
        assert len(await store.sessions(CHANNEL)) == count


def statistics(url: str) -> tuple[float, str]:
    """``sessions``' estimated rows (-1: never analyzed) and the index of the generic FK lookup."""
    with psycopg.connect(plain_url(url), autocommit=True) as conn:
        row = conn.execute("SELECT reltuples FROM pg_class WHERE oid = 'sessions'::regclass")
        reltuples = row.fetchone()
        assert reltuples is not None
        conn.execute("SET plan_cache_mode = force_generic_plan")
        conn.execute(FK_LOOKUP)
        plan = conn.execute("EXPLAIN (FORMAT JSON) EXECUTE fk_lookup('sage', '5', 'x')").fetchone()
    assert plan is not None
    return float(reltuples[0]), index_of(plan[0][0]["Plan"])


def index_of(node: dict[str, Any]) -> str:
    if "Index Name" in node:
        return str(node["Index Name"])
    for child in node.get("Plans", []):
        found = index_of(child)
        if found:
            return found
    return ""


async def test_a_backfill_of_many_sessions_leaves_them_analyzed(fresh_url: str) -> None:
    await backfill_sessions(fresh_url, 600)
    reltuples, index = statistics(fresh_url)
    assert reltuples == 600
    assert index == UNIQUE_INDEX


async def test_without_the_analyze_the_lookup_reads_the_channels_sessions(
    fresh_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(backfill, "ANALYZE_THRESHOLD", 10**9)
    await backfill_sessions(fresh_url, 600)
    reltuples, index = statistics(fresh_url)
    assert reltuples == -1
    assert index == "idx_sessions_bot_channel"


async def test_a_small_backfill_leaves_the_statistics_to_autovacuum(fresh_url: str) -> None:
    await backfill_sessions(fresh_url, backfill.ANALYZE_THRESHOLD - 1)
    reltuples, _ = statistics(fresh_url)
    assert reltuples == -1


def later(count: int, days: int, first_id: int) -> list[dict[str, Any]]:
    return [
        {**m, "message_id": first_id + i, "timestamp": m["timestamp"] + timedelta(days=days)}
        for i, m in enumerate(messages(count))
    ]


async def test_analyzes_again_once_a_call_grew_the_table_by_a_tenth(fresh_url: str) -> None:
    await backfill_sessions(fresh_url, 600)
    assert statistics(fresh_url)[0] == 600
    config = BotConfig.model_validate(
        {"name": "sage", "storage": {"type": "postgresql", "url": fresh_url}}
    )
    async with BotStore.open(config) as store:
        # 60 new sessions: fewer than 50 + 10 % of 600, the statistics stay as they were.
        await store.add_messages(CHANNEL, later(60, 400, 5000))
        assert statistics(fresh_url)[0] == 600
        # 120 more in one call: past the threshold.
        await store.add_messages(CHANNEL, later(120, 800, 9000))
        assert statistics(fresh_url)[0] == 780
