"""Phase 2 of the import: staged rows cut into sessions (rule 10) and written in batches.

Per bot and channel, the staged rows come back in time order, so the first copy of a message id is
the earliest one and later copies are dropped (rule 7). A channel is always written with its
sessions complete.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from itertools import groupby
from operator import itemgetter
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from convostore.config import BotConfig
from convostore.legacy.report import ImportProgress, ImportReport
from convostore.legacy.rules import CHANNEL_TYPE, SOURCE
from convostore.legacy.stage import Stage, StagedRow
from convostore.records import MESSAGE_FIELDS
from convostore.repositories.rows import MESSAGES, SESSIONS
from convostore.sessions import base_session_id, fits_session, unique_session_id

_BATCH = 5000
_conversations: Table = MESSAGES
_sessions: Table = SESSIONS


# The legacy files know none of the Discord columns of revision 0003 (parent_id ... author_is_bot):
# imported rows take their defaults.
_MESSAGE_COLUMNS = (*MESSAGE_FIELDS[1 : MESSAGE_FIELDS.index("metadata") + 1], "source")
_SESSION_COLUMNS = (
    "bot_name",
    "channel_id",
    "session_id",
    "started_at",
    "last_activity",
    "message_count",
    "is_active",
    "source",
)


def _raw_insert(table: str, columns: Sequence[str]) -> str:
    marks = ", ".join("?" * len(columns))
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks}) ON CONFLICT DO NOTHING"


class _Session:
    __slots__ = ("count", "first", "last", "last_activity", "session_id", "started_at")

    def __init__(self, session_id: str, at: datetime, stamp: Any) -> None:
        self.session_id = session_id
        self.started_at = self.last_activity = at
        self.first = self.last = stamp
        self.count = 0


class Writer:
    """Cuts one database's staged rows into sessions and writes them in batches.

    On SQLite the rows go to the driver as tuples, with timestamps and JSON already in the text
    form SQLAlchemy's types store there (the staging file holds them so): converting a million
    values to Python objects and back was the largest cost of the import. PostgreSQL gets typed
    values through Core.
    """

    def __init__(
        self,
        connection: Connection,
        stage: Stage,
        report: ImportReport,
        *,
        dry_run: bool,
        commit_every: int | None,
        progress: ImportProgress | None,
    ) -> None:
        self.connection = connection
        self.stage = stage
        self.report = report
        self.dry_run = dry_run
        self.commit_every = commit_every
        self.progress = progress
        self.pending = 0
        self.messages: list[tuple[Any, ...]] = []
        self.sessions: list[tuple[Any, ...]] = []
        self.sqlite = connection.dialect.name == "sqlite"
        insert = sqlite_insert if self.sqlite else pg_insert
        self.insert_messages = insert(_conversations).on_conflict_do_nothing()
        self.insert_sessions = insert(_sessions).on_conflict_do_nothing()

    def _exists(self, table: Table, bot: str) -> bool:
        found = self.connection.execute(
            select(table.c.id).where(table.c.bot_name == bot).limit(1)
        ).first()
        return found is not None

    def _column(self, column: Any, bot: str, channel_id: str) -> set[str]:
        table = column.table
        return set(
            self.connection.execute(
                select(column).where(table.c.bot_name == bot, table.c.channel_id == channel_id)
            ).scalars()
        )

    def write_bot(self, bot: str, config: BotConfig) -> None:
        """Write the bot's staged rows, one channel at a time."""
        self.report.bot(bot)
        has_rows = self._exists(_conversations, bot)
        has_sessions = has_rows or self._exists(_sessions, bot)
        done = 0
        for channel_id, group in _by_channel(self.stage.rows(bot)):
            present = (
                self._column(_conversations.c.message_id, bot, channel_id) if has_rows else set()
            )
            taken = self._column(_sessions.c.session_id, bot, channel_id) if has_sessions else set()
            done = self._write_channel(bot, config, channel_id, group, present, taken, done)
            self.flush()
            if self.commit_every is not None and self.pending >= self.commit_every:
                self._commit()
        if self.progress:
            self.progress.advance("writing messages", done % 1000)

    def _write_channel(
        self,
        bot: str,
        config: BotConfig,
        channel_id: str,
        group: Iterator[StagedRow],
        present: set[str],
        taken: set[str],
        done: int,
    ) -> int:
        """Cut one channel's rows (in time order) into sessions; the rows read so far."""
        records = self.report.bot(bot).records
        gap, timeout = config.storage.session_gap, config.storage.session_timeout
        progress = self.progress
        sqlite = self.sqlite
        channel_name = self.stage.channel_name(channel_id)
        username = self.stage.username
        current: _Session | None = None
        open_messages: list[tuple[Any, ...]] = []
        seen: set[str] = set()
        for user_id, message_id, role, content, ts, metadata in group:
            done += 1
            if progress and done % 1000 == 0:
                progress.advance("writing messages", 1000)
            if message_id in seen:
                records["duplicate"] += 1
                continue
            seen.add(message_id)
            if message_id in present:
                records["already_present"] += 1
                continue
            # Naive UTC for the session arithmetic: the staged times are all UTC.
            at = datetime.fromisoformat(ts)
            stamp: Any = ts.replace("T", " ") if sqlite else at.replace(tzinfo=UTC)
            if current is None or not fits_session(
                current.started_at, current.last_activity, at, gap=gap, timeout=timeout
            ):
                if current is not None:
                    self._close(bot, channel_id, current, open_messages)
                    open_messages = []
                start = at.replace(tzinfo=UTC)
                session_id = unique_session_id(base_session_id(start, timeout), taken)
                taken.add(session_id)
                current = _Session(session_id, at, stamp)
            current.last_activity = at
            current.last = stamp
            current.count += 1
            if not sqlite and metadata is not None:
                metadata = json.loads(metadata)
            open_messages.append(
                (
                    bot,
                    channel_id,
                    channel_name,
                    CHANNEL_TYPE,
                    user_id,
                    username(user_id),
                    current.session_id,
                    message_id,
                    role,
                    content,
                    stamp,
                    metadata,
                    SOURCE,
                )
            )
            records["imported"] += 1
        if current is not None:
            self._close(bot, channel_id, current, open_messages)
        return done

    def _close(
        self, bot: str, channel_id: str, session: _Session, messages: list[tuple[Any, ...]]
    ) -> None:
        self.sessions.append(
            (
                bot,
                channel_id,
                session.session_id,
                session.first,
                session.last,
                session.count,
                0 if self.sqlite else False,
                SOURCE,
            )
        )
        self.messages.extend(messages)
        self.report.bot(bot).sessions += 1
        if len(self.messages) >= _BATCH:
            self.flush()

    def flush(self) -> None:
        if not self.dry_run:
            if self.sqlite:
                if self.sessions:
                    self.connection.exec_driver_sql(
                        _raw_insert("sessions", _SESSION_COLUMNS), self.sessions
                    )
                if self.messages:
                    self.connection.exec_driver_sql(
                        _raw_insert("conversations", _MESSAGE_COLUMNS), self.messages
                    )
            else:
                if self.sessions:
                    self.connection.execute(
                        self.insert_sessions,
                        [dict(zip(_SESSION_COLUMNS, s, strict=True)) for s in self.sessions],
                    )
                if self.messages:
                    self.connection.execute(
                        self.insert_messages,
                        [dict(zip(_MESSAGE_COLUMNS, m, strict=True)) for m in self.messages],
                    )
        self.pending += len(self.messages)
        self.sessions = []
        self.messages = []

    def _commit(self) -> None:
        if not self.dry_run:
            self.connection.commit()
        self.pending = 0

    def finish(self) -> None:
        self.flush()
        if self.commit_every is not None:
            self._commit()


def _by_channel(
    rows: Iterable[tuple[str, str, str, str, str, str, str | None]],
) -> Iterator[tuple[str, Iterator[StagedRow]]]:
    for channel_id, group in groupby(rows, key=itemgetter(0)):
        yield channel_id, (row[1:] for row in group)
