"""The complete bot of docs/discord.md, run with discord.py's own classes and gateway payloads."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from convostore import BotStore, ChannelInfo
from tests.lifecycle.gateway import (
    BOT,
    GUILD_ID,
    TEXT_ID,
    THREAD_ID,
    Gateway,
    attachment,
    guild,
    later,
    message,
    user,
)

ROOT = Path(__file__).resolve().parents[2]
ALICE = user(42, "alice")
BOB = user(43, "bob")
DM_ID = 900
TEXT = ChannelInfo(str(TEXT_ID), "general", "channel")
THREAD = ChannelInfo(str(THREAD_ID), "help-thread", "channel", parent_id=str(TEXT_ID))
DM = ChannelInfo.dm(DM_ID, 42, "alice")


def _bot_class() -> Any:
    docs = (ROOT / "docs" / "discord.md").read_text(encoding="utf-8")
    [code] = re.findall(r"## A complete bot\n.*?```python\n(.*?)```", docs, flags=re.S)
    namespace: dict[str, Any] = {"__name__": "docs_discord"}
    exec(compile(code, "docs/discord.md", "exec"), namespace)
    return namespace["SageBot"]


class Discord:
    """What the bot's HTTP calls would reach: the messages of each channel, and sent ones."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.channels: dict[int, list[dict[str, Any]]] = {}
        self.sent: list[dict[str, Any]] = []

    def remove(self, *message_ids: str) -> None:
        for messages in self.channels.values():
            messages[:] = [m for m in messages if m["id"] not in message_ids]

    def post(self, payload: dict[str, Any]) -> dict[str, Any]:
        self.channels.setdefault(int(payload["channel_id"]), []).append(payload)
        return payload

    async def send_message(self, channel_id: int, *, params: Any) -> dict[str, Any]:
        data = message(
            channel_id,
            BOT,
            params.payload["content"],
            later(100 + len(self.sent)),
            guild_id=None if channel_id == DM_ID else GUILD_ID,
        )
        self.sent.append(data)
        return self.post(data)

    async def logs_from(
        self,
        channel_id: int,
        limit: int,
        before: int | None = None,
        after: int | None = None,
        around: int | None = None,
    ) -> list[dict[str, Any]]:
        newest_first = sorted(self.channels.get(int(channel_id), []), key=lambda m: -int(m["id"]))
        if before is not None:
            newest_first = [m for m in newest_first if int(m["id"]) < int(before)]
        return newest_first[:limit]


@pytest.fixture
async def running(store: BotStore) -> AsyncIterator[tuple[Gateway, Discord]]:
    bot = _bot_class()(store)
    gateway = Gateway(bot)
    await gateway.connect()
    discord_api = Discord(gateway)
    bot.http.send_message = discord_api.send_message
    bot.http.logs_from = discord_api.logs_from
    gateway.state.parse_guild_create(guild())
    await gateway.drain()
    yield gateway, discord_api
    await bot.close()


async def deliver(gateway: Gateway, discord_api: Discord, payload: dict[str, Any]) -> None:
    """A message posted in Discord: the gateway delivers it, and the bot's replies too."""
    sent = len(discord_api.sent)
    await gateway.send("message_create", discord_api.post(payload))
    for reply in discord_api.sent[sent:]:
        await gateway.send("message_create", reply)


async def test_the_documented_bot_keeps_the_store_in_step(
    running: tuple[Gateway, Discord], store: BotStore
) -> None:
    gateway, api = running
    # Said before the bot was online: only the backfill on on_ready can store it.
    early = [
        api.post(message(TEXT_ID, BOB, f"early {i}", later(i), guild_id=GUILD_ID)) for i in range(3)
    ]
    await gateway.dispatch("ready")
    assert [m.content for m in await store.history(TEXT)] == ["early 0", "early 1", "early 2"]

    hello = message(
        TEXT_ID,
        ALICE,
        "hello",
        later(10),
        guild_id=GUILD_ID,
        reply_to=int(early[2]["id"]),
        attachments=[attachment(77, "cat.png")],
    )
    await deliver(gateway, api, hello)
    await deliver(
        gateway, api, message(THREAD_ID, ALICE, "in a thread", later(11), guild_id=GUILD_ID)
    )
    await deliver(gateway, api, message(DM_ID, ALICE, "psst", later(12)))

    text_rows = await store.history(TEXT)
    assert [(r.content, r.role) for r in text_rows[3:]] == [
        ("hello", "user"),
        ("I remember 4 messages here.", "assistant"),
    ]
    assert text_rows[3].reply_to_message_id == early[2]["id"]
    assert text_rows[3].attachments[0]["filename"] == "cat.png"
    thread_rows = await store.history(THREAD)
    assert [r.parent_id for r in thread_rows] == [str(TEXT_ID)] * 2
    dm_rows = await store.history(DM)
    assert [(r.channel_name, r.role) for r in dm_rows] == [
        ("alice_42", "user"),
        ("alice_42", "assistant"),
    ]

    # An edit of a message discord.py never cached (raw event), then deletes.
    edited = {**hello, "content": "hello everyone", "edited_timestamp": later(20).isoformat()}
    await gateway.send("message_update", edited)
    assert (await store.history(TEXT))[3].content == "hello everyone"
    assert [r.content for r in await store.revisions(hello["id"])] == ["hello"]
    api.remove(early[0]["id"], early[1]["id"], hello["id"])
    await gateway.send(
        "message_delete",
        {"id": early[0]["id"], "channel_id": str(TEXT_ID), "guild_id": str(GUILD_ID)},
    )
    await gateway.send(
        "message_delete_bulk",
        {
            "ids": [early[1]["id"], hello["id"]],
            "channel_id": str(TEXT_ID),
            "guild_id": str(GUILD_ID),
        },
    )
    assert [r.content for r in await store.history(TEXT)] == [
        "early 2",
        "I remember 4 messages here.",
    ]
    assert await store.revisions(hello["id"]) == []
    assert sum(s.message_count for s in await store.sessions(TEXT)) == 2

    # Joining again (on_guild_join, or a reconnect's on_ready) stores nothing twice.
    before = await store.history(TEXT)
    joined = gateway.state._get_guild(GUILD_ID)
    await gateway.dispatch("guild_join", joined)
    await gateway.dispatch("ready")
    assert await store.history(TEXT) == before
