"""Reads and writes of the ``conversations`` table for one bot."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Integer, Select, Table, Text, bindparam, select, type_coerce
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from convostore.models import ConversationModel
from convostore.records import MESSAGE_FIELDS, StoredMessage

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


def _pysqlite_newest(by_user: bool, by_session: bool) -> str:
    # The query of ``_newest`` (same index, same order) without bot_name and channel_id, which the
    # WHERE clause fixes to the caller's values.
    where = "bot_name = ? AND channel_id = ?"
    if by_user:
        where += " AND user_id = ?"
    if by_session:
        where += " AND session_id = ?"
    return (
        "SELECT id, channel_name, channel_type, user_id, username, session_id, message_id, role,"
        f" content, timestamp, metadata FROM conversations WHERE {where}"
        " ORDER BY timestamp DESC, id DESC LIMIT ?"
    )


_PYSQLITE_NEWEST = {(u, s): _pysqlite_newest(u, s) for u in (False, True) for s in (False, True)}

# A frozen dataclass's __init__ sets each field through object.__setattr__, about half the cost of
# a history read's records; the slot descriptors set the same fields in half the time. The record
# is the same StoredMessage, equal to one built by __init__ (a test checks it).
_Setter = Callable[[StoredMessage, Any], None]
_FIELDS = MESSAGE_FIELDS
(
    _set_id,
    _set_bot_name,
    _set_channel_id,
    _set_channel_name,
    _set_channel_type,
    _set_user_id,
    _set_username,
    _set_session_id,
    _set_message_id,
    _set_role,
    _set_content,
    _set_timestamp,
    _set_metadata,
) = cast(tuple[_Setter, ...], tuple(vars(StoredMessage)[name].__set__ for name in _FIELDS))


def _pysqlite_records(
    rows: list[tuple[Any, ...]], bot_name: str, channel_id: str
) -> list[StoredMessage]:
    """Records from rows of ``_PYSQLITE_NEWEST``: timestamps are stored naive UTC ISO text."""
    new = object.__new__
    parse_time = datetime.fromisoformat
    loads = json.loads
    records = []
    for id_, name, kind, user, username, session, message, role, content, at, meta in rows:
        record = new(StoredMessage)
        _set_id(record, id_)
        _set_bot_name(record, bot_name)
        _set_channel_id(record, channel_id)
        _set_channel_name(record, name)
        _set_channel_type(record, kind)
        _set_user_id(record, user)
        _set_username(record, username)
        _set_session_id(record, session)
        _set_message_id(record, message)
        _set_role(record, role)
        _set_content(record, content)
        _set_timestamp(record, parse_time(at + _UTC_SUFFIX))
        # JSON's null is how the JSON column stores a None; SQL NULL comes from bulk imports.
        _set_metadata(record, None if meta is None or meta == "null" else loads(meta))
        records.append(record)
    return records


def to_record(row: Sequence[Any]) -> StoredMessage:
    """A record from a row of ``_COLUMNS``, in that order (values processed by Core)."""
    id_, bot, channel, name, kind, user, username, session, message, role, content, at, meta = row
    record = object.__new__(StoredMessage)
    _set_id(record, id_)
    _set_bot_name(record, bot)
    _set_channel_id(record, channel)
    _set_channel_name(record, name)
    _set_channel_type(record, kind)
    _set_user_id(record, user)
    _set_username(record, username)
    _set_session_id(record, session)
    _set_message_id(record, message)
    _set_role(record, role)
    _set_content(record, content)
    _set_timestamp(record, at)
    _set_metadata(record, None if meta is None else dict(meta))
    return record


def _sqlite_record(row: Sequence[Any]) -> StoredMessage:
    """A record from a row of ``_SQLITE_COLUMNS`` (the timestamp as its stored text)."""
    *values, at, meta = row
    return to_record((*values, datetime.fromisoformat(at + _UTC_SUFFIX), meta))


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
        if self.connection.dialect.driver == "pysqlite":
            return self._newest_pysqlite(channel_id, limit, user_id, session_id)
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

    def _newest_pysqlite(
        self, channel_id: str, limit: int, user_id: str | None, session_id: str | None
    ) -> list[StoredMessage]:
        # The hot read of every bot message. On the synchronous SQLite driver it runs a fixed SQL
        # string on the DBAPI connection and builds the records straight from its tuples: Core's
        # execute and result processing cost about as much as SQLite's own work for 100 rows.
        sql = _PYSQLITE_NEWEST[(user_id is not None, session_id is not None)]
        params: tuple[Any, ...] = (
            self.bot_name,
            channel_id,
            *(() if user_id is None else (user_id,)),
            *(() if session_id is None else (session_id,)),
            limit,
        )
        driver_connection = self.connection.connection.driver_connection
        try:
            rows = driver_connection.execute(sql, params).fetchall()  # type: ignore[union-attr]
        except sqlite3.Error as exc:
            # The same wrapping Core applies, so the store translates it as any other error.
            raise DBAPIError.instance(sql, params, exc, sqlite3.Error) from exc
        return _pysqlite_records(rows, self.bot_name, channel_id)
