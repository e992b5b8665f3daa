"""ConvostoreSession under a real agents.Runner with a scripted model, on both backends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from agents import Agent, Runner, SQLiteSession, function_tool, set_tracing_disabled
from agents.items import ModelResponse
from agents.models.interface import Model
from agents.usage import Usage
from openai.types.responses import (
    ResponseFunctionToolCall,
    ResponseOutputMessage,
    ResponseOutputText,
    ResponseReasoningItem,
)
from openai.types.responses.response_reasoning_item import Summary

from convostore import BotStore, ChannelInfo
from convostore.integrations.openai_agents import ITEM_KEY, ConvostoreSession
from tests.conftest import ConfigFactory

GENERAL = ChannelInfo.channel(channel_id=123, name="general")
RANDOM = ChannelInfo.channel(channel_id=124, name="random")

set_tracing_disabled(True)


def say(text: str, n: int) -> ResponseOutputMessage:
    return ResponseOutputMessage(
        id=f"msg_{n}",
        type="message",
        role="assistant",
        status="completed",
        content=[ResponseOutputText(type="output_text", text=text, annotations=[])],
    )


def script() -> list[list[Any]]:
    """Turn 1: reason, call the tool; turn 2: answer; turn 3 (second run): answer again."""
    return [
        [
            ResponseReasoningItem(
                id="rs_1",
                type="reasoning",
                summary=[Summary(type="summary_text", text="The user wants the weather.")],
            ),
            ResponseFunctionToolCall(
                id="fc_1",
                type="function_call",
                call_id="call_1",
                name="weather",
                arguments='{"city": "Paris"}',
                status="completed",
            ),
        ],
        [say("Sunny in Paris, 21 °C.", 1)],
        [say("You're welcome!", 2)],
    ]


class ScriptedModel(Model):
    """A Model that answers from a script and records the input of every call (no network)."""

    def __init__(self, turns: list[list[Any]]) -> None:
        self.turns = turns
        self.inputs: list[Any] = []

    async def get_response(
        self, system_instructions: Any, input: Any, *args: Any, **kwargs: Any
    ) -> ModelResponse:
        self.inputs.append(input)
        return ModelResponse(output=self.turns.pop(0), usage=Usage(), response_id=None)

    def stream_response(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        raise NotImplementedError


@function_tool
def weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny, 21 C in {city}"


async def converse(session: Any) -> ScriptedModel:
    model = ScriptedModel(script())
    agent = Agent(name="sage", instructions="Be brief.", model=model, tools=[weather])
    first = await Runner.run(agent, "What's the weather in Paris?", session=session)
    assert first.final_output == "Sunny in Paris, 21 °C."
    second = await Runner.run(agent, "thanks", session=session)
    assert second.final_output == "You're welcome!"
    return model


async def test_runner_round_trips_every_item_like_the_sdks_own_session(store: BotStore) -> None:
    ours = ConvostoreSession(store, GENERAL)
    model = await converse(ours)
    reference = SQLiteSession("reference")
    await converse(reference)
    items = await ours.get_items()
    assert items == await reference.get_items()
    kinds = [item.get("type", "message") for item in items]
    assert kinds == [
        "message",
        "reasoning",
        "function_call",
        "function_call_output",
        "message",
        "message",
        "message",
    ]
    # The second run's model saw the first run's items, as read back from the database.
    assert model.inputs[2][: len(items) - 2] == items[: len(items) - 2]
    # A fresh session object over the same channel reads the same items from the database.
    assert await ConvostoreSession(store, GENERAL).get_items() == items
    assert await ours.get_items(limit=2) == items[-2:]
    # The rows are the channel's messages, readable by history, search and to_chat_messages.
    rows = await store.history(GENERAL, limit=100)
    assert [r.role for r in rows] == [
        "user",
        "assistant",
        "assistant",
        "assistant",
        "assistant",
        "user",
        "assistant",
    ]
    assert rows[2].content == 'weather({"city": "Paris"})'
    assert rows[2].metadata is not None and rows[2].metadata[ITEM_KEY]["call_id"] == "call_1"
    assert rows[0].metadata is None  # a plain message is stored as one
    assert rows[0].id in [h.message.id for h in await store.search("Paris weather")]


async def test_bot_messages_are_session_items(store: BotStore) -> None:
    await store.add_message(GENERAL, user_id=42, username="alice", role="user", content="hi bot")
    session = ConvostoreSession(store, GENERAL)
    assert await session.get_items() == [{"role": "user", "content": "hi bot"}]
    assert session.session_id == "sage:123"
    assert ConvostoreSession(store, GENERAL, user_id=42).session_id == "sage:123:42"


async def test_user_sessions_see_only_their_rows(store: BotStore) -> None:
    alice = ConvostoreSession(store, GENERAL, user_id=42)
    bob = ConvostoreSession(store, GENERAL, user_id=43)
    await alice.add_items([{"role": "user", "content": "I am alice"}])
    await bob.add_items([{"role": "user", "content": "I am bob"}])
    assert await alice.get_items() == [{"role": "user", "content": "I am alice"}]
    assert len(await ConvostoreSession(store, GENERAL).get_items()) == 2


async def test_pop_and_clear_delete_exactly_this_sessions_rows(
    store: BotStore, make_config: ConfigFactory
) -> None:
    session = ConvostoreSession(store, GENERAL)
    await session.add_items(
        [
            {"role": "user", "content": "one"},
            {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
            {"role": "assistant", "content": "two"},
        ]
    )
    await ConvostoreSession(store, RANDOM).add_items([{"role": "user", "content": "elsewhere"}])
    async with BotStore.open(make_config("spark")) as spark:
        await ConvostoreSession(spark, GENERAL).add_items([{"role": "user", "content": "spark's"}])
        assert await session.pop_item() == {"role": "assistant", "content": "two"}
        assert await session.pop_item() == {
            "type": "function_call",
            "call_id": "c",
            "name": "f",
            "arguments": "{}",
        }
        assert [s.message_count for s in await store.sessions(GENERAL)] == [1]
        await session.clear_session()
        assert await session.get_items() == []
        assert await session.pop_item() is None
        assert await store.sessions(GENERAL) == []
        assert [m.content for m in await store.history(RANDOM)] == ["elsewhere"]
        assert [m.content for m in await spark.history(GENERAL)] == ["spark's"]
        assert [s.message_count for s in await spark.sessions(GENERAL)] == [1]


async def test_clear_beside_live_writers_removes_only_this_sessions_rows(
    store: BotStore, make_config: ConfigFactory
) -> None:
    # 1,200 items: clear_session deletes them in three batches while this bot writes to another
    # channel and another bot writes to the same channel; every one of their rows survives.
    session = ConvostoreSession(store, GENERAL)
    await session.add_items([{"role": "user", "content": f"old {n}"} for n in range(1200)])
    async with BotStore.open(make_config("spark")) as spark:
        mine = ConvostoreSession(store, RANDOM)
        theirs = ConvostoreSession(spark, GENERAL)

        async def writer(target: ConvostoreSession, label: str) -> None:
            for n in range(150):
                await target.add_items([{"role": "user", "content": f"{label} {n}"}])
                await asyncio.sleep(0)

        await asyncio.gather(
            session.clear_session(), writer(mine, "random"), writer(theirs, "spark")
        )
        assert await session.get_items() == []
        assert await store.sessions(GENERAL) == []
        assert [m.content for m in await store.history(RANDOM, 1000)] == [
            f"random {n}" for n in range(150)
        ]
        assert sum(s.message_count for s in await store.sessions(RANDOM)) == 150
        assert [m.content for m in await spark.history(GENERAL, 1000)] == [
            f"spark {n}" for n in range(150)
        ]
        assert sum(s.message_count for s in await spark.sessions(GENERAL)) == 150


@pytest.mark.parametrize("bad", ["text", 42, None])
async def test_items_must_be_dicts(store: BotStore, bad: Any) -> None:
    from convostore import InvalidInput

    with pytest.raises(InvalidInput):
        await ConvostoreSession(store, GENERAL).add_items([bad])
    assert await store.history(GENERAL) == []


async def test_a_turn_of_several_items_is_stored_whole_or_not_at_all(store: BotStore) -> None:
    """add_items(list): one all-or-nothing write, in order; a bad item stores none of them."""
    from convostore import InvalidInput

    session = ConvostoreSession(store, GENERAL)
    call = {
        "type": "function_call",
        "call_id": "call_9",
        "name": "weather",
        "arguments": "{}",
        "id": "fc_9",
    }
    output = {"type": "function_call_output", "call_id": "call_9", "output": "sunny"}
    with pytest.raises(InvalidInput, match=r"messages\[2\]"):
        # The NUL refuses the last item: the tool call is not kept without its output.
        await session.add_items(
            [{"role": "user", "content": "weather?"}, call, output | {"output": "sun\x00ny"}]
        )
    assert await session.get_items() == [] and await store.history(GENERAL) == []
    turn = [
        {"role": "user", "content": "weather?"},
        call,
        output,
        {"role": "assistant", "content": "Sunny."},
    ]
    await session.add_items(turn)
    assert await session.get_items() == turn
    records = await store.history(GENERAL)
    assert [r.timestamp for r in records] == sorted({r.timestamp for r in records})
    [one_session] = await store.sessions(GENERAL)
    assert one_session.message_count == 4
    await session.add_items([{"role": "user", "content": "thanks"}])  # one item: add_message
    assert (await session.get_items())[-1] == {"role": "user", "content": "thanks"}


def test_import_convostore_loads_no_framework() -> None:
    import subprocess
    import sys

    code = (
        "import sys, convostore, convostore.integrations\n"
        "loaded = {'agents', 'langchain_core', 'openai'} & set(sys.modules)\n"
        "assert not loaded, loaded"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
