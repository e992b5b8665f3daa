"""Reads and writes of the ``conversations`` table for one bot."""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Sequence
from functools import cache
from typing import Any

from sqlalchemy import (
    JSON,
    ColumnElement,
    Integer,
    Select,
    Text,
    any_,
    bindparam,
    func,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from convostore.records import HistoryItem, StoredMessage
from convostore.repositories import driver, rows
from convostore.repositories.rows import (
    DRIVER_SELECT,
    MESSAGE_COLUMNS,
    MESSAGES,
    NewMessage,
    message_columns,
    message_from_row,
    message_reader,
)

_T = MESSAGES

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
_INSERT_PYSQLITE = (
    f"INSERT INTO conversations ({rows.INSERT_COLUMNS})"
    f" VALUES ({', '.join('?' * rows.INSERT_WIDTH)})"
    " ON CONFLICT (bot_name, message_id) DO NOTHING RETURNING id"
)
_BY_MESSAGE_ID = select(*MESSAGE_COLUMNS).where(
    _T.c.bot_name == bindparam("bot_name"), _T.c.message_id == bindparam("message_id")
)


@cache
def newest_statement(
    dialect: str,
    *,
    by_user: bool = False,
    by_session: bool = False,
    columns: tuple[ColumnElement[Any], ...] | None = None,
) -> Select[Any]:
    """The history read through Core: the newest ``:limit`` rows of ``:bot_name``/``:channel_id``.

    Optional filters ``:user_id`` and ``:session_id``; rows of ``message_columns(dialect)`` (or
    of ``columns``). idx_conversations_bot_channel_time serves it (on SQLite the covering
    idx_conversations_history): one backwards range scan, stopped at the limit.
    """
    query = select(*(message_columns(dialect) if columns is None else columns)).where(
        _T.c.bot_name == bindparam("bot_name"), _T.c.channel_id == bindparam("channel_id")
    )
    if by_user:
        query = query.where(_T.c.user_id == bindparam("user_id"))
    if by_session:
        query = query.where(_T.c.session_id == bindparam("session_id"))
    return query.order_by(_T.c.timestamp.desc(), _T.c.id.desc()).limit(
        bindparam("limit", type_=Integer)
    )


@cache
def newest_driver_sql(
    *,
    by_user: bool = False,
    by_session: bool = False,
    select_sql: str = DRIVER_SELECT,
    numbered: bool = False,
) -> str:
    """The history read as SQL for the driver: SQLite's DBAPI (``?``) or asyncpg (``numbered``:
    ``$1``, ``$2``, …).

    The query of :func:`newest_statement` (same index, same order) selecting
    :data:`~convostore.repositories.rows.DRIVER_SELECT` (or ``select_sql``); parameters
    ``(bot_name, channel_id, [user_id,] [session_id,] limit)``.
    """
    columns = ["bot_name", "channel_id"]
    if by_user:
        columns.append("user_id")
    if by_session:
        columns.append("session_id")
    marks = [f"${n}" if numbered else "?" for n in range(1, len(columns) + 2)]
    where = " AND ".join(f"{column} = {mark}" for column, mark in zip(columns, marks, strict=False))
    return f"{select_sql} WHERE {where} ORDER BY timestamp DESC, id DESC LIMIT {marks[-1]}"


def newest_driver_params(
    bot_name: str, channel_id: str, limit: int, user_id: str | None, session_id: str | None
) -> tuple[Any, ...]:
    """The parameters of a :func:`newest_driver_sql` query, in its order."""
    return (
        bot_name,
        channel_id,
        *(() if user_id is None else (user_id,)),
        *(() if session_id is None else (session_id,)),
        limit,
    )


# What BotStore.history_items reads: the fields of HistoryItem, in its order.
_ITEM_COLUMNS = tuple(_T.c[name] for name in HistoryItem._fields)
ITEM_SELECT = f"SELECT {', '.join(HistoryItem._fields)} FROM conversations"
ITEM_SELECT_ASYNCPG = f"SELECT {rows.as_text_on_postgresql(HistoryItem._fields)} FROM conversations"
"""``ITEM_SELECT`` for asyncpg: ``metadata`` as its text, decoded as the DBAPI's."""


def _by_message_ids(dialect: str, *columns: ColumnElement[Any]) -> Select[Any]:
    """``columns`` of this bot's rows whose message ids are in ``:ids`` (a list), one statement.

    SQLite takes the ids as one JSON array (no limit on bound variables) and looks each up in the
    unique index. PostgreSQL takes them as one array (``= ANY``): with good statistics each is
    looked up in the unique index; without (a table a backfill has just filled), the planner may
    read the bot's rows instead, but once per batch, not once per 500 ids as with ``IN`` lists.
    """
    owned = _T.c.bot_name == bindparam("bot_name")
    if dialect != "postgresql":
        ids = select(func.json_each(bindparam("ids", type_=JSON)).table_valued("value").c.value)
        return select(*columns).where(owned, _T.c.message_id.in_(ids.scalar_subquery()))
    return select(*columns).where(
        owned, _T.c.message_id == any_(bindparam("ids", type_=ARRAY(Text)))
    )


_BY_MESSAGE_IDS = {
    dialect: _by_message_ids(dialect, *MESSAGE_COLUMNS) for dialect in ("sqlite", "postgresql")
}
_STORED_IDS = {
    dialect: _by_message_ids(dialect, _T.c.message_id) for dialect in ("sqlite", "postgresql")
}

_NEWEST_CHANNEL_NAME = (
    select(_T.c.channel_name)
    .where(_T.c.bot_name == bindparam("bot_name"), _T.c.channel_id == bindparam("channel_id"))
    .order_by(_T.c.timestamp.desc(), _T.c.id.desc())
    .limit(1)
)
_RENAME_CHANNEL = (
    update(_T)
    .where(
        _T.c.bot_name == bindparam("bot"),
        _T.c.channel_id == bindparam("channel"),
        _T.c.channel_name != bindparam("name"),
    )
    .values(channel_name=bindparam("name"))
)


class MessageRepository:
    def __init__(self, connection: Connection, bot_name: str) -> None:
        self.connection = connection
        self.bot_name = bot_name

    def stored_ids(self, message_ids: Sequence[str]) -> set[str]:
        """Which of ``message_ids`` this bot stored (the unique index alone answers)."""
        statement = _STORED_IDS[self.connection.dialect.name]
        params = {"bot_name": self.bot_name, "ids": list(message_ids)}
        return set(self.connection.execute(statement, params).scalars())

    def by_message_ids(self, message_ids: Sequence[str]) -> list[StoredMessage]:
        """This bot's stored messages among ``message_ids`` (in no particular order)."""
        statement = _BY_MESSAGE_IDS[self.connection.dialect.name]
        params = {"bot_name": self.bot_name, "ids": list(message_ids)}
        return [message_from_row(row) for row in self.connection.execute(statement, params)]

    def channel_name(self, channel_id: str) -> str | None:
        """The name the channel's newest row carries; ``None`` for a channel with no rows."""
        name: str | None = self.connection.execute(
            _NEWEST_CHANNEL_NAME, {"bot_name": self.bot_name, "channel_id": channel_id}
        ).scalar()
        return name

    def rename_channel(self, channel_id: str, name: str) -> None:
        """Give every row of the channel the name ``name``."""
        self.connection.execute(
            _RENAME_CHANNEL, {"bot": self.bot_name, "channel": channel_id, "name": name}
        )

    def by_message_id(self, message_id: str) -> StoredMessage | None:
        row = self.connection.execute(
            _BY_MESSAGE_ID, {"bot_name": self.bot_name, "message_id": message_id}
        ).first()
        return None if row is None else message_from_row(row)

    def add(self, message: NewMessage, session_id: str) -> StoredMessage | None:
        """Insert one message into ``session_id``; ``None`` if this bot already stored its id."""
        bot_name = self.bot_name
        if self.connection.dialect.driver == "pysqlite":
            # The write hot path: the backfill's generated row converter, one row.
            values = rows.sqlite_values((message,), (session_id,), (0,), bot_name)
            row = driver.run(self.connection, _INSERT_PYSQLITE, values).fetchone()
            if row is None:
                return None
            return rows.stored_messages((message,), (session_id,), (row[0],), bot_name)[0]
        message = dataclasses.replace(message, session_id=session_id)
        params = message.params(bot_name)
        new_id = self.connection.execute(_INSERT[self.connection.dialect.name], params).scalar()
        return None if new_id is None else message.stored(new_id, bot_name)

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
        dialect = self.connection.dialect.name
        result = self.connection.execute(
            newest_statement(
                dialect, by_user=user_id is not None, by_session=session_id is not None
            ),
            {
                "bot_name": self.bot_name,
                "channel_id": channel_id,
                "user_id": user_id,
                "session_id": session_id,
                "limit": limit,
            },
        )
        convert = message_reader(dialect)
        return [convert(row) for row in result.all()]

    def _newest_pysqlite(
        self, channel_id: str, limit: int, user_id: str | None, session_id: str | None
    ) -> list[StoredMessage]:
        # The hot read of every bot message. On the synchronous SQLite driver it runs a fixed SQL
        # string on the DBAPI connection and builds the records straight from its tuples: Core's
        # execute and result processing cost about as much as SQLite's own work for 100 rows.
        sql = newest_driver_sql(by_user=user_id is not None, by_session=session_id is not None)
        found = self._driver_rows(sql, channel_id, limit, user_id, session_id)
        return rows.messages_from_driver_rows(found, self.bot_name, channel_id)

    def newest_items(
        self, channel_id: str, limit: int, *, user_id: str | None = None
    ) -> list[HistoryItem]:
        """The newest ``limit`` messages of the channel as :class:`HistoryItem`, newest first.

        The rows of :meth:`newest` (same query, same order), four columns of each.
        """
        if self.connection.dialect.driver == "pysqlite":
            sql = newest_driver_sql(by_user=user_id is not None, select_sql=ITEM_SELECT)
            return rows.items_from_driver_rows(
                self._driver_rows(sql, channel_id, limit, user_id, None)
            )
        statement = newest_statement(
            self.connection.dialect.name, by_user=user_id is not None, columns=_ITEM_COLUMNS
        )
        params = {
            "bot_name": self.bot_name,
            "channel_id": channel_id,
            "user_id": user_id,
            "limit": limit,
        }
        return [
            HistoryItem(message_id, role, content, None if metadata is None else dict(metadata))
            for message_id, role, content, metadata in self.connection.execute(statement, params)
        ]

    def _driver_rows(
        self,
        sql: str,
        channel_id: str,
        limit: int,
        user_id: str | None,
        session_id: str | None,
    ) -> list[Any]:
        """Rows of a :func:`newest_driver_sql` query, run on the DBAPI connection."""
        params = newest_driver_params(self.bot_name, channel_id, limit, user_id, session_id)
        driver_connection = self.connection.connection.driver_connection
        try:
            return driver_connection.execute(sql, params).fetchall()  # type: ignore[union-attr,no-any-return]
        except sqlite3.Error as exc:
            # The same wrapping Core applies, so the store translates it as any other error.
            raise DBAPIError.instance(sql, params, exc, sqlite3.Error) from exc
