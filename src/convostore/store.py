"""``BotStore``: the unit of work a bot uses to store and read its conversations."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlalchemy.ext.asyncio import AsyncSession as AsyncDBSession

from convostore.channels import ChannelInfo
from convostore.config import BotConfig
from convostore.db import create_engine, read_only, session_factory, translate_errors
from convostore.errors import ConfigError, InvalidInput, StorageError
from convostore.records import ChatSession, StoredMessage
from convostore.repositories import MessageRepository, SessionRepository
from convostore.repositories import messages as message_records
from convostore.repositories import sessions as session_records
from convostore.schema import check_schema
from convostore.sessions import base_session_id, fits_session, unique_session_id

logger = logging.getLogger(__name__)

ROLES = frozenset({"user", "assistant", "system"})
# Concurrent writers on PostgreSQL can race to open the same session or store the same message id;
# the loser sees a unique violation and simply runs its unit of work again.
_WRITE_ATTEMPTS = 5
_T = TypeVar("_T")


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


def _metadata(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidInput(f"metadata must be a dict or None, not {type(value).__name__}")
    try:
        # A round trip both validates and detaches the caller's dict from the stored one.
        copy: dict[str, Any] = json.loads(json.dumps(value))
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"metadata must be JSON-serialisable: {exc}") from None
    return copy


class BotStore:
    """One bot's view of the conversation database; it never reads or writes other bots' rows."""

    def __init__(self, config: BotConfig, engine: AsyncEngine) -> None:
        self.config = config
        self.bot_name = config.name
        self.engine = engine
        self._where = config.safe_database_url
        self._writer: async_sessionmaker[AsyncDBSession] = session_factory(engine)
        self._reader: async_sessionmaker[AsyncDBSession] = session_factory(read_only(engine))

    @classmethod
    @asynccontextmanager
    async def open(cls, config: BotConfig) -> AsyncIterator[BotStore]:
        """Open the bot's database, check its schema, and dispose of the engine on exit."""
        if not config.storage.enabled:
            raise ConfigError(
                f"{config.source or config.name}: storage.enabled is false for bot {config.name!r}"
            )
        engine = create_engine(config.database_url)
        try:
            with translate_errors(config.safe_database_url):
                async with read_only(engine).connect() as connection:
                    await check_schema(connection, config.safe_database_url)
            yield cls(config, engine)
        finally:
            await engine.dispose()

    async def _write(self, work: Callable[[AsyncDBSession], Awaitable[_T]]) -> _T:
        for attempt in range(1, _WRITE_ATTEMPTS + 1):
            try:
                with translate_errors(self._where):
                    async with self._writer() as db_session, db_session.begin():
                        return await work(db_session)
            except StorageError as exc:
                if isinstance(exc.__cause__, IntegrityError) and attempt < _WRITE_ATTEMPTS:
                    continue
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def _read(self, work: Callable[[AsyncDBSession], Awaitable[_T]]) -> _T:
        with translate_errors(self._where):
            async with self._reader() as db_session, db_session.begin():
                return await work(db_session)

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
        if role not in ROLES:
            raise InvalidInput(f"role must be one of user, assistant, system; got {role!r}")
        if not isinstance(content, str):
            raise InvalidInput(f"content must be a str, not {type(content).__name__}")
        if not isinstance(username, str):
            raise InvalidInput(f"username must be a str, not {type(username).__name__}")
        if not isinstance(channel, ChannelInfo):
            raise InvalidInput(f"channel must be a ChannelInfo, not {type(channel).__name__}")
        user = _decimal_id(user_id, "user_id")
        msg_id = _message_id(message_id)
        at = _utc(timestamp)
        meta = _metadata(metadata)
        storage = self.config.storage

        async def work(db_session: AsyncDBSession) -> StoredMessage:
            messages = MessageRepository(db_session, self.bot_name)
            existing = await messages.by_message_id(msg_id)
            if existing is not None:
                return message_records.to_record(existing)
            sessions = SessionRepository(db_session, self.bot_name)
            current = await sessions.open_session(channel.id)
            if current is not None and fits_session(
                current.started_at,
                current.last_activity,
                at,
                gap=storage.session_gap,
                timeout=storage.session_timeout,
            ):
                await sessions.record_message(current, at)
            else:
                if current is not None:
                    await sessions.close(current)
                base = base_session_id(at, storage.session_timeout)
                session_id = unique_session_id(base, await sessions.ids_like(channel.id, base))
                current = await sessions.start(channel.id, session_id, at)
            row = await messages.add(
                channel_id=channel.id,
                channel_name=channel.name,
                channel_type=channel.type,
                user_id=user,
                username=username,
                session_id=current.session_id,
                message_id=msg_id,
                role=role,
                content=content,
                timestamp=at,
                metadata=meta,
            )
            return message_records.to_record(row)

        return await self._write(work)

    async def history(
        self,
        channel: ChannelInfo,
        limit: int | None = None,
        *,
        user_id: int | str | None = None,
        session_id: str | None = None,
    ) -> list[StoredMessage]:
        """The newest ``limit`` messages of the channel (default ``max_history``), oldest first."""
        count = self.config.storage.max_history if limit is None else limit
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise InvalidInput(f"limit must be a non-negative int, got {limit!r}")
        user = None if user_id is None else _decimal_id(user_id, "user_id")
        if count == 0:
            return []

        async def work(db_session: AsyncDBSession) -> list[StoredMessage]:
            rows = await MessageRepository(db_session, self.bot_name).newest(
                channel.id, count, user_id=user, session_id=session_id
            )
            return [message_records.to_record(row) for row in reversed(rows)]

        return await self._read(work)

    async def current_session(self, channel: ChannelInfo) -> ChatSession | None:
        """The session open in the database for the channel, whatever the clock says."""

        async def work(db_session: AsyncDBSession) -> ChatSession | None:
            row = await SessionRepository(db_session, self.bot_name).open_session(channel.id)
            return None if row is None else session_records.to_record(row)

        return await self._read(work)

    async def sessions(self, channel: ChannelInfo) -> list[ChatSession]:
        """The channel's sessions, newest first."""

        async def work(db_session: AsyncDBSession) -> list[ChatSession]:
            rows = await SessionRepository(db_session, self.bot_name).list(channel.id)
            return [session_records.to_record(row) for row in rows]

        return await self._read(work)

    async def close_expired_sessions(self, now: datetime | None = None) -> int:
        """Close this bot's open sessions that are past their gap or timeout; return how many."""
        at = _utc(now)
        storage = self.config.storage

        async def work(db_session: AsyncDBSession) -> int:
            return await SessionRepository(db_session, self.bot_name).close_expired(
                at, gap=storage.session_gap, max_span=storage.session_timeout
            )

        return await self._write(work)
