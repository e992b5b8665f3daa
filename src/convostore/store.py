"""``BotStore``: the unit of work a bot uses to store and read its conversations."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from convostore.channels import ChannelInfo
from convostore.chat import estimate_tokens
from convostore.config import BotConfig
from convostore.db import (
    BUSY_TIMEOUT_MS,
    RESTORE_FENCE,
    Transactions,
    create_engine,
    read_only,
    translate_errors,
)
from convostore.errors import (
    ConfigError,
    DatabaseLockedError,
    DatabaseUnavailableError,
    InvalidInput,
    SchemaError,
    StorageError,
)
from convostore.records import ChatSession, StoredMessage
from convostore.repositories import MessageRepository, SessionRepository
from convostore.repositories.rows import NewMessage
from convostore.schema import check_schema
from convostore.sessions import base_session_id, fits_session, unique_session_id

logger = logging.getLogger(__name__)

ROLES = frozenset({"user", "assistant", "system"})
# Concurrent writers on PostgreSQL can race to open the same session or store the same message id;
# the loser sees a unique violation and simply runs its unit of work again.
_WRITE_ATTEMPTS = 5
_FENCE_POLL_S = 0.05
_T = TypeVar("_T")


class _AlreadyStored(Exception):
    """Raised inside a write to roll it back and hand out the row stored earlier."""

    def __init__(self, record: StoredMessage) -> None:
        self.record = record


class _Retry(Exception):
    """Raised inside a write to roll it back and run it again."""


def _lost_connection(exc: StorageError) -> bool:
    """Whether the unit of work failed because its pooled connection was dead.

    SQLAlchemy then invalidates the pool, so running the work again uses a fresh connection. Every
    unit of work of the store is safe to repeat: a message write is idempotent by message id.
    """
    cause = exc.__cause__
    return isinstance(cause, DBAPIError) and bool(cause.connection_invalidated)


def _decimal_id(value: int | str, what: str) -> str:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise InvalidInput(f"{what} must be an int or a decimal string, not {type(value).__name__}")
    text = str(value).strip()
    if not text or not text.isascii() or not text.isdigit() or len(text) > 64:
        raise InvalidInput(f"{what} must be a non-empty decimal id, got {str(value)[:40]!r}")
    return text


def _message_id(value: int | str | None) -> str:
    if value is None:
        # 39-digit ids: never equal to a 64-bit Discord snowflake.
        return str(uuid.uuid4().int | (1 << 127))
    return _decimal_id(value, "message_id")


def _utc(value: datetime | None) -> datetime:
    if value is None:
        return datetime.now(UTC)
    if not isinstance(value, datetime):
        raise InvalidInput(f"timestamp must be a datetime, not {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInput("timestamp must be timezone-aware (naive datetimes are ambiguous)")
    return value.astimezone(UTC)


def _text_problem(value: str) -> str | None:
    """Why ``value`` cannot be stored as text on every backend, or ``None``."""
    if "\x00" in value:
        # PostgreSQL text cannot hold NUL; refused on every backend so they store alike.
        return "contains a NUL character (\\x00), which cannot be stored"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        return (
            f"contains a lone surrogate ({value[exc.start]!r} at position {exc.start}), "
            "which is not valid UTF-8"
        )
    return None


def _json_problem(value: Any, where: str) -> str | None:
    """Why a JSON value (already round-tripped) cannot be stored alike everywhere, or ``None``."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"{where} is {value!r}; JSON has no NaN or infinity"
    if isinstance(value, str):
        problem = _text_problem(value)
        return None if problem is None else f"{where} {problem}"
    if isinstance(value, dict):
        for key, item in value.items():
            problem = _text_problem(key)
            if problem is not None:
                return f"{where}: a key {problem}"
            problem = _json_problem(item, f"{where}[{key!r}]")
            if problem is not None:
                return problem
    if isinstance(value, list):
        for index, item in enumerate(value):
            problem = _json_problem(item, f"{where}[{index}]")
            if problem is not None:
                return problem
    return None


def _metadata(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidInput(f"metadata must be a dict or None, not {type(value).__name__}")
    try:
        # A round trip both validates and detaches the caller's dict from the stored one.
        copy: dict[str, Any] = json.loads(json.dumps(value))
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidInput(f"metadata must be JSON-serialisable: {exc}") from None
    # SQLite would store NaN and export would then write invalid JSON; PostgreSQL's jsonb refuses
    # it, and lone surrogates: refused here so every backend stores the same.
    problem = _json_problem(copy, "metadata")
    if problem is not None:
        raise InvalidInput(problem)
    return copy


def _check_message_text(channel: ChannelInfo, *, username: str, role: str, content: str) -> None:
    if role not in ROLES:
        raise InvalidInput(f"role must be one of user, assistant, system; got {role!r}")
    if not isinstance(content, str):
        raise InvalidInput(f"content must be a str, not {type(content).__name__}")
    if not isinstance(username, str):
        raise InvalidInput(f"username must be a str, not {type(username).__name__}")
    if not isinstance(channel, ChannelInfo):
        raise InvalidInput(f"channel must be a ChannelInfo, not {type(channel).__name__}")
    for what, value in (
        ("content", content),
        ("username", username),
        ("channel name", channel.name),
    ):
        problem = _text_problem(value)
        if problem is not None:
            raise InvalidInput(f"{what} {problem}")


async def _warn_of_legacy_files(config: BotConfig, connection: AsyncConnection) -> None:
    # The legacy code loads on first use: a bot that never had JSON files never imports it.
    from convostore.legacy.transition import unimported_files

    try:
        pending = await unimported_files(config, connection)
    except OSError as exc:
        logger.warning("%s: cannot look for legacy files: %s", config.legacy.dir, exc.strerror)
        return
    if pending:
        logger.warning(
            "bot %s: %d legacy JSON file(s) under %s are not imported yet; run "
            "`convostore migrate-legacy --bot %s` (or `alembic upgrade head`)",
            config.name,
            len(pending),
            config.legacy.dir,
            config.name,
        )


def _within_budget(
    newest_first: list[StoredMessage], max_tokens: int, count_tokens: Callable[[str], int]
) -> list[StoredMessage]:
    """The newest messages whose contents fit ``max_tokens``, oldest first."""
    kept = 0
    used = 0
    for record in newest_first:
        cost = count_tokens(record.content)
        if isinstance(cost, bool) or not isinstance(cost, int) or cost < 0:
            raise InvalidInput(f"count_tokens must return a non-negative int, got {cost!r}")
        used += cost
        if used > max_tokens:
            break
        kept += 1
    del newest_first[kept:]
    newest_first.reverse()
    return newest_first


def _refuse_missing_sqlite_file(config: BotConfig) -> None:
    """Refuse to open a SQLite database that does not exist, before anything is created.

    Opening a mistyped ``storage.path`` must not leave new directories and an empty database
    behind; ``alembic upgrade head`` (or ``convostore init``) is what creates a database.
    """
    path = config.sqlite_path
    if path is None or make_url(config.database_url).query.get("uri"):
        return
    if path.is_file():
        return
    parent = path.parent
    if path.exists():
        raise DatabaseUnavailableError(f"{path}: cannot open the database: not a file")
    if not parent.is_dir():
        what = "is not a directory" if parent.exists() else "does not exist"
        raise DatabaseUnavailableError(
            f"{path}: cannot open the database: {parent} {what}; check storage.path"
        )
    raise SchemaError(
        f"{path}: no database file here; run `alembic upgrade head` to create it "
        "(or check storage.path)"
    )


class BotStore:
    """One bot's view of the conversation database; it never reads or writes other bots' rows."""

    def __init__(self, config: BotConfig, engine: AsyncEngine) -> None:
        self.config = config
        self.bot_name = config.name
        self.engine = engine
        self._where = config.safe_database_url
        self._transactions = Transactions(engine)

    @classmethod
    @asynccontextmanager
    async def open(cls, config: BotConfig) -> AsyncIterator[BotStore]:
        """Open the bot's database, check its schema, and dispose of the engine on exit."""
        if not config.storage.enabled:
            raise ConfigError(
                f"{config.source or config.name}: storage.enabled is false for bot {config.name!r}"
            )
        _refuse_missing_sqlite_file(config)
        # No pre-ping: on asyncpg it costs three round trips per checkout (BEGIN, ping, ROLLBACK),
        # more than a history read itself. A connection the server dropped fails its unit of
        # work instead, which is run once more on a fresh connection (see _lost_connection).
        engine = create_engine(
            config.database_url, synchronous=config.storage.synchronous, pool_pre_ping=False
        )
        store: BotStore | None = None
        try:
            with translate_errors(config.safe_database_url):
                async with read_only(engine).connect() as connection:
                    await check_schema(connection, config.safe_database_url)
                    await _warn_of_legacy_files(config, connection)
            store = cls(config, engine)
            yield store
        finally:
            if store is not None:
                await store._transactions.close()
            await engine.dispose()

    async def _write(self, work: Callable[[Connection], _T]) -> _T:
        # While `convostore restore` replaces a SQLite database its fence refuses every write;
        # wait for it like for a lock, so the write lands in the restored database.
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        while True:
            try:
                return await self._write_attempts(work)
            except DatabaseLockedError as exc:
                if RESTORE_FENCE not in str(exc.__cause__) or time.monotonic() > deadline:
                    raise
            await asyncio.sleep(_FENCE_POLL_S)

    async def _write_attempts(self, work: Callable[[Connection], _T]) -> _T:
        for attempt in range(1, _WRITE_ATTEMPTS + 1):
            try:
                with translate_errors(self._where):
                    return await self._transactions.write(work)
            except DatabaseLockedError:
                raise
            except StorageError as exc:
                retry = isinstance(exc.__cause__, IntegrityError) or _lost_connection(exc)
                if retry and attempt < _WRITE_ATTEMPTS:
                    continue
                raise
            except _Retry:
                if attempt < _WRITE_ATTEMPTS:
                    continue
                raise StorageError(
                    f"{self._where}: the write kept conflicting; try again"
                ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def _read(self, work: Callable[[Connection], _T]) -> _T:
        try:
            with translate_errors(self._where):
                return await self._transactions.read(work)
        except StorageError as exc:
            if not _lost_connection(exc):
                raise
        with translate_errors(self._where):
            return await self._transactions.read(work)

    async def add_message(
        self,
        channel: ChannelInfo,
        *,
        user_id: int | str,
        username: str,
        role: str,
        content: str,
        message_id: int | str | None = None,
        timestamp: datetime | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> StoredMessage:
        """Store one message in the channel's current session (opening a new one if needed).

        Storing the same ``message_id`` twice keeps one row and returns the existing one.
        """
        _check_message_text(channel, username=username, role=role, content=content)
        user = _decimal_id(user_id, "user_id")
        msg_id = _message_id(message_id)
        at = _utc(timestamp)
        meta = _metadata(metadata)
        storage = self.config.storage

        def work(connection: Connection) -> StoredMessage:
            # Hot path, two statements: count the message in the open session if it fits, then
            # insert it (ON CONFLICT DO NOTHING). A message id already stored rolls back both.
            messages = MessageRepository(connection, self.bot_name)
            sessions = SessionRepository(connection, self.bot_name)
            session_id = sessions.extend_open(
                channel.id, at, gap=storage.session_gap, max_span=storage.session_timeout
            )
            if session_id is None:
                session_id = self._start_session(sessions, channel, at)
            stored = messages.add(
                NewMessage(
                    channel.id,
                    channel.name,
                    channel.type,
                    user,
                    username,
                    session_id,
                    msg_id,
                    role,
                    content,
                    at,
                    meta,
                )
            )
            if stored is None:
                existing = messages.by_message_id(msg_id)
                if existing is None:  # deleted since the conflict: store it on the next attempt
                    raise _Retry
                raise _AlreadyStored(existing)
            return stored

        try:
            return await self._write(work)
        except _AlreadyStored as already:
            return already.record

    def _start_session(
        self, sessions: SessionRepository, channel: ChannelInfo, at: datetime
    ) -> str:
        """The session a message at ``at`` joins when the open one (if any) does not take it."""
        storage = self.config.storage
        current = sessions.open_session(channel.id)
        if current is not None:
            row_id, open_session = current
            if fits_session(
                open_session.started_at,
                open_session.last_activity,
                at,
                gap=storage.session_gap,
                timeout=storage.session_timeout,
            ):
                # Another writer opened it after our first look (PostgreSQL, READ COMMITTED).
                sessions.count_message(row_id, at)
                return open_session.session_id
            sessions.close(row_id)
        base = base_session_id(at, storage.session_timeout)
        session_id = unique_session_id(base, sessions.ids_like(channel.id, base))
        sessions.start(channel.id, session_id, at)
        return session_id

    async def history(
        self,
        channel: ChannelInfo,
        limit: int | None = None,
        *,
        user_id: int | str | None = None,
        session_id: str | None = None,
        max_tokens: int | None = None,
        count_tokens: Callable[[str], int] | None = None,
    ) -> list[StoredMessage]:
        """The newest ``limit`` messages of the channel (default ``max_history``), oldest first.

        With ``max_tokens``, only the newest of those whose contents total at most ``max_tokens``
        tokens: messages are counted from the newest back and the first that does not fit ends
        the history (a message is never cut, and never skipped to fit an older one).
        ``count_tokens`` counts one message's content (default:
        :func:`convostore.chat.estimate_tokens`, a dependency-free estimate). Still one query
        of at most ``limit`` rows.
        """
        count = self.config.storage.max_history if limit is None else limit
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise InvalidInput(f"limit must be a non-negative int, got {limit!r}")
        if max_tokens is not None and (
            isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 0
        ):
            raise InvalidInput(f"max_tokens must be a non-negative int, got {max_tokens!r}")
        if count_tokens is not None and not callable(count_tokens):
            raise InvalidInput("count_tokens must be a callable taking a str and returning an int")
        user = None if user_id is None else _decimal_id(user_id, "user_id")
        if count == 0 or max_tokens == 0:
            return []
        newest_first = await self._newest(channel, count, user, session_id)
        if max_tokens is not None:
            return _within_budget(newest_first, max_tokens, count_tokens or estimate_tokens)
        newest_first.reverse()
        return newest_first

    async def _newest(
        self, channel: ChannelInfo, count: int, user: str | None, session_id: str | None
    ) -> list[StoredMessage]:
        """The newest ``count`` messages, newest first (the legacy files while not imported)."""

        def work(connection: Connection) -> list[StoredMessage]:
            return MessageRepository(connection, self.bot_name).newest(
                channel.id, count, user_id=user, session_id=session_id
            )

        rows = await self._read(work)
        if not rows and session_id is None and self.config.legacy.read_fallback:
            # Not imported yet: serve the JSON files, read-only, as the import would store them.
            from convostore.legacy.transition import legacy_history

            legacy = await asyncio.to_thread(legacy_history, self.config, channel, count, user)
            legacy.reverse()
            return legacy
        return rows

    async def current_session(self, channel: ChannelInfo) -> ChatSession | None:
        """The session open in the database for the channel, whatever the clock says."""

        def work(connection: Connection) -> ChatSession | None:
            current = SessionRepository(connection, self.bot_name).open_session(channel.id)
            return None if current is None else current[1]

        return await self._read(work)

    async def sessions(self, channel: ChannelInfo) -> list[ChatSession]:
        """The channel's sessions, newest first."""

        def work(connection: Connection) -> list[ChatSession]:
            return SessionRepository(connection, self.bot_name).list(channel.id)

        return await self._read(work)

    async def close_expired_sessions(self, now: datetime | None = None) -> int:
        """Close this bot's open sessions that are past their gap or timeout; return how many."""
        at = _utc(now)
        storage = self.config.storage

        def work(connection: Connection) -> int:
            return SessionRepository(connection, self.bot_name).close_expired(
                at, gap=storage.session_gap, max_span=storage.session_timeout
            )

        return await self._write(work)
