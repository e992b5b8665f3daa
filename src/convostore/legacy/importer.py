"""Importer of the legacy JSON tree: records -> rows, Core statements over a synchronous Connection.

The import runs in two phases, so memory stays bounded whatever the size of the tree:

1. **read**: every file is read once, its records routed to bots (import rules 1-3), converted to
   UTC (rule 6), given a message id (rule 9) and staged in a private SQLite file;
2. **write**: per bot and channel, the staged rows come back in time order, so the first copy of a
   message id is the earliest one and later copies are dropped (rule 7); the rows are cut into
   sessions by the bot's gap/timeout (rule 10) and written with ``INSERT ... ON CONFLICT DO
   NOTHING`` in large batches. Every imported row is marked ``source = 'legacy'``.

A channel is always written in one transaction, with its sessions complete, so an import that stops
half-way is finished by running it again, which adds nothing twice (message ids are the Discord ids,
or ids derived from the record's content, never random).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import tempfile
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from itertools import groupby
from operator import itemgetter
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import Table, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from convostore.config import BotConfig
from convostore.errors import ConfigError, LegacyImportError
from convostore.legacy.reader import (
    Conversation,
    LegacyFile,
    LegacyRecord,
    ParsedFile,
    Problem,
    read_file,
    scan,
)
from convostore.models import ChatSessionModel, ConversationModel, LegacyImportModel
from convostore.records import MESSAGE_FIELDS
from convostore.sessions import base_session_id, fits_session, unique_session_id

logger = logging.getLogger(__name__)

SOURCE = "legacy"
SHARED = "(shared files)"
UNATTRIBUTABLE = "unattributable"
_BATCH = 5000
_conversations: Table = ConversationModel.__table__  # type: ignore[assignment]
_sessions: Table = ChatSessionModel.__table__  # type: ignore[assignment]
_ledger: Table = LegacyImportModel.__table__  # type: ignore[assignment]


def channel_placeholder(channel_id: str) -> str:
    """The name an imported channel gets when no legacy file named it."""
    return f"channel-{channel_id}"


def user_placeholder(user_id: str) -> str:
    """The username an imported user gets when no legacy file named them."""
    return f"user-{user_id}"


def synthetic_message_id(channel_id: str, user_id: str, role: str, content: str, at: str) -> str:
    """A deterministic id for a record without a Discord id.

    Equal records (same channel, user, role, content and instant) get the same id, so they collapse
    into one row and a second import adds nothing. The value lies in [2**126, 2**127): never a
    Discord snowflake (< 2**64) nor an id the store generates for live messages (>= 2**127).
    """
    digest = hashlib.sha256("\x1f".join((channel_id, user_id, role, content, at)).encode()).digest()
    return str((int.from_bytes(digest[:16], "big") >> 2) | (1 << 126))


def to_utc(value: datetime, zone: tzinfo) -> datetime:
    """Aware values convert; naive ones are wall-clock time in ``zone`` (``fold=0`` at DST gaps)."""
    if value.tzinfo is None or value.utcoffset() is None:
        value = value.replace(tzinfo=zone)
    return value.astimezone(UTC)


def conversation_bots(conversation: Conversation) -> list[str]:
    """Rule 2: the bots of a shared conversation, its participants and every bot that answered."""
    answered = (r.bot_name for r in conversation.records if r.role == "assistant" and r.bot_name)
    return list(dict.fromkeys([*conversation.participants, *answered]))


def route(file: LegacyFile, shared_bots: list[str], record: LegacyRecord) -> list[str]:
    """The bots a record goes to (rules 1-3); empty when it is unattributable."""
    if file.bot is not None:
        return [file.bot]
    if record.role == "assistant":
        return [record.bot_name] if record.bot_name else []
    return shared_bots


_json_text = json.JSONEncoder().encode


def utc_text(value: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SS.ffffff`` of an aware time in UTC: sorts as the instants do."""
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds")


class ImportProgress(Protocol):
    """Progress of a long import, for a progress bar."""

    def start(self, phase: str, total: int) -> None: ...

    def advance(self, phase: str, amount: int = 1) -> None: ...


@dataclass
class BotReport:
    """What happened to one bot's files and records."""

    database: str
    configured: bool
    files: dict[str, int] = field(
        default_factory=lambda: {"imported": 0, "unreadable": 0, "ignored": 0}
    )
    records: dict[str, int] = field(
        default_factory=lambda: {
            "imported": 0,
            "duplicate": 0,
            "already_present": 0,
            "unattributable": 0,
            "invalid": 0,
        }
    )
    sessions: int = 0


@dataclass
class ImportReport:
    """Every file and every record of an import, accounted for."""

    data_dirs: list[str]
    dry_run: bool
    legacy_tz: str | None
    bots: dict[str, BotReport] = field(default_factory=dict)
    files: list[dict[str, Any]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def bot(self, name: str, database: str = "", configured: bool = False) -> BotReport:
        if name not in self.bots:
            self.bots[name] = BotReport(database, configured)
        return self.bots[name]

    @property
    def totals(self) -> dict[str, int]:
        sums: dict[str, int] = defaultdict(int)
        for report in self.bots.values():
            for key, value in report.records.items():
                sums[key] += value
        for status in ("imported", "unreadable", "ignored"):
            sums[f"files_{status}"] = sum(1 for f in self.files if f["status"] == status)
        return dict(sums)

    def to_json(self) -> str:
        """The report as the JSON file ``--report`` (and ``-x legacy_report``) writes."""
        return json.dumps(self.as_dict(), indent=2, ensure_ascii=False) + "\n"

    def as_dict(self) -> dict[str, Any]:
        return {
            "data_dirs": self.data_dirs,
            "dry_run": self.dry_run,
            "legacy_tz": self.legacy_tz,
            "totals": self.totals,
            "bots": {
                name: {
                    "database": r.database,
                    "configured": r.configured,
                    "files": r.files,
                    "records": r.records,
                    "sessions": r.sessions,
                }
                for name, r in sorted(self.bots.items())
            },
            "files": self.files,
            "unreadable_and_invalid": [p.as_dict() for p in self.problems],
            "warnings": [w.as_dict() for w in self.warnings],
            "notes": self.notes,
        }


def default_config(bot: str) -> BotConfig:
    """The configuration of a bot that has no YAML file: library defaults."""
    return BotConfig(name=bot)


_STAGE_SCHEMA = """
CREATE TABLE stage (
    bot TEXT NOT NULL, message_id TEXT NOT NULL, channel_id TEXT NOT NULL, user_id TEXT NOT NULL,
    role TEXT NOT NULL, content TEXT NOT NULL, ts TEXT NOT NULL, metadata TEXT,
    seq INTEGER NOT NULL
);
CREATE TABLE channel_names (channel_id TEXT PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE usernames (user_id TEXT PRIMARY KEY, name TEXT NOT NULL);
"""
_STAGE_ROW = "INSERT INTO stage VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"


class LegacyImport:
    """One import of a legacy tree: :meth:`read` it once, then :meth:`write` each database's bots.

    ``configs`` are the configured bots; a bot without a config gets :func:`default_config`.
    ``accept(bot)`` says which bots this import handles (the others are left to another run).
    ``legacy_tz`` overrides every bot's ``legacy.timezone``.
    """

    def __init__(
        self,
        data_dirs: Sequence[Path],
        configs: Mapping[str, BotConfig],
        *,
        legacy_tz: str | None = None,
        accept: Callable[[str], bool] | None = None,
        dry_run: bool = False,
        progress: ImportProgress | None = None,
    ) -> None:
        if legacy_tz is not None:
            try:
                ZoneInfo(legacy_tz)
            except (ValueError, KeyError):
                raise ConfigError(f"--legacy-tz: unknown time zone {legacy_tz!r}") from None
        self.data_dirs = [Path(d) for d in data_dirs]
        self.configs = dict(configs)
        self.legacy_tz = legacy_tz
        self.accept = accept or (lambda _bot: True)
        self.dry_run = dry_run
        self.progress = progress
        self.report = ImportReport([str(d) for d in self.data_dirs], dry_run, legacy_tz)
        self._states: dict[str, tuple[bool, BotConfig | None, tzinfo | None]] = {}
        self._config_cache: dict[str, BotConfig | None] = {}
        self._seq = 0
        self._tmp = tempfile.TemporaryDirectory(prefix="convostore-import-")
        self._stage = sqlite3.connect(Path(self._tmp.name) / "stage.db", isolation_level=None)
        self._stage.executescript(
            "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA temp_store=FILE;"
            "PRAGMA cache_size=-16384;" + _STAGE_SCHEMA
        )
        self._read = False

    def __enter__(self) -> LegacyImport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stage.close()
        self._tmp.cleanup()

    # -- routing -------------------------------------------------------------------------------

    def config_for(self, bot: str) -> BotConfig | None:
        """The bot's config, the defaults for an unconfigured bot, or None for an invalid name."""
        if bot not in self._config_cache:
            config = self.configs.get(bot)
            if config is None:
                try:
                    config = default_config(bot)
                except ValueError:
                    config = None
            self._config_cache[bot] = config
        return self._config_cache[bot]

    # -- phase 1 -------------------------------------------------------------------------------

    def read(self) -> None:
        """Read and stage every file of every data directory."""
        files: list[LegacyFile] = []
        for folder in self.data_dirs:
            if not folder.is_dir():
                self.report.notes.append(f"{folder}: no legacy data directory, nothing to import")
                logger.info("%s: no legacy data directory, nothing to import", folder)
                continue
            files.extend(scan(folder))
        if self.progress:
            self.progress.start("reading files", len(files))
        for file in files:
            self._read_one(read_file(file))
            if self.progress:
                self.progress.advance("reading files")
        # Rule 7 happens on the way out: each channel's rows come back in time order, so the first
        # copy of a message id is the earliest.
        self._stage.execute("CREATE INDEX stage_order ON stage (bot, channel_id, ts, seq)")
        self._read = True

    def _file_owner(self, file: LegacyFile) -> str:
        return file.bot if file.bot is not None else SHARED

    def _read_one(self, parsed: ParsedFile) -> None:
        file = parsed.file
        owner = self._file_owner(file)
        entry: dict[str, Any] = {"path": file.rel, "bot": None if owner == SHARED else owner}
        if file.ignored:
            entry["status"] = "ignored"
            self.report.files.append(entry)
            self._owner_report(owner).files["ignored"] += 1
            return
        if parsed.unreadable is not None:
            entry.update(
                status="unreadable", reason=parsed.unreadable.kind, detail=parsed.unreadable.detail
            )
            self.report.files.append(entry)
            self.report.problems.append(parsed.unreadable)
            self._owner_report(owner).files["unreadable"] += 1
            return
        self.report.warnings.extend(parsed.warnings)
        self.report.problems.extend(parsed.invalid)
        self._owner_report(owner).records["invalid"] += len(parsed.invalid)
        rows: list[tuple[Any, ...]] = []
        channel_names: dict[str, str] = {}
        usernames: dict[str, str] = {}
        targets_seen: set[str] = set()
        for conversation in parsed.conversations:
            shared_bots = conversation_bots(conversation)
            for record in conversation.records:
                targets = route(file, shared_bots, record)
                if not targets:
                    self.report.problems.append(
                        Problem(
                            conversation.where,
                            UNATTRIBUTABLE,
                            "no bot to give it to (no participants, no bot_name)",
                            record.index,
                        )
                    )
                    self._owner_report(owner).records["unattributable"] += 1
                    continue
                if record.channel_name:
                    channel_names.setdefault(conversation.channel_id, record.channel_name)
                if record.username and record.role == "user":
                    usernames.setdefault(conversation.user_id, record.username)
                for bot in targets:
                    row = self._stage_row(
                        bot, conversation.channel_id, conversation.user_id, record
                    )
                    if row is not None:
                        rows.append(row)
                        targets_seen.add(bot)
        self._stage.execute("BEGIN")
        self._stage.executemany(_STAGE_ROW, rows)
        self._stage.executemany(
            "INSERT OR IGNORE INTO channel_names VALUES (?, ?)", channel_names.items()
        )
        self._stage.executemany("INSERT OR IGNORE INTO usernames VALUES (?, ?)", usernames.items())
        self._stage.execute("COMMIT")
        entry.update(status="imported", records=parsed.record_count, bots=sorted(targets_seen))
        self.report.files.append(entry)
        if owner == SHARED:
            for bot in targets_seen:
                self.report.bot(bot).files["imported"] += 1
            self._owner_report(SHARED).files["imported"] += 1
        else:
            self._owner_report(owner).files["imported"] += 1

    def _owner_report(self, owner: str) -> BotReport:
        if owner == SHARED or owner in self.report.bots:
            return self.report.bot(owner)
        config = self.config_for(owner)
        return self.report.bot(
            owner, config.safe_database_url if config else "", owner in self.configs
        )

    def _bot_state(self, bot: str) -> tuple[bool, BotConfig | None, tzinfo | None]:
        """Whether this import takes the bot, its config, and how its naive times are read."""
        if not self.accept(bot):
            return False, None, None
        config = self.config_for(bot)
        if config is None:
            return True, None, None
        self._owner_report(bot)
        zone = ZoneInfo(self.legacy_tz or config.legacy.timezone)
        return True, config, UTC if zone.key in ("UTC", "Etc/UTC") else zone

    def _stage_row(
        self, bot: str, channel_id: str, user_id: str, record: LegacyRecord
    ) -> tuple[Any, ...] | None:
        state = self._states.get(bot)
        if state is None:
            state = self._states[bot] = self._bot_state(bot)
        accepted, config, zone = state
        if not accepted:
            return None
        if config is None or zone is None:
            self.report.problems.append(
                Problem(
                    bot,
                    UNATTRIBUTABLE,
                    f"bot name {bot[:64]!r} is not a valid bot name",
                    record.index,
                )
            )
            self.report.bot(SHARED).records["unattributable"] += 1
            return None
        stamp = record.timestamp
        if zone is UTC and stamp.tzinfo is None:
            at = stamp.isoformat(timespec="microseconds")
        else:
            at = utc_text(to_utc(stamp, zone))
        message_id = record.message_id or synthetic_message_id(
            channel_id, user_id, record.role, record.content, at
        )
        self._seq += 1
        metadata = (
            # The text SQLAlchemy's JSON type writes (default json.dumps), so SQLite takes it as is.
            _json_text(record.metadata) if record.metadata is not None else None
        )
        return (
            bot,
            message_id,
            channel_id,
            user_id,
            record.role,
            record.content,
            at,
            metadata,
            self._seq,
        )

    # -- phase 2 -------------------------------------------------------------------------------

    def staged_bots(self) -> list[str]:
        return [
            row[0] for row in self._stage.execute("SELECT DISTINCT bot FROM stage ORDER BY bot")
        ]

    def write(
        self, connection: Connection, bots: Iterable[str], *, commit_every: int | None = None
    ) -> None:
        """Write the staged rows of ``bots`` through ``connection`` (nothing when a dry run).

        With ``commit_every`` the connection is committed after each channel once that many rows
        are pending (the CLI); without, the caller owns the one transaction (Alembic).
        """
        if not self._read:
            raise LegacyImportError("the legacy tree must be read before it is written")
        bots = list(bots)
        total = (
            self._stage.execute(
                f"SELECT count(*) FROM stage WHERE bot IN ({','.join('?' * len(bots))})", bots
            ).fetchone()[0]
            if bots
            else 0
        )
        if self.progress:
            self.progress.start("writing messages", total)
        writer = _Writer(connection, self, commit_every)
        for bot in bots:
            config = self.config_for(bot)
            assert config is not None
            writer.write_bot(bot, config)
        writer._flush()
        if not self.dry_run and bots:
            # The ledger tells stores and `convostore doctor` which files are newer than the import.
            finished = datetime.now(UTC)
            connection.execute(
                _ledger.insert(),
                [
                    {
                        "bot_name": bot,
                        "finished_at": finished,
                        "data_dir": os.pathsep.join(str(d) for d in self.data_dirs),
                        "messages": self.report.bot(bot).records["imported"],
                    }
                    for bot in bots
                ],
            )
        writer.finish()


_MESSAGE_COLUMNS = (*MESSAGE_FIELDS[1:], "source")
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


class _Writer:
    """Cuts one database's staged rows into sessions and writes them in batches.

    On SQLite the rows go to the driver as tuples, with timestamps and JSON already in the text
    form SQLAlchemy's types store there (the staging file holds them so): converting a million
    values to Python objects and back was the largest cost of the import. PostgreSQL gets typed
    values through Core.
    """

    def __init__(self, connection: Connection, job: LegacyImport, commit_every: int | None) -> None:
        self.connection = connection
        self.job = job
        self.commit_every = commit_every
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
        report = self.job.report.bot(bot)
        records = report.records
        gap, timeout = config.storage.session_gap, config.storage.session_timeout
        has_rows = self._exists(_conversations, bot)
        has_sessions = has_rows or self._exists(_sessions, bot)
        names = _Names(self.job._stage)
        progress = self.job.progress
        sqlite = self.sqlite
        rows = self.job._stage.execute(
            "SELECT channel_id, user_id, message_id, role, content, ts, metadata FROM stage "
            "WHERE bot = ? ORDER BY channel_id, ts, seq",
            (bot,),
        )
        done = 0
        for channel_id, group in _by_channel(rows):
            present = (
                self._column(_conversations.c.message_id, bot, channel_id) if has_rows else set()
            )
            taken = self._column(_sessions.c.session_id, bot, channel_id) if has_sessions else set()
            channel_name = names.channel(channel_id)
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
                        "channel",
                        user_id,
                        names.user(user_id),
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
            self._flush()
            if self.commit_every is not None and self.pending >= self.commit_every:
                self._commit()
        if progress:
            progress.advance("writing messages", done % 1000)

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
        self.job.report.bot(bot).sessions += 1
        if len(self.messages) >= _BATCH:
            self._flush()

    def _flush(self) -> None:
        if not self.job.dry_run:
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
        if not self.job.dry_run:
            self.connection.commit()
        self.pending = 0

    def finish(self) -> None:
        self._flush()
        if self.commit_every is not None:
            self._commit()


def _by_channel(
    rows: Iterable[tuple[str, str, str, str, str, str, str | None]],
) -> Iterator[tuple[str, Iterator[tuple[str, str, str, str, str, str | None]]]]:
    for channel_id, group in groupby(rows, key=itemgetter(0)):
        yield channel_id, (row[1:] for row in group)


class _Names:
    """Channel names and usernames found anywhere in the tree, else placeholders naming the id."""

    def __init__(self, stage: sqlite3.Connection) -> None:
        self.stage = stage
        self.users: dict[str, str] = {}

    def channel(self, channel_id: str) -> str:
        row = self.stage.execute(
            "SELECT name FROM channel_names WHERE channel_id = ?", (channel_id,)
        ).fetchone()
        return str(row[0]) if row else channel_placeholder(channel_id)

    def user(self, user_id: str) -> str:
        name = self.users.get(user_id)
        if name is None:
            row = self.stage.execute(
                "SELECT name FROM usernames WHERE user_id = ?", (user_id,)
            ).fetchone()
            name = self.users[user_id] = str(row[0]) if row else user_placeholder(user_id)
        return name
