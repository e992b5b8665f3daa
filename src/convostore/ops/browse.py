"""Looking inside a bot's store without SQL: channels, sessions, transcripts, and stats.

Counts and time spans come from the stored messages themselves (not the sessions' counters), so
they are what an export writes. Per-channel figures are read with one grouped scan of the bot's
range of ``idx_conversations_bot_channel_time``, which covers the columns involved.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import cast

from sqlalchemy import Table, false, func, select, text, true
from sqlalchemy.engine import Connection

from convostore.config import BotConfig
from convostore.errors import OperationError
from convostore.models import ChatSessionModel, ConversationModel
from convostore.ops.backup import BackupAge, newest_backup
from convostore.ops.database import newest_channel_names, read_bot_database
from convostore.ops.export import stored_channel
from convostore.records import StoredMessage
from convostore.repositories.rows import MESSAGE_COLUMNS, message_from_row

_S = cast(Table, ChatSessionModel.__table__)
_C = cast(Table, ConversationModel.__table__)


@dataclass(frozen=True)
class ChannelSummary:
    """One channel or DM of a bot, as the browse listing shows it."""

    channel_id: str
    name: str
    type: str
    safe_name: str
    sessions: int
    messages: int
    first_message: datetime | None
    last_message: datetime | None


@dataclass(frozen=True)
class SessionSummary:
    """One session, with the messages really stored in it."""

    session_id: str
    channel_id: str
    started_at: datetime
    last_activity: datetime
    is_active: bool
    messages: int
    first_message: datetime | None
    last_message: datetime | None


@dataclass(frozen=True)
class Transcript:
    channel: ChannelSummary
    session: SessionSummary
    messages: tuple[StoredMessage, ...]


def _channels(connection: Connection, bot: str) -> list[ChannelSummary]:
    messages = {
        row[0]: (int(row[1]), row[2], row[3])
        for row in connection.execute(
            select(
                _C.c.channel_id,
                func.count(),
                func.min(_C.c.timestamp),
                func.max(_C.c.timestamp),
            )
            .where(_C.c.bot_name == bot)
            .group_by(_C.c.channel_id)
        )
    }
    sessions = {
        row[0]: int(row[1])
        for row in connection.execute(
            select(_S.c.channel_id, func.count())
            .where(_S.c.bot_name == bot)
            .group_by(_S.c.channel_id)
        )
    }
    ids = sorted(set(messages) | set(sessions))
    names = newest_channel_names(connection, bot, ids)
    summaries = []
    for channel_id in ids:
        name, kind = names.get(channel_id, ("", "channel"))
        count, first, last = messages.get(channel_id, (0, None, None))
        summaries.append(
            ChannelSummary(
                channel_id,
                name,
                kind,
                stored_channel(channel_id, name, kind).safe_name,
                sessions.get(channel_id, 0),
                count,
                first,
                last,
            )
        )
    summaries.sort(key=lambda c: (c.type != "channel", _natural(c.name), c.channel_id))
    return summaries


def _natural(name: str) -> list[tuple[int, str]]:
    """Sort key that puts general-2 before general-10."""
    return [
        (int(part), "") if part.isdigit() else (-1, part)
        for part in re.split(r"(\d+)", name.casefold())
    ]


async def list_channels(config: BotConfig) -> list[ChannelSummary]:
    """The bot's channels, then its DMs, each with sessions, messages and time span."""
    return await read_bot_database(config, lambda c: _channels(c, config.name))


def _match(channels: list[ChannelSummary], wanted: str) -> ChannelSummary:
    for exact in (
        [c for c in channels if wanted in (c.channel_id, c.safe_name)],
        [c for c in channels if c.name == wanted],
        [c for c in channels if c.name.casefold() == wanted.casefold()],
    ):
        if len(exact) == 1:
            return exact[0]
        if len(exact) > 1:
            ids = ", ".join(c.channel_id for c in exact[:5])
            raise OperationError(
                f"channel {wanted!r} matches {len(exact)} channels (ids {ids}); give the id"
            )
    raise OperationError(f"no channel or DM {wanted!r} (give its name, safe name or id)")


def _sessions(connection: Connection, bot: str, channel_id: str) -> list[SessionSummary]:
    counts = {
        row[0]: (int(row[1]), row[2], row[3])
        for row in connection.execute(
            select(
                _C.c.session_id,
                func.count(),
                func.min(_C.c.timestamp),
                func.max(_C.c.timestamp),
            )
            .where(_C.c.bot_name == bot, _C.c.channel_id == channel_id)
            .group_by(_C.c.session_id)
        )
    }
    rows = connection.execute(
        select(_S.c.session_id, _S.c.started_at, _S.c.last_activity, _S.c.is_active)
        .where(_S.c.bot_name == bot, _S.c.channel_id == channel_id)
        .order_by(_S.c.started_at, _S.c.id)
    )
    return [
        SessionSummary(
            row[0], channel_id, row[1], row[2], bool(row[3]), *counts.get(row[0], (0, None, None))
        )
        for row in rows
    ]


async def list_sessions(
    config: BotConfig, channel: str
) -> tuple[ChannelSummary, list[SessionSummary]]:
    """The sessions (oldest first) of the channel or DM named, safe-named or with id ``channel``."""

    def work(connection: Connection) -> tuple[ChannelSummary, list[SessionSummary]]:
        found = _match(_channels(connection, config.name), channel)
        return found, _sessions(connection, config.name, found.channel_id)

    return await read_bot_database(config, work)


async def session_transcript(
    config: BotConfig, session_id: str, channel: str | None = None
) -> Transcript:
    """Every message of one session, oldest first; ``channel`` picks among same-named sessions."""
    bot = config.name

    def work(connection: Connection) -> Transcript:
        channels = _channels(connection, bot)
        owners = [
            row[0]
            for row in connection.execute(
                select(_S.c.channel_id).where(_S.c.bot_name == bot, _S.c.session_id == session_id)
            )
        ]
        if channel is not None:
            chosen = _match(channels, channel)
            if chosen.channel_id not in owners:
                raise OperationError(f"no session {session_id!r} in channel {channel!r}")
        elif not owners:
            raise OperationError(f"no session {session_id!r} for bot {bot}")
        elif len(owners) > 1:
            raise OperationError(
                f"session {session_id!r} exists in {len(owners)} channels; add --channel"
            )
        else:
            chosen = next(c for c in channels if c.channel_id == owners[0])
        session = next(
            s for s in _sessions(connection, bot, chosen.channel_id) if s.session_id == session_id
        )
        rows = connection.execute(
            select(*MESSAGE_COLUMNS)
            .where(
                _C.c.bot_name == bot,
                _C.c.channel_id == chosen.channel_id,
                _C.c.session_id == session_id,
            )
            .order_by(_C.c.timestamp, _C.c.id)
        )
        return Transcript(chosen, session, tuple(message_from_row(row) for row in rows))

    return await read_bot_database(config, work)


# --- stats ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DatabaseSize:
    """Size of the database a bot uses; ``tables`` only on PostgreSQL."""

    url: str
    backend: str
    size_bytes: int
    wal_bytes: int | None
    tables: dict[str, int]


@dataclass(frozen=True)
class BotStats:
    bot_name: str
    messages: int
    channels: int
    dms: int
    sessions_active: int
    sessions_closed: int
    first_activity: datetime | None
    last_activity: datetime | None
    database: DatabaseSize
    backup: BackupAge | None

    @property
    def sessions(self) -> int:
        return self.sessions_active + self.sessions_closed


def _database_size(connection: Connection, config: BotConfig) -> DatabaseSize:
    path = config.sqlite_path
    if path is not None:
        wal = Path(f"{path}-wal")
        return DatabaseSize(
            config.safe_database_url,
            "sqlite",
            path.stat().st_size,
            wal.stat().st_size if wal.exists() else 0,
            {},
        )
    size = connection.execute(text("SELECT pg_database_size(current_database())")).scalar_one()
    tables = {
        name: int(
            connection.execute(
                text("SELECT pg_total_relation_size(CAST(:name AS regclass))"), {"name": name}
            ).scalar_one()
        )
        for name in ("conversations", "sessions")
    }
    return DatabaseSize(config.safe_database_url, "postgresql", int(size), None, tables)


def _stats(connection: Connection, config: BotConfig) -> BotStats:
    bot = config.name
    count, first, last = connection.execute(
        select(func.count(), func.min(_C.c.timestamp), func.max(_C.c.timestamp)).where(
            _C.c.bot_name == bot
        )
    ).one()
    channel_ids = [
        row[0]
        for row in connection.execute(
            select(_C.c.channel_id).where(_C.c.bot_name == bot).group_by(_C.c.channel_id)
        )
    ]
    kinds = [kind for _, kind in newest_channel_names(connection, bot, channel_ids).values()]
    active = connection.execute(
        select(func.count()).where(_S.c.bot_name == bot, _S.c.is_active == true())
    ).scalar_one()
    closed = connection.execute(
        select(func.count()).where(_S.c.bot_name == bot, _S.c.is_active == false())
    ).scalar_one()
    return BotStats(
        bot,
        int(count),
        sum(1 for k in kinds if k != "dm"),
        sum(1 for k in kinds if k == "dm"),
        int(active),
        int(closed),
        first,
        last,
        _database_size(connection, config),
        None,
    )


async def bot_stats(config: BotConfig, now: datetime | None = None) -> BotStats:
    """Messages, channels, DMs, sessions and activity of one bot; database and backup state."""
    stats = await read_bot_database(config, lambda c: _stats(c, config))
    return dataclasses.replace(stats, backup=newest_backup(config, now))


def human_size(size: int | None) -> str:
    """``1.4 MB``-style sizes for tables and messages."""
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"  # pragma: no cover


def human_age(age: timedelta) -> str:
    seconds = max(0, int(age.total_seconds()))
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 86400} days"
