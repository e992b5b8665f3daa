"""history_items: the rows of history(), four fields each, on both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from convostore import BotStore, ChannelInfo, InvalidInput, StoredMessage
from convostore.records import HistoryItem
from tests.conftest import ConfigFactory

T0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
GENERAL = ChannelInfo.channel(channel_id=500, name="general")
OTHER = ChannelInfo.channel(channel_id=501, name="other")


def projected(records: list[StoredMessage]) -> list[HistoryItem]:
    return [HistoryItem(r.message_id, r.role, r.content, r.metadata) for r in records]


async def fill(store: BotStore) -> None:
    # Two users, metadata on some rows (nested, unicode), a row with the same timestamp as the
    # one before (order falls back to the row id), rows of another channel.
    for n in range(12):
        await store.add_message(
            GENERAL,
            user_id=7 if n % 3 else 8,
            username="alice" if n % 3 else "bob",
            role="assistant" if n % 4 == 3 else "user",
            content=f"message {n} ✓",
            message_id=1000 + n,
            timestamp=T0 + timedelta(seconds=n - (n == 5)),
            metadata={"n": n, "tags": ["a", "ü"], "deep": {"x": None}} if n % 2 else None,
        )
        await store.add_message(
            OTHER, user_id=7, username="alice", role="user", content=f"other {n}"
        )


async def test_items_are_the_rows_of_history_oldest_first(store: BotStore) -> None:
    await fill(store)
    for limit in (1, 5, 12, 100):
        items = await store.history_items(GENERAL, limit)
        assert items == projected(await store.history(GENERAL, limit))
        assert len(items) == min(limit, 12)
    everything = await store.history_items(GENERAL, 100)
    assert [i.content for i in everything] == [f"message {n} ✓" for n in range(12)]
    assert everything[1].metadata == {"n": 1, "tags": ["a", "ü"], "deep": {"x": None}}
    assert everything[0].metadata is None
    assert {i.role for i in everything} == {"user", "assistant"}


async def test_items_of_one_user_and_the_default_limit(make_config: ConfigFactory) -> None:
    async with BotStore.open(make_config(max_history=3)) as store:
        await fill(store)
        bob = await store.history_items(GENERAL, 100, user_id=8)
        assert bob == projected(await store.history(GENERAL, 100, user_id=8))
        assert [i.message_id for i in bob] == ["1000", "1003", "1006", "1009"]
        assert await store.history_items(GENERAL) == projected(await store.history(GENERAL))
        assert len(await store.history_items(GENERAL)) == 3


async def test_items_are_fresh_objects_and_limits_are_checked(store: BotStore) -> None:
    await fill(store)
    first = await store.history_items(GENERAL, 2)
    assert first[-1].metadata is not None
    first[-1].metadata["n"] = "changed"
    assert (await store.history_items(GENERAL, 2))[-1].metadata == first[-1].metadata | {"n": 11}
    assert await store.history_items(GENERAL, 0) == []
    assert await store.history_items(ChannelInfo.channel(channel_id=999, name="x")) == []
    for bad in (-1, True, 2.5):
        with pytest.raises(InvalidInput, match="limit"):
            await store.history_items(GENERAL, bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="user_id"):
        await store.history_items(GENERAL, 5, user_id="not a number")


async def test_another_bot_sees_none_of_the_items(
    store: BotStore, make_config: ConfigFactory
) -> None:
    await fill(store)
    async with BotStore.open(make_config("spark")) as spark:
        assert await spark.history_items(GENERAL, 100) == []
        await spark.add_message(GENERAL, user_id=7, username="a", role="user", content="mine")
        assert [i.content for i in await spark.history_items(GENERAL, 100)] == ["mine"]
