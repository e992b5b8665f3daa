"""Phase 2 of the import: staged rows cut into sessions (rule 10) and written in batches.

Per bot and channel, the staged rows come back in time order, so the first copy of a message id is
the earliest one and later copies are dropped (rule 7). A channel is always written with its
sessions complete.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from itertools import groupby, islice
from operator import itemgetter
from typing import Any

from sqlalchemy import JSON, Boolean, Integer, Text, bindparam, select
from sqlalchemy import column as sa_column
from sqlalchemy import table as sa_table
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.sql.expression import TableClause

from convostore.bulk_insert import unnest_insert
from convostore.config import BotConfig
from convostore.legacy.batches import Behind, insert_rows
from convostore.legacy.report import ImportProgress, ImportReport
from convostore.legacy.rules import CHANNEL_TYPE, SOURCE
from convostore.legacy.stage import Stage, StagedRow
from convostore.models import UTCDateTime
from convostore.sessions import base_session_id, fits_session, unique_session_id

_BATCH = 5000
# Message ids looked up in the database per statement (rule 7 against rows already stored).
_LOOKUP = 500
# The import writes exactly the columns of schema revision 0002, frozen here rather than taken
# from today's models or records: the data revision 0002 runs this code, and must mean the same
# thing when later revisions add columns (imported rows then take those columns' defaults).
_conversations = sa_table(
    "conversations",
    sa_column("id", Integer),
    sa_column("bot_name", Text),
    sa_column("channel_id", Text),
    sa_column("channel_name", Text),
    sa_column("channel_type", Text),
    sa_column("user_id", Text),
    sa_column("username", Text),
    sa_column("session_id", Text),
    sa_column("message_id", Text),
    sa_column("role", Text),
    sa_column("content", Text),
    sa_column("timestamp", UTCDateTime()),
    sa_column("metadata", JSON()),
    sa_column("source", Text),
)
_sessions = sa_table(
    "sessions",
    sa_column("id", Integer),
    sa_column("bot_name", Text),
    sa_column("channel_id", Text),
    sa_column("session_id", Text),
    sa_column("started_at", UTCDateTime()),
    sa_column("last_activity", UTCDateTime()),
    sa_column("message_count", Integer),
    sa_column("is_active", Boolean),
    sa_column("source", Text),
)
LEDGER = sa_table(
    "legacy_imports",
    sa_column("bot_name", Text),
    sa_column("finished_at", UTCDateTime()),
    sa_column("data_dir", Text),
    sa_column("messages", Integer),
)
"""The ``legacy_imports`` ledger as revision 0002 created it."""

_MESSAGE_COLUMNS = (
    "bot_name",
    "channel_id",
    "channel_name",
    "channel_type",
    "user_id",
    "username",
    "session_id",
    "message_id",
    "role",
    "content",
    "timestamp",
    "metadata",
    "source",
)
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


# PostgreSQL: a flush's messages in one statement, one array per column (Core's executemany ran
# the INSERT once per row: 13.4 s of server time per 100,000 rows against 8.4 s). Metadata goes as
# the staged JSON text, the text Core's JSON type would send for it, and a record without metadata
# as JSON null, as Core sends None.
_JSON_NULL = "null"
_PG_INSERT_MESSAGES = unnest_insert(
    _conversations, _MESSAGE_COLUMNS, suffix="ON CONFLICT DO NOTHING"
)


def _insert_head(table: str, columns: Sequence[str]) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)})"


_SQLITE_SESSIONS = _insert_head("sessions", _SESSION_COLUMNS)
_SQLITE_MESSAGES = _insert_head("conversations", _MESSAGE_COLUMNS)
_ON_CONFLICT = "ON CONFLICT DO NOTHING"


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
    values to Python objects and back was the largest cost of the import. PostgreSQL gets each
    flush's messages as one statement of arrays (:data:`_PG_INSERT_MESSAGES`), the sessions
    through Core.

    SQLite takes many rows per statement, and through the standard ``sqlite3`` driver the
    statements and commits run on a thread of their own (:mod:`convostore.legacy.batches`), so
    cutting the next batch into sessions overlaps writing this one. The caller waits for that
    thread (:meth:`wait`) before it uses the connection itself, and :meth:`close` stops it.
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
        self.insert_sessions = insert(_sessions).on_conflict_do_nothing()
        self._in_channel = select(_conversations.c.message_id).where(
            _conversations.c.bot_name == bindparam("bot"),
            _conversations.c.channel_id == bindparam("channel"),
        )
        self._stored = select(_conversations.c.message_id).where(
            _conversations.c.bot_name == bindparam("bot"),
            _conversations.c.message_id.in_(bindparam("ids", expanding=True)),
        )
        self._behind = Behind(
            connection.dialect.driver == "pysqlite" and not dry_run, "convostore-import"
        )

    def wait(self) -> None:
        """Until the write in flight is done; raises its error if it failed."""
        self._behind.wait()

    def close(self) -> None:
        """Let the write in flight finish, then stop the writer's thread (raises nothing)."""
        self._behind.close()

    def _exists(self, table: TableClause, bot: str) -> bool:
        self.wait()
        found = self.connection.execute(
            select(table.c.id).where(table.c.bot_name == bot).limit(1)
        ).first()
        return found is not None

    def _session_ids(self, bot: str, channel_id: str) -> set[str]:
        self.wait()
        return set(
            self.connection.execute(
                select(_sessions.c.session_id).where(
                    _sessions.c.bot_name == bot, _sessions.c.channel_id == channel_id
                )
            ).scalars()
        )

    def _present(self, bot: str, channel_id: str) -> set[str]:
        """The channel's staged message ids that the bot already stores, in whichever channel.

        Rule 7 holds against the database too: a copy stored in another channel (by the live bot
        or an earlier import) would otherwise be dropped by the database's unique key while the
        report and the session counted it. The channel's own ids are read in one range; the
        staged ids not among them are looked up by key.
        """
        self.wait()
        found = set(
            self.connection.execute(self._in_channel, {"bot": bot, "channel": channel_id}).scalars()
        )
        others = (m for m in self.stage.message_ids(bot, channel_id) if m not in found)
        while chunk := list(islice(others, _LOOKUP)):
            found.update(
                self.connection.execute(self._stored, {"bot": bot, "ids": chunk}).scalars()
            )
        return found

    def write_bot(self, bot: str, config: BotConfig) -> None:
        """Write the bot's staged rows, one channel at a time."""
        self.report.bot(bot)
        has_rows = self._exists(_conversations, bot)
        has_sessions = has_rows or self._exists(_sessions, bot)
        done = 0
        firsts = self.stage.first_copies(bot)
        for channel_id, group in _by_channel(self.stage.rows(bot)):
            present = self._present(bot, channel_id) if has_rows else set()
            taken = self._session_ids(bot, channel_id) if has_sessions else set()
            done = self._write_channel(bot, config, channel_id, group, present, taken, done, firsts)
            pending = self.pending + len(self.messages)
            if self.commit_every is not None and pending >= self.commit_every:
                self.flush()
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
        firsts: dict[str, tuple[str, str]],
    ) -> int:
        """Cut one channel's rows (in time order) into sessions; the rows read so far.

        A message id in ``firsts`` (the bot has it in several channels) is kept only as the copy
        it names, its earliest.
        """
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
            if firsts and firsts.get(message_id, (channel_id, ts)) != (channel_id, ts):
                records["duplicate"] += 1
                continue
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
        """Hand the rows cut so far to the connection (sessions before their messages)."""
        sessions, messages = self.sessions, self.messages
        self.pending += len(messages)
        self.sessions, self.messages = [], []
        if not self.dry_run and (sessions or messages):
            self._behind.submit(functools.partial(self._insert, sessions, messages))

    def _insert(self, sessions: list[tuple[Any, ...]], messages: list[tuple[Any, ...]]) -> None:
        if self.sqlite:
            execute = self.connection.exec_driver_sql
            insert_rows(execute, _SQLITE_SESSIONS, sessions, _ON_CONFLICT)
            insert_rows(execute, _SQLITE_MESSAGES, messages, _ON_CONFLICT)
            return
        if sessions:
            self.connection.execute(
                self.insert_sessions,
                [dict(zip(_SESSION_COLUMNS, s, strict=True)) for s in sessions],
            )
        if messages:
            columns = zip(*messages, strict=True)
            params = {
                name: list(values) for name, values in zip(_MESSAGE_COLUMNS, columns, strict=True)
            }
            params["metadata"] = [_JSON_NULL if m is None else m for m in params["metadata"]]
            self.connection.execute(_PG_INSERT_MESSAGES, params)

    def _commit(self) -> None:
        if not self.dry_run:
            self._behind.submit(self.connection.commit)
        self.pending = 0

    def finish(self) -> None:
        """Write what is left, commit it when the writer commits, and wait for it."""
        self.flush()
        if self.commit_every is not None:
            self._commit()
        self.wait()


def _by_channel(
    rows: Iterable[tuple[str, str, str, str, str, str, str | None]],
) -> Iterator[tuple[str, Iterator[StagedRow]]]:
    for channel_id, group in groupby(rows, key=itemgetter(0)):
        yield channel_id, (row[1:] for row in group)
