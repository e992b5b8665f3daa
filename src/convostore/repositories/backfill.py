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
import json
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from operator import attrgetter
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from convostore.models import ChatSessionModel, ConversationModel
from convostore.records import StoredMessage
from convostore.repositories.rows import NEW_MESSAGE_FIELDS, NewMessage, message_from_row
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
_INSERT_MESSAGES = insert(_C)
_NEW_IDS = select(_C.c.message_id, _C.c.id).where(
    _C.c.bot_name == bindparam("bot"), _C.c.message_id.in_(bindparam("ids", expanding=True))
)
_DELETE_SESSIONS = delete(_S).where(_S.c.id.in_(bindparam("row_ids", expanding=True)))


# The row values of a NewMessage, in NEW_MESSAGE_FIELDS order (the columns but id and bot_name).
_values = cast(Callable[[NewMessage], tuple[Any, ...]], attrgetter(*NEW_MESSAGE_FIELDS))
_SESSION = NEW_MESSAGE_FIELDS.index("session_id")
_DRIVER_INSERT = (
    f"INSERT INTO conversations (bot_name, {', '.join(NEW_MESSAGE_FIELDS)})"
    f" VALUES ({', '.join('?' * (len(NEW_MESSAGE_FIELDS) + 1))})"
)
# How the column types store a value on SQLite, per field that is not stored as it comes:
# UTCDateTime as naive UTC text with microseconds, JSON as its text (None as 'null'), booleans
# as 0/1.
_TIMES = [NEW_MESSAGE_FIELDS.index(f) for f in ("timestamp", "edited_at")]
_JSONS = [NEW_MESSAGE_FIELDS.index(f) for f in ("metadata", "attachments")]
_BOOLS = [NEW_MESSAGE_FIELDS.index("author_is_bot")]


def _driver_row(values: tuple[Any, ...], bot_name: str) -> tuple[Any, ...]:
    row = [bot_name, *values]
    for index in _TIMES:
        at = values[index]
        if at is not None:
            row[index + 1] = at.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
    for index in _JSONS:
        value = values[index]
        row[index + 1] = "null" if value is None else "[]" if value == [] else json.dumps(value)
    for index in _BOOLS:
        row[index + 1] = int(values[index])
    return tuple(row)


def _insert_pysqlite(connection: Connection, rows: list[tuple[Any, ...]]) -> None:
    """The insert on the synchronous SQLite driver, values converted as the column types would.

    Core's per-row parameter processing cost more than SQLite's own work for a backfill; this
    is the history read's shortcut in the other direction, in the unit of work's transaction.
    """
    driver_connection = connection.connection.driver_connection
    try:
        driver_connection.executemany(_DRIVER_INSERT, rows)  # type: ignore[union-attr]
    except sqlite3.Error as exc:
        # The wrapping Core applies, so the store translates (and retries) it as any other error.
        raise DBAPIError.instance(_DRIVER_INSERT, rows[:1], exc, sqlite3.Error) from exc


@dataclass(slots=True)
class _Item:
    at: datetime
    order: int
    row_id: int | None  # an existing message's row, None for a new one
    session_id: str | None  # an existing message's session
    new_index: int | None  # index in the batch of a new message


def store_batch(
    connection: Connection,
    bot_name: str,
    channel_id: str,
    rows: Sequence[NewMessage],
    *,
    gap: int,
    timeout: int,
) -> list[StoredMessage]:
    """Insert ``rows`` (their ``session_id`` is set here), all message ids new to this bot.

    Returns their records, in the order of ``rows``.
    """
    if not rows:
        return []
    params = {"bot": bot_name, "channel": channel_id}
    times = [row.timestamp for row in rows]
    low = min(times) - timedelta(seconds=gap)
    high = max(times) + timedelta(seconds=gap)
    query = _AFFECTED
    if connection.dialect.name == "postgresql":
        # Live writers wait on these rows until the recut commits (SQLite: BEGIN IMMEDIATE).
        query = query.with_for_update()
    affected = connection.execute(query, {**params, "low": low, "high": high}).all()
    items = [
        _Item(at, 1_000_000_000 + i, None, None, i) for i, at in enumerate(times)
    ]  # new ones sort after existing ones of the same instant
    if affected:
        existing = connection.execute(
            _MESSAGES_OF, {**params, "sids": [row.session_id for row in affected]}
        ).all()
        items.extend(_Item(at, row_id, row_id, sid, None) for row_id, at, sid in existing)
    items.sort(key=lambda item: (item.at, item.order))
    starts = cut([item.at for item in items], gap=gap, timeout=timeout)

    was_open = any(row.is_active for row in affected)
    if was_open:
        connection.execute(_DEACTIVATE, {"row_ids": [row.id for row in affected]})
    reusable = {row.started_at: row for row in affected}
    taken = set(connection.execute(_SESSION_IDS, params).scalars())
    kept: set[int] = set()
    session_of_new: list[str] = [""] * len(rows)
    moves: list[dict[str, Any]] = []
    bounds = [*starts, len(items)]
    for number, (first, end) in enumerate(itertools.pairwise(bounds)):
        group = items[first:end]
        start, last = group[0].at, group[-1].at
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
                    "count": len(group),
                    "active": active,
                },
            )
        else:
            session_id = unique_session_id(base_session_id(start, timeout), taken)
            taken.add(session_id)
            connection.execute(
                _INSERT_SESSION,
                {
                    "bot_name": bot_name,
                    "channel_id": channel_id,
                    "session_id": session_id,
                    "started_at": start,
                    "last_activity": last,
                    "message_count": len(group),
                    "is_active": active,
                },
            )
        for item in group:
            if item.new_index is not None:
                session_of_new[item.new_index] = session_id
            elif item.session_id != session_id:
                moves.append({"row_id": item.row_id, "new_session": session_id})
    if moves:
        connection.execute(_MOVE_MESSAGE, moves)
    values = []
    for row, session_id in zip(rows, session_of_new, strict=True):
        placed = list(_values(row))
        placed[_SESSION] = session_id
        values.append(tuple(placed))
    # A plain executemany: RETURNING would make SQLAlchemy insert row by row on SQLite to keep
    # the ids in parameter order. The ids are read back by message id (unique per bot) instead.
    if connection.dialect.driver == "pysqlite":
        _insert_pysqlite(connection, [_driver_row(v, bot_name) for v in values])
    else:
        connection.execute(
            _INSERT_MESSAGES,
            [
                {"bot_name": bot_name, **dict(zip(NEW_MESSAGE_FIELDS, v, strict=True))}
                for v in values
            ],
        )
    ids: dict[str, int] = {}
    new_ids = [row.message_id for row in rows]
    for offset in range(0, len(new_ids), 500):
        result = connection.execute(
            _NEW_IDS, {"bot": bot_name, "ids": new_ids[offset : offset + 500]}
        )
        ids.update((message_id, row_id) for message_id, row_id in result)
    gone = [row.id for row in affected if row.id not in kept]
    if gone:
        connection.execute(_DELETE_SESSIONS, {"row_ids": gone})
    return [
        message_from_row((ids[row.message_id], bot_name, *value))
        for row, value in zip(rows, values, strict=True)
    ]
