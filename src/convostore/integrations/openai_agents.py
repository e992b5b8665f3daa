"""``ConvostoreSession``: the OpenAI Agents SDK's ``Session`` over a :class:`convostore.BotStore`.

``Runner.run(agent, input, session=ConvostoreSession(store, channel))`` keeps the agent's
conversation in the bot's own database, as rows of the channel: the messages a Discord bot stored
with ``add_message`` are the agent's history too, and what the agent adds is in ``history``,
``search``, exports and backups like any message.

Each item is one row. Its ``content`` is the readable text (a message's text, ``name(arguments)``
for a tool call, a tool's output, a reasoning summary) and, unless the item is a plain
``{"role", "content"}`` message, ``metadata["openai_agents_item"]`` holds the item itself, so
tool calls, tool outputs and reasoning items come back exactly as they went in. Rows without it
(written by the bot) come back as ``{"role": …, "content": …}``.

Needs the ``openai-agents`` extra: ``pip install "convostore[openai-agents]"``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from agents.memory import SessionSettings

from convostore.channels import ChannelInfo
from convostore.errors import InvalidInput
from convostore.integrations._common import Conversation

if TYPE_CHECKING:
    from agents.items import TResponseInputItem

    from convostore.records import HistoryItem
    from convostore.store import BotStore

__all__ = ["ITEM_KEY", "ConvostoreSession"]

ITEM_KEY = "openai_agents_item"
_ROLES = {"user": "user", "assistant": "assistant", "system": "system", "developer": "system"}


def _text(item: dict[str, Any]) -> str:
    """The readable text of an item (what history, search and exports show)."""
    kind = item.get("type")
    content = item.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(part.get("text") or part.get("refusal") or "")
            for part in content
            if isinstance(part, dict)
        ).strip()
    if kind == "function_call":
        return f"{item.get('name', '')}({item.get('arguments', '')})"
    if "output" in item:
        output = item["output"]
        return output if isinstance(output, str) else json.dumps(output, ensure_ascii=False)
    if kind == "reasoning":
        return "\n".join(
            str(part.get("text", ""))
            for part in item.get("summary") or []
            if isinstance(part, dict)
        )
    return json.dumps(item, ensure_ascii=False, sort_keys=True)


def _is_plain(item: dict[str, Any]) -> bool:
    return (
        set(item) == {"role", "content"}
        and item["role"] in ("user", "assistant", "system")
        and isinstance(item["content"], str)
    )


def _row(item: Any, bot_name: str) -> tuple[str, str, str, dict[str, Any] | None]:
    if not isinstance(item, dict):
        raise InvalidInput(f"session items must be dicts, not {type(item).__name__}")
    role = _ROLES.get(str(item.get("role")), "assistant")
    username = "user" if role == "user" else bot_name
    if _is_plain(item):
        return role, username, item["content"], None
    return role, username, _text(item), {ITEM_KEY: item}


def _item(record: HistoryItem) -> TResponseInputItem:
    stored = (record.metadata or {}).get(ITEM_KEY)
    if isinstance(stored, dict):
        return stored  # type: ignore[return-value]
    return {"role": record.role, "content": record.content}  # type: ignore[return-value,misc]


class ConvostoreSession:
    """The Agents SDK ``Session`` protocol over one channel of a bot (optionally one user's).

    ``session_id`` is ``"<bot>:<channel id>"`` (``":<user id>"`` appended with ``user_id``).
    With ``user_id`` the session reads and writes only that user's rows of the channel (the
    agent's replies are stored under the same user id); without it, the whole channel.
    ``pop_item`` and ``clear_session`` delete rows through ``BotStore.delete_messages``: session
    counts stay exact and other channels, users and bots are never touched.
    """

    session_settings: SessionSettings | None = None

    def __init__(
        self, store: BotStore, channel: ChannelInfo, *, user_id: int | str | None = None
    ) -> None:
        self._conversation = Conversation(store, channel, user_id)
        suffix = "" if user_id is None else f":{user_id}"
        self.session_id = f"{store.bot_name}:{channel.id}{suffix}"
        self.session_settings = SessionSettings()

    async def get_items(self, limit: int | None = None) -> list[TResponseInputItem]:
        """The newest ``limit`` items, oldest first.

        ``None`` means ``session_settings.limit``, and all items when that is ``None`` too.
        """
        if limit is None and self.session_settings is not None:
            limit = self.session_settings.limit
        return [_item(record) for record in await self._conversation.items(limit)]

    async def add_items(self, items: list[TResponseInputItem]) -> None:
        bot = self._conversation.store.bot_name
        rows = [_row(item, bot) for item in items]
        await self._conversation.add(rows)

    async def pop_item(self) -> TResponseInputItem | None:
        """Remove and return the newest item (``None`` when the session is empty)."""
        newest = await self._conversation.items(1)
        if not newest:
            return None
        await self._conversation.delete(newest)
        return _item(newest[0])

    async def clear_session(self) -> None:
        await self._conversation.clear()
