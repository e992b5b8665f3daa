"""store.search on SQLite (FTS5) and PostgreSQL (tsvector): matching, filters, isolation, safety."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from convostore import BotStore, ChannelInfo, InvalidInput, SearchHit
from tests.conftest import ConfigFactory

T0 = datetime(2024, 1, 8, 14, 30, tzinfo=UTC)
GENERAL = ChannelInfo.channel(channel_id=123, name="general")
RANDOM = ChannelInfo.channel(channel_id=124, name="random")

HOSTILE_QUERIES = [
    '"',
    '""',
    '"""',
    "*",
    "pizza*",
    "NEAR(",
    "NEAR(pizza topping)",
    "-",
    "-pizza",
    "'",
    "pizza'",
    ":",
    "content:pizza",
    "pizza OR",
    "OR AND NOT",
    "pizza AND NOT topping",
    "(",
    ")",
    "^pizza",
    "{content}: pizza",
    "pizza + topping",
    "'; DROP TABLE conversations; --",
    "\\",
    "%",
    "_",
    "a & b | !c",
    "pizza <-> topping",
    "pizza:*",
    "\x00",
    "🍕",
    "  ",
    "",
]


async def say(
    store: BotStore,
    content: str,
    n: int,
    *,
    channel: ChannelInfo = GENERAL,
    user_id: int = 42,
    role: str = "user",
) -> None:
    await store.add_message(
        channel,
        user_id=user_id,
        username="alice",
        role=role,
        content=content,
        message_id=1000 + n,
        timestamp=T0 + timedelta(minutes=n),
    )


@pytest.fixture
async def chat(store: BotStore) -> BotStore:
    await say(store, "Who wants pizza tonight?", 0)
    await say(store, "I had pizza yesterday, the topping was pineapple", 1, user_id=43)
    await say(store, "Pineapple on pizza is a crime", 2, role="assistant")
    await say(store, "Let's get sushi instead", 3, channel=RANDOM)
    await say(store, "pizza topping debate again: NEAR(pizza) - it's 'fine': *really*", 4)
    await say(store, "Café au lait and CAFÉ noir", 5, channel=RANDOM)
    return store


def contents(hits: list[SearchHit]) -> list[str]:
    return [hit.message.content for hit in hits]


async def test_words_must_all_match_case_insensitively(chat: BotStore) -> None:
    hits = await chat.search("PIZZA pineapple")
    assert sorted(contents(hits)) == [
        "I had pizza yesterday, the topping was pineapple",
        "Pineapple on pizza is a crime",
    ]
    assert all(isinstance(h, SearchHit) and h.rank > 0 for h in hits)
    assert await chat.search("pizza burrito") == []


async def test_quoted_phrase_matches_words_in_order(chat: BotStore) -> None:
    assert contents(await chat.search('"pizza topping"')) == [
        "pizza topping debate again: NEAR(pizza) - it's 'fine': *really*"
    ]
    assert contents(await chat.search('"topping pizza"')) == []
    assert len(await chat.search('"pizza" tonight')) == 1


async def test_results_are_the_newest_records_with_snippets_and_relevance(chat: BotStore) -> None:
    hits = await chat.search("pizza")
    assert len(hits) == 4
    assert [h.message.id for h in hits] == sorted((h.message.id for h in hits), reverse=True)
    assert hits[-1].message.content == "Who wants pizza tonight?"
    assert all(0 < h.rank <= 1 for h in hits)
    assert hits[-1].rank == 1 / 4  # one of its four words
    first = hits[0]
    assert first.message.bot_name == "sage" and first.message.timestamp.tzinfo is not None
    assert first.snippet.startswith("[pizza] topping debate")
    # limit keeps the newest
    assert [h.message.id for h in await chat.search("pizza", limit=2)] == [
        h.message.id for h in hits[:2]
    ]


async def test_filters_channel_user_since_limit(chat: BotStore) -> None:
    assert contents(await chat.search("sushi", channel=RANDOM)) == ["Let's get sushi instead"]
    assert await chat.search("sushi", channel=GENERAL) == []
    assert await chat.search("sushi", channel=123) == []
    assert len(await chat.search("sushi", channel="124")) == 1
    assert contents(await chat.search("pizza", user_id=43)) == [
        "I had pizza yesterday, the topping was pineapple"
    ]
    later = await chat.search("pizza", since=T0 + timedelta(minutes=2))
    assert sorted(contents(later)) == sorted(
        [
            "Pineapple on pizza is a crime",
            "pizza topping debate again: NEAR(pizza) - it's 'fine': *really*",
        ]
    )
    assert len(await chat.search("pizza", limit=2)) == 2
    assert await chat.search("pizza", limit=0) == []


async def test_bad_arguments_are_refused(chat: BotStore) -> None:
    with pytest.raises(InvalidInput, match="since"):
        await chat.search("pizza", since=datetime(2024, 1, 1))  # naive
    with pytest.raises(InvalidInput, match="limit"):
        await chat.search("pizza", limit=-1)
    with pytest.raises(InvalidInput, match="query"):
        await chat.search(42)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="query"):
        await chat.search("pizza " * 500)


async def test_only_this_bots_messages(make_config: ConfigFactory) -> None:
    async with (
        BotStore.open(make_config("sage")) as sage,
        BotStore.open(make_config("spark")) as spark,
    ):
        await say(sage, "secret sage pizza", 1)
        await say(spark, "secret spark pizza", 2)
        assert contents(await sage.search("secret pizza")) == ["secret sage pizza"]
        assert contents(await spark.search("secret")) == ["secret spark pizza"]
        assert await sage.search("spark") == []


@pytest.mark.parametrize("query", HOSTILE_QUERIES)
async def test_hostile_queries_are_text_never_syntax(chat: BotStore, query: str) -> None:
    hits = await chat.search(query)  # never raises
    for hit in hits:
        # Whatever matched contains every word of the query.
        for word in ("pizza", "topping", "near", "content", "really"):
            if word in query.casefold():
                assert word in hit.message.content.casefold()


async def test_operators_are_searched_as_words(chat: BotStore) -> None:
    # NEAR( is the word "near", - and * are nothing, "content:" is the word "content".
    assert contents(await chat.search("NEAR(pizza")) == [
        "pizza topping debate again: NEAR(pizza) - it's 'fine': *really*"
    ]
    assert len(await chat.search("-pizza")) == 4  # not "without pizza"
    assert len(await chat.search("pizza*")) == 4  # not a prefix query: "pizza" itself
    assert await chat.search("pizz*") == []
    assert contents(await chat.search("it's 'fine'")) == [
        "pizza topping debate again: NEAR(pizza) - it's 'fine': *really*"
    ]
    assert await chat.search("pizza OR sushi") == []  # OR is a word here, found nowhere
    assert await chat.search('"') == []
    assert await chat.search("") == []


async def test_accented_words_fold_case(chat: BotStore) -> None:
    assert contents(await chat.search("café")) == ["Café au lait and CAFÉ noir"]
