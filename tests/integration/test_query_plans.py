"""The hot queries use their indexes, on SQLite and PostgreSQL, read from the real query plans.

The statements are the ones the store and cleanup run (``convostore.ops.plans`` builds them from
their own modules; ``convostore doctor`` reads the same plans). The tables hold a few thousand
rows of several bots and channels and are analyzed; on PostgreSQL sequential scans are also
switched off for the transaction, so the planner's answer is "this index serves the query" and a
small table cannot make a sequential scan the cheaper choice.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import cast

import pytest
from sqlalchemy import Table, create_engine, insert, text
from sqlalchemy.engine import Connection, Engine

from convostore.models import ChatSessionModel, ConversationModel
from convostore.ops.plans import (
    CLEANUP_SELECTION,
    HISTORY,
    SESSION_LOOKUP,
    HotQuery,
    QueryPlan,
    explain_hot_queries,
)
from tests.helpers.rows import sync_url

SESSIONS = cast(Table, ChatSessionModel.__table__)
CONVERSATIONS = cast(Table, ConversationModel.__table__)
START = datetime(2026, 1, 1, tzinfo=UTC)
BOTS = ("sage", "echo")
CHANNELS = 20
PER_CHANNEL = 60


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = create_engine(sync_url(db_url))
    with engine.begin() as connection:
        fill(connection)
        connection.execute(text("ANALYZE"))
    yield engine
    engine.dispose()


def fill(connection: Connection) -> None:
    sessions, messages = [], []
    for bot in BOTS:
        for c in range(CHANNELS):
            channel = str(1000 + c)
            for s in range(3):
                at = START + timedelta(days=s, minutes=c)
                sessions.append(
                    {
                        "bot_name": bot,
                        "channel_id": channel,
                        "session_id": f"s{s}",
                        "started_at": at,
                        "last_activity": at + timedelta(minutes=PER_CHANNEL),
                        "message_count": PER_CHANNEL // 3,
                        "is_active": s == 2,
                    }
                )
            for m in range(PER_CHANNEL):
                messages.append(
                    {
                        "bot_name": bot,
                        "channel_id": channel,
                        "channel_name": f"channel-{c}",
                        "channel_type": "channel",
                        "user_id": str(m % 7),
                        "username": f"user{m % 7}",
                        "session_id": f"s{m * 3 // PER_CHANNEL}",
                        "message_id": f"{bot}-{channel}-{m}",
                        "role": "user",
                        "content": "hello there",
                        "timestamp": START + timedelta(days=m * 3 // PER_CHANNEL, seconds=m),
                    }
                )
    connection.execute(insert(SESSIONS), sessions)
    connection.execute(insert(CONVERSATIONS), messages)


def plans(engine: Engine) -> dict[str, QueryPlan]:
    with engine.connect() as connection:
        found = explain_hot_queries(
            connection, bot_name="sage", channel_id="1003", now=START + timedelta(days=2)
        )
        connection.rollback()
    return {plan.query.name: plan for plan in found}


def index_nodes(plan: QueryPlan, backend: str) -> list[str]:
    """The plan lines that read the query's table through an index."""
    if backend == "sqlite":
        return [line for line in plan.lines if line.startswith(f"SEARCH {plan.query.table} ")]
    kinds = ("Index Scan ", "Index Only Scan ", "Bitmap Index Scan ")
    return [line for line in plan.lines if line.startswith(kinds)]


@pytest.mark.parametrize(
    ("query", "indexes"),
    [
        (HISTORY, {"idx_conversations_bot_channel_time"}),
        # SQLite takes the partial index; PostgreSQL may equally read (bot_name, channel_id) and
        # check is_active on the few rows found: both serve the lookup.
        (SESSION_LOOKUP, {"uq_sessions_one_active", "idx_sessions_bot_channel"}),
        (CLEANUP_SELECTION, {"idx_sessions_bot_channel"}),
    ],
    ids=["history", "session-lookup", "cleanup-selection"],
)
def test_hot_query_uses_its_index(
    engine: Engine, backend: str, query: HotQuery, indexes: set[str]
) -> None:
    plan = plans(engine)[query.name]
    if backend == "sqlite" and query is SESSION_LOOKUP:
        indexes = {"uq_sessions_one_active"}
    if backend == "sqlite" and query is HISTORY:
        indexes = {"idx_conversations_history"}
    assert plan.index_used in indexes, plan.lines
    assert plan.uses_expected_index
    assert plan.query.table not in plan.full_scans, plan.lines
    [node] = index_nodes(plan, backend)
    if backend == "postgresql":
        assert node.startswith(("Index Scan ", "Index Only Scan ", "Bitmap Index Scan "))
        assert f"using {plan.index_used}" in node
    else:
        assert node.startswith(f"SEARCH {plan.query.table} USING ")
        assert f" INDEX {plan.index_used} " in node
        if query is HISTORY:
            # Every column the read selects is in the index: the table itself is never read.
            assert " USING COVERING INDEX idx_conversations_history " in node


def test_history_falls_back_to_a_worse_index_when_its_own_is_dropped(
    engine: Engine, backend: str
) -> None:
    with engine.begin() as connection:
        connection.execute(text("DROP INDEX idx_conversations_bot_channel_time"))
        if backend == "sqlite":
            connection.execute(text("DROP INDEX idx_conversations_history"))
    plan = plans(engine)[HISTORY.name]
    assert plan.index_used not in HISTORY.indexes, plan.lines
    assert not plan.uses_expected_index
