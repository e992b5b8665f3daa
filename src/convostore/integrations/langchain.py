"""``ConvostoreChatMessageHistory``: LangChain's chat message history over a ``BotStore``.

Works with ``RunnableWithMessageHistory`` and anything else that takes a
``BaseChatMessageHistory``. Each message is one row of the channel: ``content`` is the
message's text, and ``metadata["langchain_message"]`` holds the message as LangChain serialises
it (``message_to_dict``), so human, AI (with tool calls), system and tool messages come back
equal to what went in. Rows without it (written by the bot with ``add_message``) come back as
``HumanMessage``, ``AIMessage`` or ``SystemMessage`` by role.

The async methods (``aget_messages``, ``aadd_messages``, ``aclear``) run on the store's event
loop. The sync ones (``messages``, ``add_messages``, ``clear``) are for code running in another
thread (LangChain's sync ``invoke`` in a worker thread, for example): they hand the work to the
store's loop and wait for it. Called on the loop's own thread they would block it, so they refuse.

Needs the ``langchain`` extra: ``pip install "convostore[langchain]"``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from langchain_core.chat_history import BaseChatMessageHistory
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    message_to_dict,
    messages_from_dict,
)

from convostore.channels import ChannelInfo
from convostore.errors import InvalidInput, OperationError
from convostore.integrations._common import Conversation

if TYPE_CHECKING:
    from convostore.records import HistoryItem
    from convostore.store import BotStore

__all__ = ["MESSAGE_KEY", "ConvostoreChatMessageHistory"]

MESSAGE_KEY = "langchain_message"
_ROLES = {"human": "user", "ai": "assistant", "system": "system"}
_T = TypeVar("_T")


def _row(message: BaseMessage, bot_name: str) -> tuple[str, str, str, dict[str, Any]]:
    if not isinstance(message, BaseMessage):
        raise InvalidInput(f"messages must be LangChain messages, not {type(message).__name__}")
    role = _ROLES.get(message.type, "assistant")
    username = message.name or ("user" if role == "user" else bot_name)
    return role, username, message.text, {MESSAGE_KEY: message_to_dict(message)}


def _message(record: HistoryItem) -> BaseMessage:
    stored = (record.metadata or {}).get(MESSAGE_KEY)
    if isinstance(stored, dict):
        return messages_from_dict([stored])[0]
    if record.role == "user":
        return HumanMessage(content=record.content)
    if record.role == "system":
        return SystemMessage(content=record.content)
    return AIMessage(content=record.content)


class ConvostoreChatMessageHistory(BaseChatMessageHistory):
    """The messages of one channel of a bot, as a LangChain ``BaseChatMessageHistory``.

    ``clear`` deletes the channel's rows of this bot through ``BotStore.delete_messages``
    (session counts stay exact; other channels and bots are untouched).
    """

    def __init__(self, store: BotStore, channel: ChannelInfo) -> None:
        self._conversation = Conversation(store, channel, None)
        try:
            self._loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None

    # --- async: the store's own loop ---------------------------------------------------------

    async def aget_messages(self) -> list[BaseMessage]:
        self._loop = asyncio.get_running_loop()
        return [_message(record) for record in await self._conversation.items()]

    async def aadd_messages(self, messages: Sequence[BaseMessage]) -> None:
        self._loop = asyncio.get_running_loop()
        bot = self._conversation.store.bot_name
        await self._conversation.add([_row(message, bot) for message in messages])

    async def aclear(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self._conversation.clear()

    # --- sync: from another thread, run on the store's loop ----------------------------------

    def _wait(self, work: Coroutine[Any, Any, _T]) -> _T:
        loop = self._loop
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if loop is None or loop.is_closed() or running is loop:
            work.close()
            if running is not None and running is loop:
                raise OperationError(
                    "ConvostoreChatMessageHistory: the sync methods would block the store's event "
                    "loop; use aget_messages, aadd_messages and aclear in async code"
                )
            raise OperationError(
                "ConvostoreChatMessageHistory: create it in the store's event loop (inside "
                "`async with BotStore.open(...)`) before using the sync methods from a thread"
            )
        return asyncio.run_coroutine_threadsafe(work, loop).result()

    @property
    def messages(self) -> list[BaseMessage]:  # type: ignore[override]
        return self._wait(self.aget_messages())

    def add_messages(self, messages: Sequence[BaseMessage]) -> None:
        self._wait(self.aadd_messages(messages))

    def clear(self) -> None:
        self._wait(self.aclear())
