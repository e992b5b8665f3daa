"""Plain, immutable records handed to bots, detached from any ORM session."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any


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


# The attribute names of a message record, which are also its column names, in column order.
MESSAGE_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(StoredMessage))


@dataclass(frozen=True, slots=True)
class ChatSession:
    """One conversation session of a bot in a channel."""

    session_id: str
    channel_id: str
    started_at: datetime
    last_activity: datetime
    message_count: int
    is_active: bool
