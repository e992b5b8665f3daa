"""What both framework adapters share: the rows of one conversation, written and removed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from convostore.channels import ChannelInfo
from convostore.errors import InvalidInput
from convostore.store import generated_message_id

if TYPE_CHECKING:
    from convostore.records import HistoryItem
    from convostore.store import BotStore

# "Everything" for a framework that asks for the whole history (SQL needs a number).
ALL = 2**31 - 1
# The user id of rows an adapter writes when the conversation is not one user's.
NO_USER = "0"
_DELETE_BATCH = 500


class Conversation:
    """One bot's rows in one channel (optionally one user's), as a framework memory sees them."""

    def __init__(self, store: BotStore, channel: ChannelInfo, user_id: int | str | None) -> None:
        if not isinstance(channel, ChannelInfo):
            raise InvalidInput(f"channel must be a ChannelInfo, not {type(channel).__name__}")
        self.store = store
        self.channel = channel
        self.user_id = None if user_id is None else str(user_id)
        self._last: datetime | None = None

    async def items(self, limit: int | None = None) -> list[HistoryItem]:
        """The newest ``limit`` rows (all with ``None``) as :class:`HistoryItem`, oldest first."""
        count = ALL if limit is None else limit
        if count <= 0:
            return []
        return await self.store.history_items(self.channel, limit=count, user_id=self.user_id)

    def _now(self) -> datetime:
        # Strictly increasing within this adapter, so items keep their order even when the clock
        # gives one value twice or steps back.
        now = datetime.now(UTC)
        if self._last is not None and now <= self._last:
            now = self._last + timedelta(microseconds=1)
        self._last = now
        return now

    async def add(self, rows: list[tuple[str, str, str, dict[str, Any] | None]]) -> None:
        """Store ``(role, username, content, metadata)`` rows in order, all or none.

        One row is one ``add_message``. Several (a framework's turn: the input, tool calls and
        their outputs, the answer) are validated first and written in one unit of work: a
        failure stores none of them, so a tool call is never kept without the output stored
        with it.
        """
        user_id = self.user_id or NO_USER
        messages: list[dict[str, Any]] = [
            {
                "user_id": user_id,
                "username": username,
                "role": role,
                "content": content,
                "timestamp": self._now(),
                "metadata": metadata,
                "message_id": generated_message_id(),
            }
            for role, username, content, metadata in rows
        ]
        if len(messages) == 1:
            await self.store.add_message(self.channel, **messages[0])
        elif messages:
            await self.store._append_all(self.channel, messages)

    async def delete(self, records: list[HistoryItem]) -> int:
        """Delete ``records`` through the store's delete path; how many rows went."""
        deleted = 0
        for start in range(0, len(records), _DELETE_BATCH):
            batch = records[start : start + _DELETE_BATCH]
            deleted += await self.store.delete_messages([r.message_id for r in batch])
        return deleted

    async def clear(self) -> int:
        deleted = 0
        while rows := await self.items(_DELETE_BATCH):
            gone = await self.delete(rows)
            deleted += gone
            if gone == 0:  # pragma: no cover - rows that cannot be deleted: do not spin
                break
        return deleted
