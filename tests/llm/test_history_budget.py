"""history(max_tokens=, count_tokens=): the newest whole messages that fit, on both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from convostore import BotStore, ChannelInfo, InvalidInput
from convostore.chat import estimate_tokens

T0 = datetime(2024, 1, 8, 14, 30, tzinfo=UTC)
GENERAL = ChannelInfo.channel(channel_id=123, name="general")
OTHER = ChannelInfo.channel(channel_id=124, name="other")


async def fill(store: BotStore, contents: list[str], channel: ChannelInfo = GENERAL) -> None:
    for n, content in enumerate(contents):
        await store.add_message(
            channel,
            user_id=42 + n % 2,
            username="alice",
            role="user",
            content=content,
            timestamp=T0 + timedelta(seconds=n),
        )


def words(text: str) -> int:
    return len(text.split())


async def test_budget_keeps_the_newest_whole_messages_oldest_first(store: BotStore) -> None:
    # 1, 2, 3, 4, 5 words: the newest back: 5 (5), 4 (9), 3 (12) > 10 stops.
    await fill(store, [" ".join(["w"] * n) for n in range(1, 6)])
    kept = await store.history(GENERAL, max_tokens=10, count_tokens=words)
    assert [words(m.content) for m in kept] == [4, 5]
    exact = await store.history(GENERAL, max_tokens=12, count_tokens=words)
    assert [words(m.content) for m in exact] == [3, 4, 5]
    assert len(await store.history(GENERAL, max_tokens=10_000, count_tokens=words)) == 5


async def test_a_message_too_big_ends_the_history_and_is_never_cut(store: BotStore) -> None:
    await fill(store, ["old small", "a huge message " * 50, "new small"])
    kept = await store.history(GENERAL, max_tokens=20, count_tokens=words)
    # The huge one does not fit and nothing older is used to fill the gap it leaves.
    assert [m.content for m in kept] == ["new small"]
    assert await store.history(GENERAL, max_tokens=1, count_tokens=words) == []
    assert await store.history(GENERAL, max_tokens=0) == []


async def test_budget_never_returns_more_than_limit_and_reads_at_most_limit(
    store: BotStore,
) -> None:
    await fill(store, [f"m{n}" for n in range(30)])
    seen: list[str] = []

    def counting(text: str) -> int:
        seen.append(text)
        return 1

    kept = await store.history(GENERAL, limit=7, max_tokens=1_000, count_tokens=counting)
    assert [m.content for m in kept] == [f"m{n}" for n in range(23, 30)]
    assert seen == [f"m{n}" for n in range(29, 22, -1)]  # counted newest first, 7 rows only
    seen.clear()
    await store.history(GENERAL, limit=20, max_tokens=3, count_tokens=counting)
    assert len(seen) == 4  # stops at the first message that does not fit


async def test_default_counter_is_the_estimate(store: BotStore) -> None:
    contents = ["hello there", "一二三四五", "fine 👍", "x" * 40]
    await fill(store, contents)
    budget = estimate_tokens(contents[-1]) + estimate_tokens(contents[-2])
    kept = await store.history(GENERAL, max_tokens=budget)
    assert [m.content for m in kept] == contents[-2:]
    assert [m.content for m in await store.history(GENERAL, max_tokens=budget - 1)] == [
        contents[-1]
    ]


async def test_budget_combines_with_user_and_session_filters(store: BotStore) -> None:
    await fill(store, ["a0", "b1", "a2", "b3", "a4"])
    await fill(store, ["elsewhere"], channel=OTHER)
    kept = await store.history(GENERAL, user_id=42, max_tokens=2, count_tokens=lambda _: 1)
    assert [m.content for m in kept] == ["a2", "a4"]
    [last] = await store.history(GENERAL, limit=1)
    by_session = await store.history(
        GENERAL, session_id=last.session_id, max_tokens=1, count_tokens=lambda _: 1
    )
    assert [m.content for m in by_session] == ["a4"]


@pytest.mark.parametrize("bad", [-1, 1.5, True, "10"])
async def test_bad_budget_is_refused(store: BotStore, bad: object) -> None:
    with pytest.raises(InvalidInput, match="max_tokens"):
        await store.history(GENERAL, max_tokens=bad)  # type: ignore[arg-type]


async def test_bad_counter_is_refused(store: BotStore) -> None:
    await fill(store, ["x"])
    with pytest.raises(InvalidInput, match="count_tokens"):
        await store.history(GENERAL, max_tokens=5, count_tokens=7)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="count_tokens"):
        await store.history(GENERAL, max_tokens=5, count_tokens=lambda _: -1)
    with pytest.raises(InvalidInput, match="count_tokens"):
        await store.history(GENERAL, max_tokens=5, count_tokens=lambda _: "3")  # type: ignore[arg-type,return-value]
