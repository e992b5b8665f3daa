"""Plain, immutable records handed to bots, detached from any ORM session."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, NamedTuple

ROLES = frozenset({"user", "assistant", "system"})
"""The roles a message may have (the ``conversations.role`` CHECK constraint)."""


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """One stored message, with attributes named as the ``conversations`` columns."""

    id: int
    bot_name: str
    channel_id: str
    channel_name: str
    channel_type: str
    user_id: str
    username: str
    session_id: str
    message_id: str
    role: str
    content: str
    timestamp: datetime
    metadata: dict[str, Any] | None
    # Revision 0003: what Discord says of the message (the defaults are what a row without them
    # holds, e.g. one imported from the legacy JSON files).
    parent_id: str | None = None
    """The parent channel's id when the message was posted in a thread."""
    reply_to_message_id: str | None = None
    """The message this one replies to."""
    attachments: list[dict[str, Any]] = field(default_factory=list)
    """``{id, filename, url, content_type, size}`` per attachment; empty for none."""
    edited_at: datetime | None = None
    """When the content was last edited (aware UTC); ``None`` if never."""
    author_is_bot: bool = False
    """The author is a bot account (this bot itself or another)."""


# The attribute names of a message record, which are also its column names, in column order.
MESSAGE_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(StoredMessage))


class HistoryItem(NamedTuple):
    """A message as a framework's memory needs it (:meth:`convostore.BotStore.history_items`).

    The same values as the :class:`StoredMessage` of that row, read without the other columns.
    """

    message_id: str
    role: str
    content: str
    metadata: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class MessageRevision:
    """An earlier version of an edited message (``BotStore.revisions``)."""

    message_id: str
    content: str
    edited_at: datetime | None
    """When this version was written by an edit; ``None`` for the original."""
    replaced_at: datetime
    """When the next edit replaced it."""


@dataclass(frozen=True, slots=True)
class ChatSession:
    """One conversation session of a bot in a channel."""

    session_id: str
    channel_id: str
    started_at: datetime
    last_activity: datetime
    message_count: int
    is_active: bool


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One message found by ``BotStore.search``.

    ``snippet`` is one line of the message around its first match, matched words in ``[…]``;
    ``rank`` is the share of the message's words that are words of the query (0 to 1, higher is
    more on topic; the same on every backend).
    """

    message: StoredMessage
    snippet: str
    rank: float
