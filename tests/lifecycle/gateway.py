"""A discord.py client driven by gateway payloads, with no network.

The client is discord.py's own ``Client``; its ``ConnectionState`` parses the payloads exactly as
the gateway would deliver them (``MESSAGE_CREATE``, ``MESSAGE_UPDATE``, ``MESSAGE_DELETE``,
``MESSAGE_DELETE_BULK``, ``GUILD_CREATE``), so the handlers under test receive real ``Message``,
``DMChannel``, ``Thread`` and raw-event objects. Only the login is skipped: the state's user is set
from a payload, and the event loop is attached with the client's own setup hook.
"""

from __future__ import annotations

import asyncio
import itertools
import warnings
from datetime import UTC, datetime, timedelta
from typing import Any

with warnings.catch_warnings():
    # discord.py imports the deprecated audioop module (voice); not what these tests are about.
    warnings.simplefilter("ignore", DeprecationWarning)
    import discord
from discord.user import ClientUser

T0 = datetime(2024, 1, 8, 14, 30, tzinfo=UTC)
BOT_ID = 1_000_000_000_000_001
GUILD_ID = 1_000_000_000_000_100
TEXT_ID = 1_000_000_000_000_200
THREAD_ID = 1_000_000_000_000_300


def user(user_id: int, name: str, *, bot: bool = False) -> dict[str, Any]:
    return {
        "id": str(user_id),
        "username": name,
        "discriminator": "0",
        "avatar": None,
        "global_name": name.title(),
        "bot": bot,
    }


BOT = user(BOT_ID, "sage", bot=True)
_ids = itertools.count(1)


def snowflake(at: datetime) -> int:
    """A message id created at ``at``, unique within the test run."""
    return discord.utils.time_snowflake(at) + next(_ids)


def message(
    channel_id: int,
    author: dict[str, Any],
    content: str,
    at: datetime,
    *,
    guild_id: int | None = None,
    message_id: int | None = None,
    reply_to: int | None = None,
    attachments: list[dict[str, Any]] | None = None,
    edited_at: datetime | None = None,
) -> dict[str, Any]:
    """A ``MESSAGE_CREATE`` payload; no ``guild_id`` means a DM."""
    data: dict[str, Any] = {
        "id": str(message_id or snowflake(at)),
        "channel_id": str(channel_id),
        "author": author,
        "content": content,
        "timestamp": at.isoformat(),
        "edited_timestamp": None if edited_at is None else edited_at.isoformat(),
        "tts": False,
        "mention_everyone": False,
        "mentions": [],
        "mention_roles": [],
        "attachments": attachments or [],
        "embeds": [],
        "pinned": False,
        "type": 0,
    }
    if guild_id is not None:
        data["guild_id"] = str(guild_id)
    if reply_to is not None:
        data["type"] = 19
        data["message_reference"] = {
            "type": 0,
            "message_id": str(reply_to),
            "channel_id": str(channel_id),
        }
    return data


def attachment(attachment_id: int, filename: str, size: int = 10) -> dict[str, Any]:
    return {
        "id": str(attachment_id),
        "filename": filename,
        "size": size,
        "url": f"https://cdn.discordapp.com/attachments/1/{attachment_id}/{filename}",
        "proxy_url": f"https://media.discordapp.net/attachments/1/{attachment_id}/{filename}",
        "content_type": "image/png",
    }


def guild() -> dict[str, Any]:
    """A ``GUILD_CREATE`` payload: one text channel and one public thread in it."""
    return {
        "id": str(GUILD_ID),
        "name": "Sages",
        "owner_id": "1",
        "features": [],
        "roles": [],
        "emojis": [],
        "stickers": [],
        "members": [],
        "member_count": 2,
        "channels": [
            {
                "id": str(TEXT_ID),
                "type": 0,
                "name": "general",
                "position": 0,
                "permission_overwrites": [],
                "guild_id": str(GUILD_ID),
            }
        ],
        "threads": [
            {
                "id": str(THREAD_ID),
                "type": 11,
                "name": "help-thread",
                "parent_id": str(TEXT_ID),
                "guild_id": str(GUILD_ID),
                "owner_id": "42",
                "message_count": 0,
                "member_count": 1,
                "rate_limit_per_user": 0,
                "thread_metadata": {
                    "archived": False,
                    "auto_archive_duration": 1440,
                    "archive_timestamp": T0.isoformat(),
                    "locked": False,
                },
            }
        ],
    }


class Gateway:
    """Feeds payloads to a client's connection state and waits for its handlers."""

    def __init__(self, client: discord.Client) -> None:
        self.client = client
        self.state = client._connection
        self.errors: list[BaseException] = []

    async def connect(self) -> None:
        await self.client._async_setup_hook()  # what login() does: attach the running loop
        self.state.user = ClientUser(state=self.state, data=BOT)  # type: ignore[arg-type]

        async def on_error(event: str, *args: Any, **kwargs: Any) -> None:
            import sys

            self.errors.append(sys.exc_info()[1] or RuntimeError(event))

        self.client.on_error = on_error  # type: ignore[method-assign]

    async def drain(self) -> None:
        """Wait for every dispatched handler; fail with the first error one raised."""
        while True:
            pending = [
                task
                for task in asyncio.all_tasks()
                if task.get_name().startswith("discord.py:") and not task.done()
            ]
            if not pending:
                break
            await asyncio.gather(*pending)
        if self.errors:
            raise self.errors[0]

    async def send(self, name: str, payload: Any) -> None:
        getattr(self.state, f"parse_{name}")(payload)
        await self.drain()

    async def dispatch(self, event: str, *args: Any) -> None:
        """An event the state dispatches after its own bookkeeping (``ready``, ``guild_join``)."""
        self.state.dispatch(event, *args)
        await self.drain()

    def make_message(self, data: dict[str, Any]) -> discord.Message:
        """The ``Message`` discord.py would build for ``data`` (as ``channel.history()`` yields)."""
        channel, _ = self.state._get_guild_channel(data)
        return discord.Message(state=self.state, channel=channel, data=data)  # type: ignore[arg-type]


def later(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)
