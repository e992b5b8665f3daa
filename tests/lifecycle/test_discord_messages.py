"""ChannelInfo.from_message and add_discord_message with discord.py's own classes and payloads."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from convostore import BotStore, ChannelInfo
from tests.conftest import ConfigFactory
from tests.lifecycle.gateway import (
    BOT,
    GUILD_ID,
    TEXT_ID,
    THREAD_ID,
    Gateway,
    attachment,
    discord,
    guild,
    later,
    message,
    user,
)

ROOT = Path(__file__).resolve().parents[2]
ALICE = user(42, "alice")
OTHER_BOT = user(77, "spark", bot=True)
DM_ID = 900


@pytest.fixture
async def gateway() -> AsyncIterator[Gateway]:
    client = discord.Client(intents=discord.Intents.default())
    gw = Gateway(client)
    await gw.connect()
    gw.state.parse_guild_create(guild())
    yield gw
    await client.close()


def test_from_message_names_a_dm_after_its_human(gateway: Gateway) -> None:
    from_alice = gateway.make_message(message(DM_ID, ALICE, "hi", later(0)))
    assert from_alice.channel.recipient is None  # discord.py builds it so in on_message
    assert ChannelInfo.from_message(from_alice) == ChannelInfo("900", "alice_42", "dm")
    from_bot = gateway.make_message(message(DM_ID, BOT, "hello", later(1)))
    assert ChannelInfo.from_message(from_bot).name == "unknown_user_unknown"  # cannot tell


def test_from_message_uses_the_recipient_when_the_channel_has_one(gateway: Gateway) -> None:
    channel = discord.DMChannel(
        me=gateway.state.user,  # type: ignore[arg-type]
        state=gateway.state,
        data={"id": str(DM_ID), "type": 1, "recipients": [ALICE], "last_message_id": None},
    )
    reply = discord.Message(
        state=gateway.state, channel=channel, data=message(DM_ID, BOT, "hello", later(1))
    )
    assert ChannelInfo.from_message(reply).name == "alice_42"


def test_from_message_keeps_a_threads_parent(gateway: Gateway) -> None:
    in_thread = gateway.make_message(message(THREAD_ID, ALICE, "help", later(0), guild_id=GUILD_ID))
    in_text = gateway.make_message(message(TEXT_ID, ALICE, "hi", later(0), guild_id=GUILD_ID))
    assert ChannelInfo.from_message(in_thread) == ChannelInfo(
        str(THREAD_ID), "help-thread", "channel", parent_id=str(TEXT_ID)
    )
    assert ChannelInfo.from_message(in_text) == ChannelInfo(str(TEXT_ID), "general", "channel")
    assert ChannelInfo.from_discord(in_thread.channel).parent_id == str(TEXT_ID)


async def test_add_discord_message_fills_every_column(gateway: Gateway, store: BotStore) -> None:
    first = await store.add_discord_message(
        gateway.make_message(message(THREAD_ID, ALICE, "look", later(0), guild_id=GUILD_ID))
    )
    reply = gateway.make_message(
        message(
            THREAD_ID,
            OTHER_BOT,
            "nice cat",
            later(5),
            guild_id=GUILD_ID,
            reply_to=int(first.message_id),
            attachments=[attachment(555, "cat.png", 2048)],
            edited_at=later(9),
        )
    )
    stored = await store.add_discord_message(reply)
    assert (first.role, first.author_is_bot, first.parent_id) == ("user", False, str(TEXT_ID))
    assert stored.role == "user"  # another bot is not this bot
    assert stored.author_is_bot is True
    assert stored.reply_to_message_id == first.message_id
    assert stored.attachments == [
        {
            "id": "555",
            "filename": "cat.png",
            "url": "https://cdn.discordapp.com/attachments/1/555/cat.png",
            "content_type": "image/png",
            "size": 2048,
        }
    ]
    assert stored.edited_at == later(9)
    assert stored.timestamp == later(5)
    assert (stored.channel_name, stored.parent_id) == ("help-thread", str(TEXT_ID))
    assert stored.message_id == str(reply.id)
    assert await store.history(ChannelInfo.from_message(reply)) == [first, stored]
    own = await store.add_discord_message(
        gateway.make_message(message(TEXT_ID, BOT, "hello", later(6), guild_id=GUILD_ID))
    )
    assert (own.role, own.author_is_bot) == ("assistant", True)
    system = await store.add_discord_message(
        gateway.make_message(message(TEXT_ID, BOT, "summary", later(7), guild_id=GUILD_ID)),
        role="system",
    )
    assert system.role == "system"


async def test_every_row_of_a_dm_carries_the_humans_name(gateway: Gateway, store: BotStore) -> None:
    # The bot writes first (cannot tell), the human answers, the bot replies again.
    opener = await store.add_discord_message(
        gateway.make_message(message(DM_ID, BOT, "hello!", later(0)))
    )
    assert opener.channel_name == "unknown_user_unknown"
    await store.add_discord_message(gateway.make_message(message(DM_ID, ALICE, "hi", later(1))))
    await store.add_discord_message(gateway.make_message(message(DM_ID, BOT, "how?", later(2))))
    channel = ChannelInfo.dm(DM_ID, 42, "alice")
    rows = await store.history(channel)
    assert [r.channel_name for r in rows] == ["alice_42"] * 3
    assert [r.role for r in rows] == ["assistant", "user", "assistant"]
    # A renamed user: the channel's rows follow the new name.
    renamed = user(42, "alicia")
    await store.add_discord_message(gateway.make_message(message(DM_ID, renamed, "x", later(3))))
    assert {r.channel_name for r in await store.history(channel)} == {"alicia_42"}


async def test_another_bots_dm_rows_are_untouched(
    gateway: Gateway, make_config: ConfigFactory
) -> None:
    async with (
        BotStore.open(make_config("sage")) as sage,
        BotStore.open(make_config("spark")) as spark,
    ):
        await spark.add_message(
            ChannelInfo("900", "old_42", "dm"), user_id=42, username="a", role="user", content="x"
        )
        await sage.add_discord_message(gateway.make_message(message(DM_ID, ALICE, "hi", later(1))))
        [row] = await spark.history(ChannelInfo("900", "", "dm"))
        assert row.channel_name == "old_42"


# --- the README example, run with discord.py's own classes ------------------------------------


def _readme_bot() -> dict[str, Any]:
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    # the discord.py bot (the other block is the quickstart's, run by .ci/quickstart)
    [example] = [block for block in blocks if "import discord" in block]
    assert example.rstrip().endswith("asyncio.run(main())")
    namespace: dict[str, Any] = {}
    exec(
        compile(example.rstrip().removesuffix("asyncio.run(main())"), "README.md", "exec"),
        namespace,
    )
    return namespace


async def test_readme_example_stores_a_dm_under_the_humans_name(store: BotStore) -> None:
    bot = _readme_bot()["SageBot"](store)
    gateway = Gateway(bot)
    await gateway.connect()
    sent: list[dict[str, Any]] = []

    async def send_message(channel_id: int, *, params: Any) -> dict[str, Any]:
        # What Discord answers to POST /channels/{id}/messages: the bot's message.
        data = message(channel_id, BOT, params.payload["content"], later(len(sent) + 1))
        sent.append(data)
        return data

    bot.http.send_message = send_message
    try:
        await gateway.send("message_create", message(DM_ID, ALICE, "hi sage", later(0)))
        [reply] = sent
        await gateway.send("message_create", reply)  # the gateway echoes the bot's own reply
        rows = await store.history(ChannelInfo.dm(DM_ID, 42, "alice"))
        assert [(r.role, r.channel_name, r.content) for r in rows] == [
            ("user", "alice_42", "hi sage"),
            ("assistant", "alice_42", reply["content"]),
        ]
        assert rows[1].author_is_bot is True
    finally:
        await bot.close()
        await asyncio.sleep(0)
