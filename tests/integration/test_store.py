"""BotStore behaviour, on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from convostore import BotStore, ChannelInfo, InvalidInput, StoredMessage
from tests.conftest import ConfigFactory

T0 = datetime(2024, 1, 8, 14, 30, 0, tzinfo=UTC)
GENERAL = ChannelInfo.channel(channel_id=123, name="general")


async def say(
    store: BotStore,
    at: datetime,
    *,
    channel: ChannelInfo = GENERAL,
    content: str = "hi",
    message_id: int | None = None,
    user_id: int = 42,
    role: str = "user",
) -> StoredMessage:
    return await store.add_message(
        channel,
        user_id=user_id,
        username="alice",
        role=role,
        content=content,
        message_id=message_id,
        timestamp=at,
    )


async def test_add_message_returns_detached_record(store: BotStore) -> None:
    row = await store.add_message(
        GENERAL,
        user_id="42",
        username="alice",
        role="user",
        content="héllo 👋",
        message_id=1391234567890123456,
        timestamp=T0,
        metadata={"k": [1, 2]},
    )
    assert row.id > 0
    assert row.bot_name == "sage"
    assert (row.channel_id, row.channel_name, row.channel_type) == ("123", "general", "channel")
    assert (row.user_id, row.username, row.role) == ("42", "alice", "user")
    assert row.message_id == "1391234567890123456"
    assert row.content == "héllo 👋"
    assert row.timestamp == T0 and row.timestamp.tzinfo is not None
    assert row.timestamp.utcoffset() == timedelta(0)
    assert row.metadata == {"k": [1, 2]}
    assert row.session_id == "2024-01-08_14-30-00_3600s"
    with pytest.raises(dataclasses.FrozenInstanceError):
        row.content = "changed"  # type: ignore[misc]


async def test_non_utc_timestamp_is_stored_as_the_same_instant(store: BotStore) -> None:
    paris = timezone(timedelta(hours=2))
    row = await say(store, datetime(2024, 1, 8, 16, 30, tzinfo=paris))
    assert row.timestamp == T0
    assert row.timestamp.tzinfo == UTC
    [again] = await store.history(GENERAL)
    assert again.timestamp == T0 and again.timestamp.tzinfo == UTC


async def test_default_timestamp_is_now(store: BotStore) -> None:
    before = datetime.now(UTC)
    row = await store.add_message(GENERAL, user_id=1, username="a", role="user", content="x")
    assert (
        before - timedelta(seconds=1) <= row.timestamp <= datetime.now(UTC) + timedelta(seconds=1)
    )


async def test_generated_message_ids_are_unique_decimal(store: BotStore) -> None:
    a = await say(store, T0)
    b = await say(store, T0)
    assert a.message_id != b.message_id
    assert a.message_id.isdigit() and len(a.message_id) > 20


async def test_same_message_id_twice_stores_one_row(store: BotStore) -> None:
    first = await say(store, T0, message_id=111, content="first")
    second = await say(store, T0 + timedelta(seconds=5), message_id=111, content="second")
    assert second == first
    history = await store.history(GENERAL)
    assert [m.content for m in history] == ["first"]
    session = await store.current_session(GENERAL)
    assert session is not None and session.message_count == 1


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"role": "bot"}, "role"),
        ({"role": ""}, "role"),
        ({"user_id": ""}, "user_id"),
        ({"user_id": "abc"}, "user_id"),
        ({"message_id": ""}, "message_id"),
        ({"timestamp": datetime(2024, 1, 1, 12, 0)}, "timezone-aware"),
        ({"metadata": {"x": object()}}, "metadata"),
        ({"content": None}, "content"),
        ({"content": "a\x00b"}, "content contains a NUL"),
        ({"username": "a\x00"}, "username contains a NUL"),
    ],
)
async def test_invalid_input_is_rejected(
    store: BotStore, kwargs: dict[str, object], fragment: str
) -> None:
    call: dict[str, object] = {
        "user_id": 1,
        "username": "a",
        "role": "user",
        "content": "x",
        "timestamp": T0,
    }
    call.update(kwargs)
    with pytest.raises(InvalidInput, match=fragment) as info:
        await store.add_message(GENERAL, **call)  # type: ignore[arg-type]
    assert isinstance(info.value, ValueError)
    assert await store.history(GENERAL) == []


async def test_history_order_and_limit(store: BotStore) -> None:
    for i in range(10):
        await say(store, T0 + timedelta(seconds=i), content=f"m{i}")
    # Same timestamp: ordered by insertion (id).
    await say(store, T0 + timedelta(seconds=9), content="m9b")
    assert [m.content for m in await store.history(GENERAL, limit=3)] == ["m8", "m9", "m9b"]
    assert len(await store.history(GENERAL)) == 11
    assert await store.history(GENERAL, limit=0) == []
    with pytest.raises(InvalidInput):
        await store.history(GENERAL, limit=-1)


async def test_history_orders_by_timestamp_not_arrival(store: BotStore) -> None:
    await say(store, T0 + timedelta(seconds=30), content="late")
    await say(store, T0 + timedelta(seconds=10), content="early")
    assert [m.content for m in await store.history(GENERAL)] == ["early", "late"]


async def test_history_default_limit_is_max_history(make_config: ConfigFactory) -> None:
    async with BotStore.open(make_config(max_history=5)) as store:
        for i in range(8):
            await say(store, T0 + timedelta(seconds=i), content=str(i))
        assert [m.content for m in await store.history(GENERAL)] == ["3", "4", "5", "6", "7"]


async def test_history_filters_by_user_and_session(store: BotStore) -> None:
    await say(store, T0, user_id=1, content="a1")
    await say(store, T0 + timedelta(seconds=1), user_id=2, content="b1")
    later = await say(store, T0 + timedelta(hours=2), user_id=1, content="a2")
    assert [m.content for m in await store.history(GENERAL, user_id=1)] == ["a1", "a2"]
    assert [m.content for m in await store.history(GENERAL, session_id=later.session_id)] == ["a2"]


# --- sessions ---------------------------------------------------------------------------------


async def test_first_message_starts_a_session(store: BotStore) -> None:
    assert await store.current_session(GENERAL) is None
    row = await say(store, T0)
    session = await store.current_session(GENERAL)
    assert session is not None
    assert session.session_id == row.session_id == "2024-01-08_14-30-00_3600s"
    assert (session.started_at, session.last_activity) == (T0, T0)
    assert session.message_count == 1 and session.is_active
    assert session.channel_id == "123"


async def test_gap_boundary_exactly_300s_joins_301s_splits(store: BotStore) -> None:
    a = await say(store, T0)
    b = await say(store, T0 + timedelta(seconds=300))
    assert b.session_id == a.session_id
    c = await say(store, T0 + timedelta(seconds=601))
    assert c.session_id != a.session_id
    assert c.session_id == "2024-01-08_14-40-01_3600s"
    sessions = await store.sessions(GENERAL)
    assert [s.session_id for s in sessions] == [c.session_id, a.session_id]
    assert [s.is_active for s in sessions] == [True, False]
    assert sessions[1].message_count == 2
    assert sessions[1].last_activity == T0 + timedelta(seconds=300)


async def test_timeout_boundary(store: BotStore) -> None:
    first = await say(store, T0)
    # Keep talking every 240 s: never a gap, but the session may not span more than 3600 s.
    at = T0
    while at + timedelta(seconds=240) <= T0 + timedelta(seconds=3600):
        at += timedelta(seconds=240)
        row = await say(store, at)
        assert row.session_id == first.session_id
    assert at == T0 + timedelta(seconds=3600)  # exactly the timeout still joins
    after = await say(store, T0 + timedelta(seconds=3601))
    assert after.session_id != first.session_id


async def test_session_ids_unique_when_two_start_in_the_same_second(store: BotStore) -> None:
    later = T0 + timedelta(hours=2)
    a = await say(store, T0 + timedelta(milliseconds=500))
    assert await store.close_expired_sessions(now=later) == 1
    b = await say(store, T0 + timedelta(milliseconds=200))
    assert await store.close_expired_sessions(now=later) == 1
    c = await say(store, T0 + timedelta(milliseconds=100))
    assert a.session_id == "2024-01-08_14-30-00_3600s"
    assert b.session_id == "2024-01-08_14-30-00_3600s-2"
    assert c.session_id == "2024-01-08_14-30-00_3600s-3"
    ids = [s.session_id for s in await store.sessions(GENERAL)]
    assert sorted(ids) == sorted({a.session_id, b.session_id, c.session_id})
    assert [s.is_active for s in await store.sessions(GENERAL)].count(True) == 1


async def test_late_message_within_the_gap_joins_and_moves_the_start_back(store: BotStore) -> None:
    # Two writers racing: the later timestamp committed first. The earlier message still belongs
    # to that session, which now starts at it; the id (the first committed start) stays.
    a = await say(store, T0 + timedelta(milliseconds=1))
    b = await say(store, T0)
    assert b.session_id == a.session_id == "2024-01-08_14-30-00_3600s"
    # A late arrival up to session_gap (300 s) before the start joins too.
    c = await say(store, T0 - timedelta(seconds=300))
    assert c.session_id == a.session_id
    [session] = await store.sessions(GENERAL)
    assert session.started_at == T0 - timedelta(seconds=300)
    assert session.last_activity == T0 + timedelta(milliseconds=1)
    assert session.message_count == 3 and session.is_active
    # 301 s before the start is outside the gap: a session of its own (the open one closes).
    d = await say(store, T0 - timedelta(seconds=601))
    assert d.session_id == "2024-01-08_14-19-59_3600s"
    assert [s.is_active for s in await store.sessions(GENERAL)].count(True) == 1


async def test_late_message_may_not_stretch_a_session_past_its_timeout(store: BotStore) -> None:
    first = await say(store, T0)
    at = T0
    while at + timedelta(seconds=240) <= T0 + timedelta(seconds=3600):
        at += timedelta(seconds=240)
        await say(store, at)
    # Within the gap before the start, but the session would then span 3601 s.
    late = await say(store, T0 - timedelta(seconds=1))
    assert late.session_id != first.session_id


async def test_close_expired_sessions(store: BotStore) -> None:
    await say(store, T0)
    other = ChannelInfo.channel(channel_id=124, name="random")
    await say(store, T0 + timedelta(seconds=250), channel=other)
    # current_session trusts the database, not the clock.
    assert await store.current_session(GENERAL) is not None
    assert await store.close_expired_sessions(now=T0 + timedelta(seconds=300)) == 0
    assert await store.close_expired_sessions(now=T0 + timedelta(seconds=301)) == 1
    assert await store.current_session(GENERAL) is None
    assert await store.current_session(other) is not None
    assert await store.close_expired_sessions(now=T0 + timedelta(seconds=3601)) == 1
    assert await store.close_expired_sessions(now=T0 + timedelta(days=1)) == 0
    # The next message opens a fresh session.
    row = await say(store, T0 + timedelta(seconds=302))
    assert row.session_id == "2024-01-08_14-35-02_3600s"


async def test_sessions_continue_after_reopening_the_store(make_config: ConfigFactory) -> None:
    config = make_config()
    async with BotStore.open(config) as store:
        first = await say(store, T0)
    async with BotStore.open(config) as store:
        second = await say(store, T0 + timedelta(seconds=120))
        assert second.session_id == first.session_id
        session = await store.current_session(GENERAL)
        assert session is not None and session.message_count == 2


# --- separation and isolation ------------------------------------------------------------------


async def test_dm_and_channel_are_kept_apart(store: BotStore) -> None:
    dm = ChannelInfo.dm(channel_id=456, user_id=42, username="alice")
    await say(store, T0, content="in channel")
    await say(store, T0, channel=dm, content="in dm")
    [in_dm] = await store.history(dm)
    assert (in_dm.content, in_dm.channel_type, in_dm.channel_name) == ("in dm", "dm", "alice_42")
    assert [m.content for m in await store.history(GENERAL)] == ["in channel"]
    dm_session = await store.current_session(dm)
    channel_session = await store.current_session(GENERAL)
    assert dm_session is not None and channel_session is not None
    assert dm_session.channel_id == "456" and channel_session.channel_id == "123"


async def test_two_bots_in_one_database_see_only_their_rows(make_config: ConfigFactory) -> None:
    async with (
        BotStore.open(make_config("sage")) as sage,
        BotStore.open(make_config("spark")) as spark,
    ):
        await say(sage, T0, message_id=1, content="to sage")
        # The same Discord message stored by another bot is that bot's own row.
        mine = await say(spark, T0, message_id=1, content="to spark")
        assert mine.bot_name == "spark"
        assert [m.content for m in await sage.history(GENERAL)] == ["to sage"]
        assert [m.content for m in await spark.history(GENERAL)] == ["to spark"]
        assert [s.message_count for s in await sage.sessions(GENERAL)] == [1]
        assert await spark.close_expired_sessions(now=T0 + timedelta(days=1)) == 1
        assert await sage.current_session(GENERAL) is not None


async def test_bot_name_placeholder_gives_each_bot_its_own_file(
    tmp_path: Path, sqlite_template: Path
) -> None:
    import shutil

    from convostore import load_config

    for bot in ("sage", "spark"):
        shutil.copyfile(sqlite_template, tmp_path / f"{bot}.db")
        (tmp_path / f"{bot}.yaml").write_text(f"storage:\n  path: {tmp_path}/{{bot_name}}.db\n")
    sage_cfg, spark_cfg = load_config(tmp_path / "sage.yaml"), load_config(tmp_path / "spark.yaml")
    assert sage_cfg.sqlite_path == tmp_path / "sage.db"
    assert spark_cfg.sqlite_path == tmp_path / "spark.db"
    async with BotStore.open(sage_cfg) as sage, BotStore.open(spark_cfg) as spark:
        await say(sage, T0, content="sage's")
        await say(spark, T0, content="spark's")
        assert [m.content for m in await sage.history(GENERAL)] == ["sage's"]
    import sqlite3

    for bot in ("sage", "spark"):
        with sqlite3.connect(tmp_path / f"{bot}.db") as conn:
            assert conn.execute("SELECT DISTINCT bot_name FROM conversations").fetchall() == [
                (bot,)
            ]
