"""The viewer's reads: small, paginated queries on a read-only connection.

Counts and last activity come from the ``sessions`` rows (their counters), which are a few
thousand rows per bot where the messages are a million: a page never scans a bot's messages.
Transcripts and a user's page read one page of messages through an index.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from convostore.ops.database import newest_channel_names
from convostore.records import StoredMessage
from convostore.repositories.rows import MESSAGE_COLUMNS, MESSAGES, SESSIONS, message_from_row

_S = SESSIONS
_C = MESSAGES
_MESSAGE_COLUMNS = MESSAGE_COLUMNS
to_record = message_from_row


@dataclass(frozen=True)
class Page:
    """One page of a listing: ``items`` and whether there are pages before and after it."""

    items: list[Any]
    number: int
    has_next: bool

    @property
    def has_previous(self) -> bool:
        return self.number > 1


@dataclass(frozen=True)
class BotSummary:
    bot: str
    channels: int
    sessions: int
    messages: int
    last_activity: datetime | None


@dataclass(frozen=True)
class ChannelRow:
    channel_id: str
    name: str
    type: str
    sessions: int
    messages: int
    last_activity: datetime | None


@dataclass(frozen=True)
class SessionRow:
    session_id: str
    started_at: datetime
    last_activity: datetime
    messages: int
    is_active: bool


def _page(rows: list[Any], number: int, size: int) -> Page:
    return Page(rows[:size], number, len(rows) > size)


def bot_summary(connection: Connection, bot: str) -> BotSummary:
    row = connection.execute(
        select(
            func.count(func.distinct(_S.c.channel_id)),
            func.count(),
            func.coalesce(func.sum(_S.c.message_count), 0),
            func.max(_S.c.last_activity),
        ).where(_S.c.bot_name == bot)
    ).one()
    return BotSummary(bot, int(row[0]), int(row[1]), int(row[2]), row[3])


def channels(connection: Connection, bot: str, number: int, size: int) -> Page:
    """The bot's channels and DMs, most recently active first."""
    last = func.max(_S.c.last_activity)
    rows = connection.execute(
        select(_S.c.channel_id, func.count(), func.coalesce(func.sum(_S.c.message_count), 0), last)
        .where(_S.c.bot_name == bot)
        .group_by(_S.c.channel_id)
        .order_by(last.desc(), _S.c.channel_id)
        .limit(size + 1)
        .offset((number - 1) * size)
    ).all()
    names = newest_channel_names(connection, bot, [r[0] for r in rows])
    items = [
        ChannelRow(r[0], *names.get(r[0], ("", "channel")), int(r[1]), int(r[2]), r[3])
        for r in rows
    ]
    return _page(items, number, size)


def channel(connection: Connection, bot: str, channel_id: str) -> ChannelRow | None:
    row = connection.execute(
        select(
            func.count(),
            func.coalesce(func.sum(_S.c.message_count), 0),
            func.max(_S.c.last_activity),
        ).where(_S.c.bot_name == bot, _S.c.channel_id == channel_id)
    ).one()
    names = newest_channel_names(connection, bot, [channel_id])
    if not row[0] and channel_id not in names:
        return None
    return ChannelRow(
        channel_id, *names.get(channel_id, ("", "channel")), int(row[0]), int(row[1]), row[2]
    )


def sessions(connection: Connection, bot: str, channel_id: str, number: int, size: int) -> Page:
    """A channel's sessions, newest first."""
    rows = connection.execute(
        select(
            _S.c.session_id, _S.c.started_at, _S.c.last_activity, _S.c.message_count, _S.c.is_active
        )
        .where(_S.c.bot_name == bot, _S.c.channel_id == channel_id)
        .order_by(_S.c.started_at.desc(), _S.c.id.desc())
        .limit(size + 1)
        .offset((number - 1) * size)
    ).all()
    return _page([SessionRow(r[0], r[1], r[2], int(r[3]), bool(r[4])) for r in rows], number, size)


def session(
    connection: Connection, bot: str, channel_id: str, session_id: str
) -> SessionRow | None:
    row = connection.execute(
        select(
            _S.c.session_id, _S.c.started_at, _S.c.last_activity, _S.c.message_count, _S.c.is_active
        ).where(_S.c.bot_name == bot, _S.c.channel_id == channel_id, _S.c.session_id == session_id)
    ).first()
    return None if row is None else SessionRow(row[0], row[1], row[2], int(row[3]), bool(row[4]))


def transcript(
    connection: Connection, bot: str, channel_id: str, session_id: str, number: int, size: int
) -> Page:
    """One page of a session's messages, oldest first."""
    rows = connection.execute(
        select(*_MESSAGE_COLUMNS)
        .where(_C.c.bot_name == bot, _C.c.channel_id == channel_id, _C.c.session_id == session_id)
        .order_by(_C.c.timestamp, _C.c.id)
        .limit(size + 1)
        .offset((number - 1) * size)
    ).all()
    return _page([to_record(r) for r in rows], number, size)


def user_messages(connection: Connection, bot: str, user_id: str, number: int, size: int) -> Page:
    """One page of a user's messages across the bot's channels, newest first."""
    rows = connection.execute(
        select(*_MESSAGE_COLUMNS)
        .where(_C.c.bot_name == bot, _C.c.user_id == user_id)
        .order_by(_C.c.timestamp.desc(), _C.c.id.desc())
        .limit(size + 1)
        .offset((number - 1) * size)
    ).all()
    return _page([to_record(r) for r in rows], number, size)


def channel_names(connection: Connection, bot: str, ids: list[str]) -> dict[str, str]:
    return {k: v[0] for k, v in newest_channel_names(connection, bot, sorted(set(ids))).items()}


def find_message(connection: Connection, bot: str, message_id: str) -> StoredMessage | None:
    row = connection.execute(
        select(*_MESSAGE_COLUMNS).where(_C.c.bot_name == bot, _C.c.message_id == message_id)
    ).first()
    return None if row is None else to_record(row)


def position(connection: Connection, message: StoredMessage) -> int:
    """How many messages of its session come before ``message`` (to find its transcript page)."""
    return int(
        connection.execute(
            select(func.count()).where(
                _C.c.bot_name == message.bot_name,
                _C.c.channel_id == message.channel_id,
                _C.c.session_id == message.session_id,
                (_C.c.timestamp < message.timestamp)
                | ((_C.c.timestamp == message.timestamp) & (_C.c.id < message.id)),
            )
        ).scalar_one()
    )
