"""add_messages (backfill): any order, older than the channel, idempotent, sessions exact."""

from __future__ import annotations

import asyncio
import itertools
import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from convostore import BotStore, ChannelInfo, InvalidInput
from tests.conftest import ConfigFactory

T0 = datetime(2024, 1, 8, 14, 30, tzinfo=UTC)
CHANNEL = ChannelInfo.channel(10, "general")
GAP, TIMEOUT = 600, 3600


def item(message_id: int, seconds: float, **extra: Any) -> dict[str, Any]:
    return {
        "user_id": 42,
        "username": "alice",
        "role": "user",
        "content": f"m{message_id}",
        "message_id": message_id,
        "timestamp": T0 + timedelta(seconds=seconds),
        **extra,
    }


async def check_sessions(store: BotStore, channel: ChannelInfo = CHANNEL) -> int:
    """Assert the gap/timeout rule and exact counts for every session; the number of messages."""
    async with store.engine.connect() as connection:
        rows = (
            await connection.execute(
                text(
                    "SELECT session_id, timestamp FROM conversations WHERE bot_name = :b AND"
                    " channel_id = :c ORDER BY timestamp, id"
                ),
                {"b": store.bot_name, "c": channel.id},
            )
        ).all()
    messages: dict[str, list[datetime]] = {}
    history = await store.history(channel, limit=10**6)
    for record in history:
        messages.setdefault(record.session_id, []).append(record.timestamp)
    assert len(rows) == len(history)
    sessions = await store.sessions(channel)
    assert {s.session_id for s in sessions} == set(messages)  # no empty sessions, no orphans
    assert sum(s.is_active for s in sessions) <= 1
    spans = []
    for session in sessions:
        times = messages[session.session_id]
        assert session.message_count == len(times)
        assert all((b - a).total_seconds() <= GAP for a, b in itertools.pairwise(times))
        assert (times[-1] - times[0]).total_seconds() <= TIMEOUT
        spans.append((times[0], times[-1]))
    spans.sort()
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert end < start  # sessions do not overlap
    return len(history)


@pytest.fixture
async def bf_store(make_config: ConfigFactory) -> Any:
    async with BotStore.open(make_config(session_gap=GAP, session_timeout=TIMEOUT)) as opened:
        yield opened


async def test_backfill_older_than_the_channel_in_any_order(bf_store: BotStore) -> None:
    live = [
        await bf_store.add_message(
            CHANNEL,
            user_id=1,
            username="bob",
            role="user",
            content="live",
            message_id=10_000 + i,
            timestamp=T0 + timedelta(hours=10, seconds=i * 30),
        )
        for i in range(5)
    ]
    older = [item(i, i * 200) for i in range(60)]  # 200 s apart: sessions cut by the timeout
    random.Random(1).shuffle(older)
    stored = await bf_store.add_messages(CHANNEL, older)
    assert [r.message_id for r in stored] == [str(m["message_id"]) for m in older]
    assert await check_sessions(bf_store) == 65
    assert (await bf_store.current_session(CHANNEL)).session_id == live[0].session_id  # type: ignore[union-attr]
    # Rerun: nothing added, the same records come back.
    again = await bf_store.add_messages(CHANNEL, older)
    assert {r.id for r in again} == {r.id for r in stored}
    assert await check_sessions(bf_store) == 65


@pytest.mark.parametrize("seed", range(4))
async def test_randomised_interleavings_keep_the_rule(bf_store: BotStore, seed: int) -> None:
    """Live writes, backfills between and around them, reruns, in a random order."""
    rng = random.Random(seed)
    times = sorted(rng.uniform(0, 6 * 3600) for _ in range(120))
    ids = list(range(1, 121))
    pairs = list(zip(ids, times, strict=True))
    rng.shuffle(pairs)
    live, rest = pairs[:30], pairs[30:]
    for message_id, seconds in sorted(live, key=lambda p: p[1]):
        await bf_store.add_message(CHANNEL, **item(message_id, seconds))
    while rest:
        size = rng.randint(1, 40)
        batch, rest = rest[:size], rest[size:]
        extra = rng.sample(pairs, 3)  # some already stored
        await bf_store.add_messages(CHANNEL, [item(i, s) for i, s in batch + extra])
        await check_sessions(bf_store)
    assert await check_sessions(bf_store) == 120


async def test_backfill_batches_over_the_transaction_size(
    bf_store: BotStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    import convostore.store

    monkeypatch.setattr(convostore.store, "BACKFILL_BATCH", 7)
    batch = [item(i, i * 10) for i in range(50)]
    random.Random(3).shuffle(batch)
    stored = await bf_store.add_messages(CHANNEL, batch + batch[:5])
    assert len(stored) == 55 and len({r.id for r in stored}) == 50
    assert await check_sessions(bf_store) == 50


async def test_backfill_keeps_the_discord_fields(bf_store: BotStore) -> None:
    thread = ChannelInfo("11", "t", "channel", parent_id="10")
    edited = T0 + timedelta(seconds=5, microseconds=7)
    stored = await bf_store.add_messages(
        thread,
        [
            item(
                1,
                0,
                reply_to_message_id=7,
                attachments=[{"id": 3, "filename": "a.txt"}],
                author_is_bot=True,
                role="assistant",
                edited_at=edited,
                metadata={"k": ["v", 1]},
            ),
            item(2, 1),
        ],
    )
    assert await bf_store.history(thread) == stored
    read = stored[0]
    assert (read.parent_id, read.reply_to_message_id, read.author_is_bot) == ("10", "7", True)
    assert (read.edited_at, read.metadata) == (edited, {"k": ["v", 1]})
    assert read.attachments == [
        {"id": "3", "filename": "a.txt", "url": None, "content_type": None, "size": None}
    ]
    assert (stored[1].edited_at, stored[1].attachments, stored[1].metadata) == (None, [], None)
    # What a backfill wrote is what add_message writes, byte for byte in the database.
    await bf_store.add_message(thread, **item(3, 2, metadata={"k": ["v", 1]}, edited_at=edited))
    async with bf_store.engine.connect() as connection:
        rows = (
            await connection.execute(
                text(
                    "SELECT timestamp, metadata, attachments, edited_at, author_is_bot"
                    " FROM conversations WHERE message_id IN ('1', '3') ORDER BY message_id"
                )
            )
        ).all()
    assert [type(v) for v in rows[0]] == [type(v) for v in rows[1]]
    assert (rows[0][1], rows[0][3]) == (rows[1][1], rows[1][3])  # metadata, edited_at


@pytest.mark.parametrize(
    ("bad", "words"),
    [
        ({"role": "robot"}, "role"),
        ({"content": "a\x00"}, "NUL"),
        ({"message_id": None}, "message_id is required"),
        ({"timestamp": datetime(2024, 1, 1)}, "timezone-aware"),
        ({"colour": "red"}, "colour"),
    ],
)
async def test_one_bad_record_refuses_the_whole_batch(
    bf_store: BotStore, bad: dict[str, Any], words: str
) -> None:
    batch = [item(i, i) for i in range(10)]
    batch[6] = {**batch[6], **bad}
    with pytest.raises(InvalidInput, match=rf"messages\[6\]: .*{words}"):
        await bf_store.add_messages(CHANNEL, batch)
    assert await bf_store.history(CHANNEL) == []
    assert await bf_store.sessions(CHANNEL) == []


async def test_another_bots_sessions_are_untouched(make_config: ConfigFactory) -> None:
    async with (
        BotStore.open(make_config("sage", session_gap=GAP, session_timeout=TIMEOUT)) as sage,
        BotStore.open(make_config("spark", session_gap=GAP, session_timeout=TIMEOUT)) as spark,
    ):
        theirs = await spark.add_message(CHANNEL, **item(1, 100))
        await sage.add_messages(CHANNEL, [item(1, 90), item(2, 110)])
        assert await spark.history(CHANNEL) == [theirs]
        assert [s.message_count for s in await spark.sessions(CHANNEL)] == [1]
        assert await check_sessions(sage) == 2


async def test_backfill_beside_a_live_writer(make_config: ConfigFactory) -> None:
    """A backfill recuts sessions while another store writes live messages to the channel."""
    config = make_config(session_gap=GAP, session_timeout=TIMEOUT)
    async with BotStore.open(config) as backfiller, BotStore.open(config) as live:
        older = [item(i, i * 100) for i in range(1, 301)]  # ~8 hours, before the live traffic
        random.Random(5).shuffle(older)

        async def write_live() -> int:
            for i in range(40):
                await live.add_message(CHANNEL, **item(100_000 + i, 40_000 + i * 10))
                await asyncio.sleep(0)
            return 40

        async def backfill() -> None:
            for start in range(0, 300, 60):
                await backfiller.add_messages(CHANNEL, older[start : start + 60])

        written, _ = await asyncio.gather(write_live(), backfill())
        assert await check_sessions(live) == 300 + written
        assert (await live.current_session(CHANNEL)) is not None


def test_stored_id_lookup_is_one_pass_even_with_stale_statistics(db_url: str) -> None:
    """Statistics taken while this bot had no rows: the lookup still reads the table once at most.

    500-id ``IN`` lists were answered on PostgreSQL by reading all of the bot's rows once per list
    (the planner thought the bot rare): a backfill into a freshly filled table slowed
    quadratically. One array for the whole batch reads them once at most; never once per id.
    """
    from sqlalchemy import create_engine, insert
    from sqlalchemy.engine import make_url

    from convostore.repositories.messages import _STORED_IDS  # the statement under test
    from convostore.repositories.rows import MESSAGES, SESSIONS

    url = make_url(db_url)
    postgresql = url.get_backend_name() == "postgresql"
    driver = "postgresql+psycopg" if postgresql else "sqlite"
    engine = create_engine(url.set(drivername=driver))

    def rows(bot: str, count: int) -> list[dict[str, Any]]:
        return [
            {
                "bot_name": bot, "channel_id": "1", "channel_name": "c", "channel_type": "channel",
                "user_id": "2", "username": "u", "session_id": "s", "message_id": str(i),
                "role": "user", "content": "x", "timestamp": T0, "metadata": None,
            }
            for i in range(count)
        ]  # fmt: skip

    try:
        with engine.begin() as connection:
            for bot in ("echo", "sage"):
                connection.execute(
                    insert(SESSIONS),
                    {"bot_name": bot, "channel_id": "1", "session_id": "s", "started_at": T0,
                     "last_activity": T0, "message_count": 0, "is_active": False},
                )  # fmt: skip
            connection.execute(insert(MESSAGES), rows("echo", 3000))
            connection.execute(text("ANALYZE"))
            connection.execute(insert(MESSAGES), rows("sage", 3000))
            ids = [str(i) for i in range(0, 3000, 6)]
            dialect = "postgresql" if postgresql else "sqlite"
            compiled = _STORED_IDS[dialect].compile(dialect=connection.dialect)
            if postgresql:
                params = compiled.construct_params({"bot_name": "sage", "ids": ids})
                plan = connection.exec_driver_sql(f"EXPLAIN {compiled}", params).scalars().all()
            else:
                sql = f"EXPLAIN QUERY PLAN {compiled}"
                plan = [
                    row[-1] for row in connection.exec_driver_sql(sql, ("sage", json.dumps(ids)))
                ]
            found = connection.execute(_STORED_IDS[dialect], {"bot_name": "sage", "ids": ids})
            assert sorted(found.scalars()) == sorted(ids)
    finally:
        engine.dispose()
    text_plan = "\n".join(plan)
    if postgresql:
        assert "Nested Loop" not in text_plan and "Function Scan" not in text_plan, text_plan
        assert text_plan.count("on conversations") == 1, text_plan
    else:
        assert "SEARCH conversations USING COVERING INDEX" in text_plan, text_plan
        assert "(bot_name=? AND message_id=?)" in text_plan, text_plan
