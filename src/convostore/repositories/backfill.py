"""Backfill: many messages of one channel in one transaction, sessions recomputed around them.

Messages of a backfill may be older than what the channel holds, or fall between its sessions, so
they cannot simply join the open session. The sessions they can touch are those within ``gap``
seconds of the batch's time range; every other session is more than ``gap`` away from each new
message and keeps its messages. The affected sessions' messages and the new ones are cut again
with :func:`convostore.sessions.cut`: a recomputed session that starts where an affected one
started keeps that row and id, the others get new rows, existing messages move to their new
session, and affected sessions left without messages are deleted. Counts are set from the cut,
so they are exact.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Sequence
from datetime import datetime, timedelta
from operator import attrgetter
from typing import Any, NamedTuple, cast

from sqlalchemy import Table, bindparam, delete, insert, select, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from convostore.bulk_insert import statement_rows, unnest_insert, values_insert
from convostore.models import ChatSessionModel, ConversationModel
from convostore.records import StoredMessage
from convostore.repositories.rows import (
    INSERT_COLUMNS,
    INSERT_WIDTH,
    NEW_MESSAGE_FIELDS,
    NewMessage,
    json_text,
    sqlite_values,
    stored_messages,
)
from convostore.sessions import base_session_id, cut, unique_session_id

_C = cast(Table, ConversationModel.__table__)
_S = cast(Table, ChatSessionModel.__table__)

_AFFECTED = (
    select(_S.c.id, _S.c.session_id, _S.c.started_at, _S.c.is_active)
    .where(
        _S.c.bot_name == bindparam("bot"),
        _S.c.channel_id == bindparam("channel"),
        _S.c.last_activity >= bindparam("low"),
        _S.c.started_at <= bindparam("high"),
    )
    .order_by(_S.c.started_at, _S.c.id)
)
_SESSION_IDS = select(_S.c.session_id).where(
    _S.c.bot_name == bindparam("bot"), _S.c.channel_id == bindparam("channel")
)
_MESSAGES_OF = select(_C.c.id, _C.c.timestamp, _C.c.session_id).where(
    _C.c.bot_name == bindparam("bot"),
    _C.c.channel_id == bindparam("channel"),
    _C.c.session_id.in_(bindparam("sids", expanding=True)),
)
_DEACTIVATE = (
    update(_S).where(_S.c.id.in_(bindparam("row_ids", expanding=True))).values(is_active=False)
)
_RESET_SESSION = (
    update(_S)
    .where(_S.c.id == bindparam("row_id"))
    .values(
        started_at=bindparam("start"),
        last_activity=bindparam("last"),
        message_count=bindparam("count"),
        is_active=bindparam("active"),
    )
)
_INSERT_SESSION = insert(_S)
_MOVE_MESSAGE = (
    update(_C).where(_C.c.id == bindparam("row_id")).values(session_id=bindparam("new_session"))
)
_DELETE_SESSIONS = delete(_S).where(_S.c.id.in_(bindparam("row_ids", expanding=True)))


_JSON_FIELDS = ("metadata", "attachments")


# Rows per INSERT statement on SQLite. An executemany runs the statement once per row; a multi-row
# VALUES of a few hundred rows or more cost about a quarter less CPU per row (measured on this
# schema: 1.8-2.1 s against 1.4 s per 100,000 rows). A batch's rest goes in statements of a power
# of two rows (:func:`convostore.bulk_insert.statement_rows`), so few lengths are ever prepared.
_ROWS_PER_STATEMENT = 1000
_SQLITE_HEAD = f"INSERT INTO conversations ({INSERT_COLUMNS})"


def _insert_pysqlite(
    connection: Connection,
    bot_name: str,
    rows: Sequence[NewMessage],
    session_ids: Sequence[str],
    order: Sequence[int],
) -> dict[str, int]:
    """Insert on the synchronous SQLite driver, many rows per statement; message id -> row id.

    Core's per-row parameter processing cost more than SQLite's own work for a backfill; this
    is the history read's shortcut in the other direction, in the unit of work's transaction.
    """
    driver_connection = cast(sqlite3.Connection, connection.connection.driver_connection)
    width = INSERT_WIDTH
    limit = driver_connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    per_statement = max(1, min(_ROWS_PER_STATEMENT, limit // width))
    ids: dict[str, int] = {}
    for start, count in statement_rows(len(order), per_statement):
        chunk = order[start : start + count]
        sql = values_insert(_SQLITE_HEAD, width, count, "RETURNING message_id, id")
        parameters = sqlite_values(rows, session_ids, chunk, bot_name)
        try:
            ids.update(driver_connection.execute(sql, parameters).fetchall())
        except sqlite3.Error as exc:
            # Wrapped as Core wraps it, so the store translates (and retries) it as any other error.
            raise DBAPIError.instance(sql, parameters[:width], exc, sqlite3.Error) from exc
    return ids


# PostgreSQL: one statement per batch, each column one array; the ids come back from RETURNING.
_PG_INSERT = unnest_insert(
    _C, NEW_MESSAGE_FIELDS, scalars=("bot_name",), suffix="RETURNING message_id, id"
)


def _insert_postgresql(
    connection: Connection,
    bot_name: str,
    rows: Sequence[NewMessage],
    session_ids: Sequence[str],
    order: Sequence[int],
) -> dict[str, int]:
    ordered = [rows[index] for index in order]
    params: dict[str, Any] = {
        field: list(map(attrgetter(field), ordered)) for field in NEW_MESSAGE_FIELDS
    }
    params["session_id"] = [session_ids[index] for index in order]
    for field in _JSON_FIELDS:
        params[field] = list(map(json_text, params[field]))
    params["bot_name"] = bot_name
    return {message_id: row_id for message_id, row_id in connection.execute(_PG_INSERT, params)}


class StoredBatch(NamedTuple):
    records: list[StoredMessage]
    """The batch's records, in the order of its rows."""
    sessions_created: int
    """Session rows the batch inserted (it may also have reset, moved into and deleted others)."""


# After a bulk load PostgreSQL needs fresh statistics of `sessions`. The foreign-key check of each
# inserted message looks up its session by (bot, channel, session id), a plan made from those
# statistics: without any (a table never analyzed, as in a new database until autovacuum's next
# round, a minute or more later) the planner ties idx_sessions_bot_channel with the unique index
# and takes the former, which reads every session of the channel for every message. A backfill
# that cuts its channel into hundreds of sessions then spent most of its time in those checks
# (measured: 13.4-14.1 s for 100,000 messages, 8.5-8.9 s with statistics). The store analyzes
# `sessions` after a batch once the sessions it created since reach autovacuum's default
# threshold (50 rows plus 10 % of the table), without waiting for autovacuum.
ANALYZE_THRESHOLD = 50
ANALYZE_SCALE_FACTOR = 0.1
ANALYZE_SESSIONS = "ANALYZE sessions"
_RELTUPLES = text("SELECT reltuples FROM pg_class WHERE oid = to_regclass('sessions')")


def sessions_analyze_due(connection: Connection, created_since: int) -> bool:
    """PostgreSQL: whether ``created_since`` new sessions call for :data:`ANALYZE_SESSIONS`."""
    if created_since < ANALYZE_THRESHOLD:
        return False
    estimated = connection.execute(_RELTUPLES).scalar() or 0.0
    # -1: never analyzed.
    return created_since >= ANALYZE_THRESHOLD + ANALYZE_SCALE_FACTOR * max(estimated, 0.0)


def store_batch(
    connection: Connection,
    bot_name: str,
    channel_id: str,
    rows: Sequence[NewMessage],
    *,
    gap: int,
    timeout: int,
) -> StoredBatch:
    """Insert ``rows`` (their ``session_id`` is set here), all message ids new to this bot."""
    if not rows:
        return StoredBatch([], 0)
    params = {"bot": bot_name, "channel": channel_id}
    times = [row.timestamp for row in rows]
    low = min(times) - timedelta(seconds=gap)
    high = max(times) + timedelta(seconds=gap)
    query = _AFFECTED
    if connection.dialect.name == "postgresql":
        # Live writers wait on these rows until the recut commits (SQLite: BEGIN IMMEDIATE).
        query = query.with_for_update()
    affected = connection.execute(query, {**params, "low": low, "high": high}).all()
    # Every message of the recut in time order: (time, 0, row id, session) for an existing one,
    # (time, 1, index in the batch, None) for a new one, so that at the same instant existing
    # messages come first and new ones keep the batch's order.
    items: list[tuple[datetime, int, int, str | None]] = [
        (at, 1, index, None) for index, at in enumerate(times)
    ]
    if affected:
        existing = connection.execute(
            _MESSAGES_OF, {**params, "sids": [row.session_id for row in affected]}
        ).all()
        items.extend((at, 0, row_id, sid) for row_id, at, sid in existing)
    items.sort()
    starts = cut([item[0] for item in items], gap=gap, timeout=timeout)

    was_open = any(row.is_active for row in affected)
    if was_open:
        connection.execute(_DEACTIVATE, {"row_ids": [row.id for row in affected]})
    reusable = {row.started_at: row for row in affected}
    taken = set(connection.execute(_SESSION_IDS, params).scalars())
    kept: set[int] = set()
    session_of_new: list[str] = [""] * len(rows)
    moves: list[dict[str, Any]] = []
    new_sessions: list[dict[str, Any]] = []
    bounds = [*starts, len(items)]
    for number, (first, end) in enumerate(itertools.pairwise(bounds)):
        start, last = items[first][0], items[end - 1][0]
        active = was_open and number == len(starts) - 1
        reuse = reusable.pop(start, None)
        if reuse is not None:
            session_id = reuse.session_id
            kept.add(reuse.id)
            connection.execute(
                _RESET_SESSION,
                {
                    "row_id": reuse.id,
                    "start": start,
                    "last": last,
                    "count": end - first,
                    "active": active,
                },
            )
        else:
            session_id = unique_session_id(base_session_id(start, timeout), taken)
            taken.add(session_id)
            new_sessions.append(
                {
                    "bot_name": bot_name,
                    "channel_id": channel_id,
                    "session_id": session_id,
                    "started_at": start,
                    "last_activity": last,
                    "message_count": end - first,
                    "is_active": active,
                }
            )
        for _, new, key, sid in items[first:end]:
            if new:
                session_of_new[key] = session_id
            elif sid != session_id:
                moves.append({"row_id": key, "new_session": session_id})
    if new_sessions:
        connection.execute(_INSERT_SESSION, new_sessions)
    if moves:
        connection.execute(_MOVE_MESSAGE, moves)
    # Inserted in time order: the indexes on time are then appended to, and a channel's rows lie
    # in the table in the order they are read.
    order = [key for _, new, key, _ in items if new]
    insert = _insert_pysqlite if connection.dialect.driver == "pysqlite" else _insert_postgresql
    ids = insert(connection, bot_name, rows, session_of_new, order)
    gone = [row.id for row in affected if row.id not in kept]
    if gone:
        connection.execute(_DELETE_SESSIONS, {"row_ids": gone})
    records = stored_messages(rows, session_of_new, [ids[row.message_id] for row in rows], bot_name)
    return StoredBatch(records, len(new_sessions))
