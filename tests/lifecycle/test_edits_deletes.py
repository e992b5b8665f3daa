"""edit_message, revisions and delete_messages on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from convostore import BotStore, ChannelInfo, InvalidInput, MessageRevision
from tests.conftest import ConfigFactory

T0 = datetime(2024, 1, 8, 14, 30, tzinfo=UTC)
CHANNEL = ChannelInfo.channel(10, "general")


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


async def add(
    store: BotStore, message_id: int, seconds: float, content: str = "x", **kw: Any
) -> Any:
    return await store.add_message(
        kw.pop("channel", CHANNEL),
        user_id=kw.pop("user_id", 42),
        username="alice",
        role="user",
        content=content,
        message_id=message_id,
        timestamp=at(seconds),
        **kw,
    )


async def raw_count(store: BotStore, sql: str) -> int:
    async with store.engine.connect() as connection:
        return int((await connection.execute(text(sql))).scalar_one())


async def test_edits_keep_every_earlier_version(store: BotStore) -> None:
    original = await add(store, 1, 0, "helo")
    first = await store.edit_message(1, content="hello", edited_at=at(10))
    second = await store.edit_message("1", content="hello!", edited_at=at(20))
    assert first is not None and second is not None
    assert (second.content, second.edited_at) == ("hello!", at(20))
    assert second.id == original.id and second.session_id == original.session_id
    assert await store.history(CHANNEL) == [second]
    assert await store.revisions(1) == [
        MessageRevision("1", "helo", None, at(10)),
        MessageRevision("1", "hello", at(10), at(20)),
    ]
    assert (await store.revisions(1))[1].edited_at.tzinfo is UTC  # type: ignore[union-attr]


async def test_edit_of_an_unknown_message_is_none(store: BotStore) -> None:
    assert await store.edit_message(99, content="x") is None
    assert await store.revisions(99) == []


async def test_unchanged_or_late_edits_change_nothing(store: BotStore) -> None:
    await add(store, 1, 0, "a")
    latest = await store.edit_message(1, content="b", edited_at=at(20))
    assert await store.edit_message(1, content="b", edited_at=at(30)) == latest  # embeds loaded
    assert await store.edit_message(1, content="stale", edited_at=at(10)) == latest  # late event
    assert len(await store.revisions(1)) == 1


async def test_edit_without_time_uses_now(store: BotStore) -> None:
    await add(store, 1, 0)
    before = datetime.now(UTC)
    edited = await store.edit_message(1, content="y")
    assert edited is not None and edited.edited_at is not None and edited.edited_at >= before


@pytest.mark.parametrize(
    ("message_id", "kwargs", "words"),
    [
        (1, {"content": "a\x00b"}, "NUL"),
        (1, {"content": 5}, "content must be a str"),
        ("1x", {"content": "a"}, "message_id"),
        (
            1,
            {"content": "a", "edited_at": datetime(2024, 1, 1)},
            "edited_at must be timezone-aware",
        ),
    ],
)
async def test_bad_edits_change_nothing(
    store: BotStore, message_id: Any, kwargs: dict[str, Any], words: str
) -> None:
    stored = await add(store, 1, 0, "a")
    with pytest.raises(InvalidInput, match=words):
        await store.edit_message(message_id, **kwargs)
    assert await store.history(CHANNEL) == [stored]
    assert await store.revisions(1) == []


async def test_another_bots_message_is_not_edited(make_config: ConfigFactory) -> None:
    async with (
        BotStore.open(make_config("sage")) as sage,
        BotStore.open(make_config("spark")) as spark,
    ):
        theirs = await add(spark, 1, 0, "spark's")
        assert await sage.edit_message(1, content="mine") is None
        assert await spark.history(CHANNEL) == [theirs]


async def test_delete_removes_messages_revisions_and_keeps_counts(store: BotStore) -> None:
    for i in range(5):
        await add(store, i + 1, i)
    await store.edit_message(2, content="secret v2", edited_at=at(50))
    assert await store.delete_messages(2) == 1
    assert await store.delete_messages([3, "4", 4, 999]) == 2
    assert [m.message_id for m in await store.history(CHANNEL)] == ["1", "5"]
    [session] = await store.sessions(CHANNEL)
    assert session.message_count == 2
    assert await store.revisions(2) == []
    # Really gone, not flagged: nothing in any table holds the text.
    assert await raw_count(store, "SELECT count(*) FROM message_revisions") == 0
    assert (
        await raw_count(store, "SELECT count(*) FROM conversations WHERE content LIKE 'secret%'")
        == 0
    )
    assert await store.delete_messages([]) == 0


async def test_a_session_left_empty_is_deleted(store: BotStore) -> None:
    await add(store, 1, 0)
    await add(store, 2, 10_000)  # a new session (past the gap)
    assert len(await store.sessions(CHANNEL)) == 2
    assert await store.delete_messages([2]) == 1
    [left] = await store.sessions(CHANNEL)
    assert left.message_count == 1
    # The next message opens a session again.
    await add(store, 3, 10_001)
    assert [s.message_count for s in await store.sessions(CHANNEL)] == [1, 1]


async def test_delete_never_touches_another_bot(make_config: ConfigFactory) -> None:
    async with (
        BotStore.open(make_config("sage")) as sage,
        BotStore.open(make_config("spark")) as spark,
    ):
        await add(sage, 1, 0)
        theirs = await add(spark, 1, 0)
        assert await sage.delete_messages(1) == 1
        assert await spark.history(CHANNEL) == [theirs]
        assert (await spark.sessions(CHANNEL))[0].message_count == 1


@pytest.mark.parametrize("ids", ["12a", ["1", "x"], [None], 1.5, [True]])
async def test_bad_ids_delete_nothing(store: BotStore, ids: Any) -> None:
    await add(store, 1, 0)
    with pytest.raises(InvalidInput):
        await store.delete_messages(ids)
    assert len(await store.history(CHANNEL)) == 1


async def test_delete_beside_a_live_writer_keeps_counts_exact(store: BotStore) -> None:
    """Deletes and writes to the same session interleave; every count stays the number of rows."""
    total = 60

    async def writer() -> None:
        for i in range(total):
            await add(store, 1000 + i, 100 + i * 0.01)

    async def deleter() -> int:
        deleted = 0
        for i in range(0, total, 3):
            await asyncio.sleep(0)
            deleted += await store.delete_messages([1000 + i])
        return deleted

    _, deleted = await asyncio.gather(writer(), deleter())
    deleted += await store.delete_messages([1000 + i for i in range(0, total, 3)])
    history = await store.history(CHANNEL, limit=1000)
    assert len(history) == total - total // 3
    assert sum(s.message_count for s in await store.sessions(CHANNEL)) == len(history)
    assert deleted == total // 3
