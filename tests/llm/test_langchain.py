"""ConvostoreChatMessageHistory: exact round trips, RunnableWithMessageHistory, sync and async."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from langchain_core.runnables import RunnableLambda
from langchain_core.runnables.history import RunnableWithMessageHistory

from convostore import BotStore, ChannelInfo
from convostore.errors import OperationError
from convostore.integrations.langchain import MESSAGE_KEY, ConvostoreChatMessageHistory
from tests.conftest import ConfigFactory

GENERAL = ChannelInfo.channel(channel_id=123, name="general")
RANDOM = ChannelInfo.channel(channel_id=124, name="random")

MESSAGES: list[BaseMessage] = [
    SystemMessage(content="You are sage."),
    HumanMessage(content="weather in Paris?", name="alice", id="h1"),
    AIMessage(
        content="",
        tool_calls=[
            {"name": "weather", "args": {"city": "Paris"}, "id": "call_1", "type": "tool_call"}
        ],
        additional_kwargs={"note": [1, 2]},
    ),
    ToolMessage(content="sunny, 21 C", tool_call_id="call_1", name="weather"),
    AIMessage(
        content=[{"type": "text", "text": "Sunny in Paris."}], response_metadata={"model": "x"}
    ),
]


async def test_every_message_type_round_trips_exactly(store: BotStore) -> None:
    history = ConvostoreChatMessageHistory(store, GENERAL)
    await history.aadd_messages(MESSAGES)
    again = await ConvostoreChatMessageHistory(store, GENERAL).aget_messages()
    assert again == MESSAGES
    assert [type(m) for m in again] == [type(m) for m in MESSAGES]
    rows = await store.history(GENERAL)
    assert [r.role for r in rows] == ["system", "user", "assistant", "assistant", "assistant"]
    assert rows[1].username == "alice" and rows[4].content == "Sunny in Paris."
    assert all(r.metadata and MESSAGE_KEY in r.metadata for r in rows)


async def test_rows_written_by_the_bot_are_messages(store: BotStore) -> None:
    for role, text in (("system", "rules"), ("user", "hi"), ("assistant", "hello")):
        await store.add_message(GENERAL, user_id=42, username="alice", role=role, content=text)
    assert await ConvostoreChatMessageHistory(store, GENERAL).aget_messages() == [
        SystemMessage(content="rules"),
        HumanMessage(content="hi"),
        AIMessage(content="hello"),
    ]


def chain_with_history(store: BotStore, seen: list[Any]) -> RunnableWithMessageHistory:
    histories: dict[str, ConvostoreChatMessageHistory] = {}
    for channel in (GENERAL, RANDOM):
        histories[channel.id] = ConvostoreChatMessageHistory(store, channel)
    prompt = ChatPromptTemplate.from_messages(
        [("system", "Be brief."), MessagesPlaceholder("history"), ("human", "{input}")]
    )
    model = FakeListChatModel(responses=["first answer", "second answer", "third answer"])

    def record(value: Any) -> Any:
        seen.append(value.to_messages())
        return value

    return RunnableWithMessageHistory(
        prompt | RunnableLambda(record) | model,
        lambda session_id: histories[session_id],
        input_messages_key="input",
        history_messages_key="history",
    )


# The issue asks for RunnableWithMessageHistory; langchain-core 1.x deprecates it in favour of
# LangGraph's persistence but still ships it, and BaseChatMessageHistory is what both read.
@pytest.mark.filterwarnings("ignore:RunnableWithMessageHistory is deprecated")
async def test_runnable_with_message_history_async_and_sync(store: BotStore) -> None:
    seen: list[Any] = []
    chain = chain_with_history(store, seen)
    config: Any = {"configurable": {"session_id": GENERAL.id}}
    first = await chain.ainvoke({"input": "hello"}, config=config)
    assert first.content == "first answer"
    # LangChain's sync invoke, from a worker thread: the history runs on the store's loop.
    second = await asyncio.to_thread(chain.invoke, {"input": "and again"}, config)
    assert second.content == "second answer"
    assert [m.content for m in seen[1]] == ["Be brief.", "hello", "first answer", "and again"]
    stored = await store.history(GENERAL)
    assert [(r.role, r.content) for r in stored] == [
        ("user", "hello"),
        ("assistant", "first answer"),
        ("user", "and again"),
        ("assistant", "second answer"),
    ]
    history = ConvostoreChatMessageHistory(store, GENERAL)
    assert [m.content for m in await asyncio.to_thread(lambda: history.messages)] == [
        r.content for r in stored
    ]
    await asyncio.to_thread(history.add_messages, [HumanMessage(content="sync add")])
    assert (await store.history(GENERAL))[-1].content == "sync add"


async def test_sync_methods_refuse_to_block_the_loop(store: BotStore) -> None:
    history = ConvostoreChatMessageHistory(store, GENERAL)
    with pytest.raises(OperationError, match="aget_messages"):
        _ = history.messages
    outside = await asyncio.to_thread(ConvostoreChatMessageHistory, store, GENERAL)
    with pytest.raises(OperationError, match="event loop"):
        await asyncio.to_thread(lambda: outside.messages)


async def test_clear_deletes_this_channel_of_this_bot_only(
    store: BotStore, make_config: ConfigFactory
) -> None:
    history = ConvostoreChatMessageHistory(store, GENERAL)
    await history.aadd_messages([HumanMessage(content="a"), AIMessage(content="b")])
    await ConvostoreChatMessageHistory(store, RANDOM).aadd_messages([HumanMessage(content="c")])
    async with BotStore.open(make_config("spark")) as spark:
        await ConvostoreChatMessageHistory(spark, GENERAL).aadd_messages(
            [HumanMessage(content="d")]
        )
        await history.aclear()
        assert await history.aget_messages() == []
        assert await store.sessions(GENERAL) == []
        assert [m.content for m in await store.history(RANDOM)] == ["c"]
        assert [m.content for m in await spark.history(GENERAL)] == ["d"]
        await history.aadd_messages([HumanMessage(content="e")])
        await asyncio.to_thread(history.clear)
        assert await store.history(GENERAL) == []


async def test_aadd_messages_stores_all_or_none(store: BotStore) -> None:
    from convostore import InvalidInput

    history = ConvostoreChatMessageHistory(store, GENERAL)
    with pytest.raises(InvalidInput):
        await history.aadd_messages([HumanMessage("hi"), AIMessage("a\x00b")])
    assert await history.aget_messages() == []
    pair = [HumanMessage("hi"), AIMessage("hello")]
    await history.aadd_messages(pair)
    assert [(m.type, m.content) for m in await history.aget_messages()] == [
        ("human", "hi"),
        ("ai", "hello"),
    ]
