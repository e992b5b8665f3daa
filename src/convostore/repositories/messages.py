"""Reads and writes of the ``conversations`` table for one bot."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Integer, Select, Table, Text, bindparam, select, type_coerce
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from convostore.models import ConversationModel
from convostore.records import StoredMessage

_T = cast(Table, ConversationModel.__table__)
_COLUMNS = (
    _T.c.id,
    _T.c.bot_name,
    _T.c.channel_id,
    _T.c.channel_name,
    _T.c.channel_type,
    _T.c.user_id,
    _T.c.username,
    _T.c.session_id,
    _T.c.message_id,
    _T.c.role,
    _T.c.content,
    _T.c.timestamp,
    _T.c.metadata,
)

# A message id this bot already stored inserts nothing and returns no row: the idempotency check
# costs no statement of its own.
_INSERT = {
    "sqlite": sqlite.insert(_T)
    .on_conflict_do_nothing(index_elements=["bot_name", "message_id"])
    .returning(_T.c.id),
    "postgresql": postgresql.insert(_T)
    .on_conflict_do_nothing(index_elements=["bot_name", "message_id"])
    .returning(_T.c.id),
}
_BY_MESSAGE_ID = select(*_COLUMNS).where(
    _T.c.bot_name == bindparam("bot_name"), _T.c.message_id == bindparam("message_id")
)


# On SQLite the timestamp is read as its stored text (naive UTC, ISO 8601) and parsed by
# ``datetime.fromisoformat``: per row, that is several times cheaper than the generic DATETIME
# processor followed by UTCDateTime's, and history reads hundreds of rows per call.
_UTC_SUFFIX = "+00:00"  # parsed straight to an aware datetime in datetime.UTC
_SQLITE_COLUMNS = (*_COLUMNS[:11], type_coerce(_T.c.timestamp, Text), _T.c.metadata)


def _newest(sqlite_text_time: bool, by_user: bool, by_session: bool) -> Select[Any]:
    # idx_conversations_bot_channel_time serves it: one backwards range scan, stopped at ``limit``.
    query = select(*(_SQLITE_COLUMNS if sqlite_text_time else _COLUMNS)).where(
        _T.c.bot_name == bindparam("bot_name"), _T.c.channel_id == bindparam("channel_id")
    )
    if by_user:
        query = query.where(_T.c.user_id == bindparam("user_id"))
    if by_session:
        query = query.where(_T.c.session_id == bindparam("session_id"))
    return query.order_by(_T.c.timestamp.desc(), _T.c.id.desc()).limit(
        bindparam("limit", type_=Integer)
    )


_NEWEST = {
    (t, u, s): _newest(t, u, s) for t in (False, True) for u in (False, True) for s in (False, True)
}


def to_record(row: Sequence[Any]) -> StoredMessage:
    """A record from a row of ``_COLUMNS``, in that order."""
    id_, bot, channel, name, kind, user, username, session, message, role, content, at, meta = row
    return StoredMessage(
        id_,
        bot,
        channel,
        name,
        kind,
        user,
        username,
        session,
        message,
        role,
        content,
        at,
        None if meta is None else dict(meta),
    )


def _sqlite_record(row: Sequence[Any]) -> StoredMessage:
    """A record from a row of ``_SQLITE_COLUMNS``, in that order."""
    id_, bot, channel, name, kind, user, username, session, message, role, content, at, meta = row
    return StoredMessage(
        id_,
        bot,
        channel,
        name,
        kind,
        user,
        username,
        session,
        message,
        role,
        content,
        datetime.fromisoformat(at + _UTC_SUFFIX),
        None if meta is None else dict(meta),
    )


class MessageRepository:
    def __init__(self, connection: Connection, bot_name: str) -> None:
        self.connection = connection
        self.bot_name = bot_name

    def by_message_id(self, message_id: str) -> StoredMessage | None:
        row = self.connection.execute(
            _BY_MESSAGE_ID, {"bot_name": self.bot_name, "message_id": message_id}
        ).first()
        return None if row is None else to_record(row)

    def add(
        self,
        *,
        channel_id: str,
        channel_name: str,
        channel_type: str,
        user_id: str,
        username: str,
        session_id: str,
        message_id: str,
        role: str,
        content: str,
        timestamp: datetime,
        metadata: dict[str, Any] | None,
    ) -> StoredMessage | None:
        """Insert one message; ``None`` if this bot already stored ``message_id`` (nothing done)."""
        new_id = self.connection.execute(
            _INSERT[self.connection.dialect.name],
            {
                "bot_name": self.bot_name,
                "channel_id": channel_id,
                "channel_name": channel_name,
                "channel_type": channel_type,
                "user_id": user_id,
                "username": username,
                "session_id": session_id,
                "message_id": message_id,
                "role": role,
                "content": content,
                "timestamp": timestamp,
                "metadata": metadata,
            },
        ).scalar()
        if new_id is None:
            return None
        return StoredMessage(
            id=new_id,
            bot_name=self.bot_name,
            channel_id=channel_id,
            channel_name=channel_name,
            channel_type=channel_type,
            user_id=user_id,
            username=username,
            session_id=session_id,
            message_id=message_id,
            role=role,
            content=content,
            timestamp=timestamp,
            metadata=None if metadata is None else dict(metadata),
        )

    def newest(
        self,
        channel_id: str,
        limit: int,
        *,
        user_id: str | None = None,
        session_id: str | None = None,
    ) -> list[StoredMessage]:
        """The newest ``limit`` messages of the channel, newest first (one index range scan)."""
        sqlite_text_time = self.connection.dialect.name == "sqlite"
        result = self.connection.execute(
            _NEWEST[(sqlite_text_time, user_id is not None, session_id is not None)],
            {
                "bot_name": self.bot_name,
                "channel_id": channel_id,
                "user_id": user_id,
                "session_id": session_id,
                "limit": limit,
            },
        )
        convert = _sqlite_record if sqlite_text_time else to_record
        return [convert(row) for row in result.all()]
