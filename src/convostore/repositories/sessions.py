"""Reads and writes of the ``sessions`` table for one bot."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, bindparam, case, insert, or_, select, text, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection
from sqlalchemy.sql import Executable

from convostore.models import UTCDateTime
from convostore.records import ChatSession
from convostore.repositories import driver
from convostore.repositories.rows import (
    MESSAGES,
    NEW_MESSAGE_FIELDS,
    SESSION_COLUMNS,
    SESSIONS,
    NewMessage,
    session_from_row,
)

_T = SESSIONS
# The bare column, exactly the predicate of the partial index uq_sessions_one_active: SQLite uses
# that index only for this spelling (``is_active IS 1`` or ``= 1`` picks idx_sessions_active, which
# holds every open session of every bot and channel).
_OPEN = text("sessions.is_active")
_AT = bindparam("at", type_=UTCDateTime)
_BOT = _T.c.bot_name == bindparam("bot")
_CHANNEL = _T.c.channel_id == bindparam("channel")

# A message counted in a session widens it to include the message (``sessions.extended``).
_WIDEN = {
    "message_count": _T.c.message_count + 1,
    "started_at": case((_T.c.started_at > _AT, _AT), else_=_T.c.started_at),
    "last_activity": case((_T.c.last_activity < _AT, _AT), else_=_T.c.last_activity),
}
# The common case of a write: the channel's open session takes the message. One statement finds
# the session, checks that the message fits it (the rule of ``convostore.sessions.fits_session``,
# spelled as bounds on the two columns, valid because a session never spans more than its
# timeout) and counts the message; no row comes back when a new session has to start.
_EXTEND_OPEN = (
    update(_T)
    .where(
        _BOT,
        _CHANNEL,
        _OPEN,
        _T.c.started_at <= bindparam("not_after_start", type_=UTCDateTime),
        _T.c.started_at >= bindparam("not_before_start", type_=UTCDateTime),
        _T.c.last_activity >= bindparam("not_before_last", type_=UTCDateTime),
        _T.c.last_activity <= bindparam("not_after_last", type_=UTCDateTime),
    )
    .values(_WIDEN)
    .returning(_T.c.session_id)
)
_OPEN_SESSION = select(_T.c.id, *SESSION_COLUMNS).where(_BOT, _CHANNEL, _OPEN)


def open_session_statement() -> Select[Any]:
    """The open session of ``:bot``/``:channel``: its row id, then a row of ``SESSION_COLUMNS``.

    The partial unique index uq_sessions_one_active serves it.
    """
    return _OPEN_SESSION


# A new session's id: the ids of the channel equal to ``:base`` or like ``:pattern`` (``base-N``).
_IDS_LIKE = select(_T.c.session_id).where(
    _BOT,
    _CHANNEL,
    or_(
        _T.c.session_id == bindparam("base"),
        _T.c.session_id.like(bindparam("pattern"), escape="/"),
    ),
)
_COUNT_MESSAGE = update(_T).where(_T.c.id == bindparam("row_id")).values(_WIDEN)
_CLOSE = update(_T).where(_T.c.id == bindparam("row_id")).values(is_active=False)
_START = insert(_T).values(
    bot_name=bindparam("bot"),
    channel_id=bindparam("channel"),
    session_id=bindparam("sid"),
    started_at=_AT,
    last_activity=_AT,
    message_count=1,
    is_active=True,
)
_LIST = (
    select(*SESSION_COLUMNS).where(_BOT, _CHANNEL).order_by(_T.c.started_at.desc(), _T.c.id.desc())
)


_FIT_KEYS = ("at", "not_after_start", "not_before_start", "not_before_last", "not_after_last")


def _fit_values(at: datetime, *, gap: int, max_span: int) -> tuple[datetime, ...]:
    """The values of ``_EXTEND_OPEN``'s rule for a message at ``at``, in the order of _FIT_KEYS."""
    gap_delta = timedelta(seconds=gap)
    span_delta = timedelta(seconds=max_span)
    # started_at in [at - max_span, at + gap], last_activity in [at - gap, at + max_span]: with
    # last - start <= max_span already, exactly "within the gap on either side, and the widened
    # span fits the timeout".
    return (at, at + gap_delta, at - span_delta, at - gap_delta, at + span_delta)


def _fit_bounds(at: datetime, *, gap: int, max_span: int) -> dict[str, datetime]:
    """The parameters of ``_EXTEND_OPEN``'s rule for a message at ``at``."""
    return dict(zip(_FIT_KEYS, _fit_values(at, gap=gap, max_span=max_span), strict=True))


_EXTEND_OPEN_PYSQLITE = driver.Prepared(_EXTEND_OPEN, ("bot", "channel", *_FIT_KEYS))


def _append_to_open() -> Select[Any]:
    """PostgreSQL: the common message write as one statement (one round trip in autocommit).

    Lock the channel's open session if the message fits it (``_EXTEND_OPEN``'s own rule), insert
    the message into it (``ON CONFLICT (bot_name, message_id) DO NOTHING``), and count it in the
    session only if it was inserted. One row ``(id, session_id)`` comes back when all of that
    happened; none when the session does not take the message or the id is already stored, and
    then nothing was changed (the caller runs the full unit of work).
    """
    messages = MESSAGES
    fields = [f for f in NEW_MESSAGE_FIELDS if f != "session_id"]
    open_session = (
        select(_T.c.session_id)
        .where(_EXTEND_OPEN.whereclause)  # type: ignore[arg-type]
        .with_for_update()
        .cte("open_session")
    )
    # The message's parameters are prefixed: named as the columns, Core would also SET them in
    # the sessions UPDATE (a statement's parameters named after its table's columns are values).
    source = select(
        bindparam("m_bot_name", type_=messages.c.bot_name.type),
        *(bindparam(f"m_{f}", type_=messages.c[f].type) for f in fields),
        open_session.c.session_id,
    )
    inserted = (
        postgresql.insert(messages)
        .from_select(["bot_name", *fields, "session_id"], source)
        .on_conflict_do_nothing(index_elements=["bot_name", "message_id"])
        .returning(messages.c.id, messages.c.session_id)
        .cte("inserted")
    )
    counted = (
        update(_T)
        .where(_BOT, _CHANNEL, _T.c.session_id == inserted.c.session_id)
        .values(_WIDEN)
        .cte("counted")
    )
    return select(inserted.c.id, inserted.c.session_id).add_cte(counted)


APPEND_TO_OPEN = _append_to_open()


def append_to_open_params(
    bot_name: str, message: NewMessage, *, gap: int, max_span: int
) -> dict[str, Any]:
    """The parameters of :data:`APPEND_TO_OPEN` for ``message`` of ``bot_name``.

    The store runs that statement straight on asyncpg (:mod:`convostore.repositories.pg_driver`);
    its one row is ``(row id, session_id)``, and no row means nothing was changed.
    """
    params: dict[str, Any] = {f"m_{k}": v for k, v in message.params(bot_name).items()}
    params.update(
        bot=bot_name,
        channel=message.channel_id,
        **_fit_bounds(message.timestamp, gap=gap, max_span=max_span),
    )
    return params


class SessionRepository:
    def __init__(self, connection: Connection, bot_name: str) -> None:
        self.connection = connection
        self.bot_name = bot_name

    def extend_open(self, channel_id: str, at: datetime, *, gap: int, max_span: int) -> str | None:
        """Count a message at ``at`` in the open session if it fits it; that ``session_id``."""
        if self.connection.dialect.driver == "pysqlite":
            # The write hot path: its parameters by position (see ``driver.Prepared``).
            values = (self.bot_name, channel_id, *_fit_values(at, gap=gap, max_span=max_span))
            row = _EXTEND_OPEN_PYSQLITE.execute(self.connection, values).fetchone()
            return None if row is None else str(row[0])
        params = {
            "bot": self.bot_name,
            "channel": channel_id,
            **_fit_bounds(at, gap=gap, max_span=max_span),
        }
        session_id: str | None = self.connection.execute(_EXTEND_OPEN, params).scalar()
        return session_id

    def open_session(self, channel_id: str) -> tuple[int, ChatSession] | None:
        """(row id, record) of the session of ``channel_id`` that is open in the database."""
        row = self.connection.execute(
            _OPEN_SESSION, {"bot": self.bot_name, "channel": channel_id}
        ).first()
        return None if row is None else (row[0], session_from_row(row[1:]))

    def _execute(self, statement: Executable, params: dict[str, Any]) -> Any:
        # A prebuilt statement: as its compiled SQL on the synchronous SQLite driver (the write
        # path, see ``driver``), through Core elsewhere. The result's rows are plain tuples.
        if self.connection.dialect.driver == "pysqlite":
            return driver.execute(self.connection, statement, params)
        return self.connection.execute(statement, params)

    def count_message(self, row_id: int, at: datetime) -> None:
        """Count one more message, widening the session to ``at``; in SQL, so no update is lost."""
        self._execute(_COUNT_MESSAGE, {"row_id": row_id, "at": at})

    def close(self, row_id: int) -> None:
        self._execute(_CLOSE, {"row_id": row_id})

    def ids_like(self, channel_id: str, base: str) -> set[str]:
        """Session ids of the channel equal to ``base`` or suffixed ``base-N``."""
        escaped = base.replace("/", "//").replace("%", "/%").replace("_", "/_")
        params = {"bot": self.bot_name, "channel": channel_id, "base": base}
        rows = self._execute(_IDS_LIKE, {**params, "pattern": f"{escaped}-%"}).fetchall()
        return {row[0] for row in rows}

    def start(self, channel_id: str, session_id: str, at: datetime) -> None:
        self._execute(
            _START, {"bot": self.bot_name, "channel": channel_id, "sid": session_id, "at": at}
        )

    def list(self, channel_id: str) -> list[ChatSession]:
        """The channel's sessions, newest first."""
        result = self.connection.execute(_LIST, {"bot": self.bot_name, "channel": channel_id})
        return [session_from_row(row) for row in result]

    def close_expired(self, now: datetime, *, gap: int, max_span: int) -> int:
        """Close every open session of this bot past its gap or timeout at ``now``."""
        result = self.connection.execute(
            update(_T)
            .where(
                _T.c.bot_name == self.bot_name,
                _OPEN,
                or_(
                    _T.c.last_activity < now - timedelta(seconds=gap),
                    _T.c.started_at < now - timedelta(seconds=max_span),
                ),
            )
            .values(is_active=False)
        )
        return int(getattr(result, "rowcount", 0) or 0)
