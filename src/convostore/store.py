"""``BotStore``: the unit of work a bot uses to store and read its conversations."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import json
import logging
import math
import random
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

from sqlalchemy import ColumnElement
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.ext.asyncio import AsyncSession as AsyncDBSession

from convostore.channels import UNKNOWN_DM_NAME, ChannelInfo, decimal_id
from convostore.chat import estimate_tokens
from convostore.config import BotConfig
from convostore.db import RESTORE_FENCE, retry_reason, translate_errors
from convostore.discord_messages import message_keywords
from convostore.engine import BUSY_TIMEOUT_MS, make_engine, read_only, session_factory
from convostore.errors import (
    ConfigError,
    ConvostoreError,
    DatabaseLockedError,
    DatabaseUnavailableError,
    InvalidInput,
    ReadOnlyDatabaseError,
    SchemaError,
    StorageError,
)
from convostore.indexing import SearchIndexer
from convostore.records import (
    ROLES,
    ChatSession,
    HistoryItem,
    MessageRevision,
    SearchHit,
    StoredMessage,
)
from convostore.repositories import MessageRepository, SessionRepository, pg_driver
from convostore.repositories.backfill import ANALYZE_SESSIONS, sessions_analyze_due, store_batch
from convostore.repositories.lifecycle import LifecycleRepository
from convostore.repositories.messages import (
    ITEM_SELECT_ASYNCPG,
    newest_driver_params,
    newest_driver_sql,
)
from convostore.repositories.rows import (
    ASYNCPG_SELECT,
    NewMessage,
    items_from_driver_rows,
    messages_from_asyncpg_rows,
    new_message,
)
from convostore.repositories.search import SearchRepository
from convostore.repositories.sessions import APPEND_TO_OPEN, append_to_open_params
from convostore.schema import check_schema
from convostore.search import query_terms, relevance, snippet
from convostore.sessions import base_session_id, fits_session, unique_session_id
from convostore.sqlite_files import unwritable_reason
from convostore.unit_of_work import SMALL_READ_ROWS, UnitOfWorkRunner

logger = logging.getLogger(__name__)

# Only failures that a second attempt can cure are retried (see ``db.retry_reason``): concurrent
# writers on PostgreSQL racing to open the same session or store the same message id, a
# serialization failure or deadlock, a connection the server dropped. Every unit of work of the
# store is safe to repeat: a message write is idempotent by message id.
_WRITE_ATTEMPTS = 5
# Under SERIALIZABLE (CockroachDB, YugabyteDB, or PostgreSQL set to it) writers of one channel
# conflict often under load; each failure is cheap and the server expects a retry.
_SERIALIZATION_ATTEMPTS = 30
_FENCE_POLL_S = 0.05
# SQLite already waited the busy timeout (30 s) before "database is locked": one more wait only.
_LOCKED_ATTEMPTS = 2
_T = TypeVar("_T")
BACKFILL_BATCH = 5_000
"""Messages per transaction of :meth:`BotStore.add_messages` (each holds SQLite's write lock)."""


class _AlreadyStored(Exception):
    """Raised inside a write to roll it back and hand out the row stored earlier."""

    def __init__(self, record: StoredMessage) -> None:
        self.record = record


class _Retry(Exception):
    """Raised inside a write to roll it back and run it again."""


def _may_retry(exc: ConvostoreError, attempt: int) -> bool:
    reason = retry_reason(exc)
    if reason is None:
        return False
    if reason == "conflict":
        return attempt < _SERIALIZATION_ATTEMPTS
    return attempt < (_LOCKED_ATTEMPTS if reason == "locked" else _WRITE_ATTEMPTS)


async def _back_off(attempt: int) -> None:
    # Writers that conflicted with each other should not meet again at the same instant.
    await asyncio.sleep(random.uniform(0, 0.005 * 2 ** min(attempt, 6)))


def generated_message_id() -> str:
    """The id of a message stored without one: 39 digits, never equal to a 64-bit snowflake."""
    return str(uuid.uuid4().int | (1 << 127))


def _message_id(value: int | str | None) -> str:
    if value is None:
        return generated_message_id()
    return decimal_id(value, "message_id")


def _utc(value: datetime | None, what: str = "timestamp") -> datetime:
    if value is None:
        return datetime.now(UTC)
    if not isinstance(value, datetime):
        raise InvalidInput(f"{what} must be a datetime, not {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInput(f"{what} must be timezone-aware (naive datetimes are ambiguous)")
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


def _optional_id(value: int | str | None, what: str) -> str | None:
    return None if value is None else decimal_id(value, what)


_ATTACHMENT_TEXT = ("filename", "url", "content_type")


def _attachments(value: Any) -> list[dict[str, Any]]:
    """Attachments as stored: ``{id, filename, url, content_type, size}`` each, ids decimal."""
    if value is None:
        return []
    if isinstance(value, str | bytes | dict) or not hasattr(value, "__iter__"):
        raise InvalidInput(f"attachments must be a list of dicts, not {type(value).__name__}")
    result: list[dict[str, Any]] = []
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise InvalidInput(f"attachments[{index}] must be a dict, not {type(item).__name__}")
        unknown = set(item) - {"id", *_ATTACHMENT_TEXT, "size"}
        if unknown:
            raise InvalidInput(f"attachments[{index}] has unknown key(s): {sorted(unknown)}")
        attachment_id = item.get("id")
        attachment: dict[str, Any] = {"id": decimal_id(attachment_id, f"attachments[{index}].id")}
        for key in _ATTACHMENT_TEXT:
            text = item.get(key)
            if text is not None and not isinstance(text, str):
                raise InvalidInput(f"attachments[{index}].{key} must be a str or None")
            problem = None if text is None else _text_problem(text)
            if problem is not None:
                raise InvalidInput(f"attachments[{index}].{key} {problem}")
            attachment[key] = text
        size = item.get("size")
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
            raise InvalidInput(f"attachments[{index}].size must be a non-negative int or None")
        attachment["size"] = size
        result.append(attachment)
    return result


def _storable_text(**values: str) -> None:
    for what, value in values.items():
        problem = _text_problem(value)
        if problem is not None:
            raise InvalidInput(f"{what.replace('_', ' ')} {problem}")


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
            "`convostore migrate-legacy --bot %s`",
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


def _validated_batch(
    channel: ChannelInfo, messages: Iterable[Mapping[str, Any] | Any]
) -> list[NewMessage]:
    """Validate a batch of messages (mappings of ``add_message``'s keywords, each with its
    ``message_id``, or ``discord.Message`` objects) into rows, before anything is stored.

    One bad item refuses the batch with an :class:`InvalidInput` naming its index.
    """
    batch: list[NewMessage] = []
    with _collector_paused():
        for index, item in enumerate(messages):
            try:
                if isinstance(item, Mapping):
                    keywords = dict(item)
                    if "message_id" not in keywords or keywords["message_id"] is None:
                        raise InvalidInput(
                            "message_id is required in a backfill (it makes reruns idempotent)"
                        )
                else:
                    keywords = message_keywords(item)
                batch.append(_new_message(channel, **keywords))
            except InvalidInput as exc:
                raise InvalidInput(f"messages[{index}]: {exc}") from None
            except TypeError as exc:
                raise InvalidInput(f"messages[{index}]: {exc}") from None
    return batch


def _new_message(
    channel: ChannelInfo,
    *,
    user_id: int | str,
    username: str,
    role: str,
    content: str,
    message_id: int | str | None = None,
    timestamp: datetime | None = None,
    metadata: dict[str, Any] | None = None,
    parent_id: int | str | None = None,
    reply_to_message_id: int | str | None = None,
    attachments: list[dict[str, Any]] | None = None,
    edited_at: datetime | None = None,
    author_is_bot: bool = False,
) -> NewMessage:
    """Validate ``add_message``'s arguments into the row to store (its session still unset)."""
    _check_message_text(channel, username=username, role=role, content=content)
    if not isinstance(author_is_bot, bool):
        raise InvalidInput(f"author_is_bot must be a bool, not {type(author_is_bot).__name__}")
    # NewMessage's fields in order (its __init__ costs more than the checks above, per message).
    return new_message(
        channel.id,
        channel.name,
        channel.type,
        decimal_id(user_id, "user_id"),
        username,
        "",
        _message_id(message_id),
        role,
        content,
        _utc(timestamp),
        _metadata(metadata),
        _optional_id(parent_id, "parent_id") or channel.parent_id,
        _optional_id(reply_to_message_id, "reply_to_message_id"),
        _attachments(attachments),
        None if edited_at is None else _utc(edited_at, "edited_at"),
        author_is_bot,
    )


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a backfill builds its rows and records.

    A backfill keeps a few objects per message alive (the validated rows, then the records), none
    in a reference cycle, so no collection while they are built can free anything; yet their
    number triggers full collections over the whole heap, which measured about a fifth of a
    100,000-message backfill. Only synchronous code runs inside (no await); the collector is
    switched back on afterwards unless it was already off.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@contextmanager
def _read_only_place(config: BotConfig) -> Iterator[None]:
    """A SQLite database that cannot be opened in a read-only place is read-only, not missing."""
    try:
        yield
    except DatabaseUnavailableError as exc:
        path = config.sqlite_path
        reason = None if path is None else unwritable_reason(path)
        if reason is None:
            raise
        raise ReadOnlyDatabaseError(
            f"{config.safe_database_url}: the database is read-only: {reason}"
        ) from exc


class BotStore:
    """One bot's view of the conversation database; it never reads or writes other bots' rows."""

    def __init__(self, config: BotConfig, engine: AsyncEngine) -> None:
        self.config = config
        self.bot_name = config.name
        self.engine = engine
        self._where = config.safe_database_url
        self._runner = UnitOfWorkRunner(engine)
        self._postgresql = engine.url.get_backend_name() == "postgresql"
        # SQLite's search index takes new rows in batches (revision 0006).
        self._indexer = SearchIndexer(self._write_fenced, enabled=not self._postgresql)

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
        # work instead, which is run once more on a fresh connection (see db.retry_reason).
        engine = make_engine(
            config.database_url, synchronous=config.storage.synchronous, pool_pre_ping=False
        )
        store: BotStore | None = None
        try:
            with _read_only_place(config), translate_errors(config.safe_database_url):
                async with read_only(engine).connect() as connection:
                    await check_schema(connection, config.safe_database_url)
                    await _warn_of_legacy_files(config, connection)
            store = cls(config, engine)
            yield store
        finally:
            if store is not None:
                try:
                    await store._indexer.close()
                finally:
                    await store._runner.close()
            await engine.dispose()

    async def _write(self, work: Callable[[Connection], _T], *, small: bool = False) -> _T:
        """Run a unit of work that writes (``small``: a few statements, see the runner's write)."""
        result = await self._write_fenced(work, small=small)
        self._indexer.wrote()
        return result

    async def _write_fenced(self, work: Callable[[Connection], _T], *, small: bool = False) -> _T:
        # While `convostore restore` replaces a SQLite database its fence refuses every write;
        # wait for it like for a lock, so the write lands in the restored database.
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        while True:
            try:
                return await self._write_attempts(work, small=small)
            except DatabaseLockedError as exc:
                if RESTORE_FENCE not in str(exc.__cause__) or time.monotonic() > deadline:
                    raise
            await asyncio.sleep(_FENCE_POLL_S)

    async def _write_attempts(self, work: Callable[[Connection], _T], *, small: bool = False) -> _T:
        for attempt in range(1, max(_WRITE_ATTEMPTS, _SERIALIZATION_ATTEMPTS) + 1):
            try:
                with translate_errors(self._where):
                    return await self._runner.write(work, small=small)
            except ConvostoreError as exc:
                if not _may_retry(exc, attempt):
                    raise
            except _Retry:
                if attempt == _WRITE_ATTEMPTS:
                    raise StorageError(
                        f"{self._where}: the write kept conflicting; try again"
                    ) from None
            await _back_off(attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _read(self, work: Callable[[Connection], _T], *, small: bool = False) -> _T:
        """Run a one-statement read (``small``: of a bounded size, see the runner's read)."""
        for attempt in range(1, _WRITE_ATTEMPTS + 1):
            try:
                with translate_errors(self._where):
                    return await self._runner.read(work, small=small)
            except ConvostoreError as exc:
                if not _may_retry(exc, attempt):
                    raise
            await _back_off(attempt)
        raise AssertionError("unreachable")  # pragma: no cover

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
        parent_id: int | str | None = None,
        reply_to_message_id: int | str | None = None,
        attachments: list[dict[str, Any]] | None = None,
        edited_at: datetime | None = None,
        author_is_bot: bool = False,
    ) -> StoredMessage:
        """Store one message in the channel's current session (opening a new one if needed).

        Storing the same ``message_id`` twice keeps one row and returns the existing one.
        ``parent_id`` defaults to ``channel.parent_id`` (a thread's parent channel);
        ``attachments`` are ``{id, filename, url, content_type, size}`` dicts.
        """
        new = _new_message(
            channel,
            user_id=user_id,
            username=username,
            role=role,
            content=content,
            message_id=message_id,
            timestamp=timestamp,
            metadata=metadata,
            parent_id=parent_id,
            reply_to_message_id=reply_to_message_id,
            attachments=attachments,
            edited_at=edited_at,
            author_is_bot=author_is_bot,
        )
        return await self._add(channel, new)

    async def _add(
        self,
        channel: ChannelInfo,
        new: NewMessage,
        before: Callable[[Connection], NewMessage] | None = None,
    ) -> StoredMessage:
        """Store ``new`` in one unit of work; ``before`` may adjust it inside that unit first."""
        if before is None and self._postgresql:
            stored = await self._append_in_one_statement(new)
            if stored is not None:
                return stored

        def work(connection: Connection) -> StoredMessage:
            return self._append(connection, channel, new if before is None else before(connection))

        try:
            return await self._write(work, small=True)
        except _AlreadyStored as already:
            return already.record

    def _append(
        self, connection: Connection, channel: ChannelInfo, message: NewMessage
    ) -> StoredMessage:
        """Inside a unit of work: store one message in the channel's session that takes it.

        Hot path, two statements: count the message in the open session if it fits, then insert
        it (ON CONFLICT DO NOTHING). A message id already stored raises :class:`_AlreadyStored`,
        which rolls the unit back.
        """
        storage = self.config.storage
        messages = MessageRepository(connection, self.bot_name)
        sessions = SessionRepository(connection, self.bot_name)
        at = message.timestamp
        session_id = sessions.extend_open(
            channel.id, at, gap=storage.session_gap, max_span=storage.session_timeout
        )
        if session_id is None:
            session_id = self._start_session(sessions, channel, at)
        stored = messages.add(message, session_id)
        if stored is None:
            existing = messages.by_message_id(message.message_id)
            if existing is None:  # deleted since the conflict: store it on the next attempt
                raise _Retry
            raise _AlreadyStored(existing)
        return stored

    async def _append_all(
        self, channel: ChannelInfo, items: Sequence[Mapping[str, Any]]
    ) -> list[StoredMessage]:
        """Store new messages (``add_message``'s keywords each, ids included) in order, all or none.

        For the framework adapters: a turn's items, newer than the channel's rows, in one unit of
        work that runs :meth:`_append` for each (no recut of the channel's sessions, as
        ``add_messages`` does for a backfill). Every item is validated first; a bad one refuses
        the call with an :class:`InvalidInput` naming its index. Should a message id turn out to
        be stored already (a unit of work retried after its commit), each is stored on its own,
        idempotently, as ``add_message`` does.
        """
        news = _validated_batch(channel, items)

        def work(connection: Connection) -> list[StoredMessage]:
            return [self._append(connection, channel, message) for message in news]

        try:
            return await self._write(work, small=True)
        except _AlreadyStored:
            return [await self._add(channel, message) for message in news]

    async def _append_in_one_statement(self, new: NewMessage) -> StoredMessage | None:
        """PostgreSQL's common case, one round trip: the open session takes the message.

        ``None`` when it does not (a new session starts, the id is already stored) or the
        statement failed: nothing was changed, or the message is stored and the full unit of
        work, with its retries, finds it by its ``message_id``.
        """
        storage = self.config.storage
        params = append_to_open_params(
            self.bot_name, new, gap=storage.session_gap, max_span=storage.session_timeout
        )
        found = await self._runner.fetch_direct(*pg_driver.statement_args(APPEND_TO_OPEN, params))
        if not found:
            return None
        row_id, session_id = found[0]
        return dataclasses.replace(new, session_id=session_id).stored(row_id, self.bot_name)

    async def add_discord_message(self, message: Any, *, role: str | None = None) -> StoredMessage:
        """Store a ``discord.Message`` with everything Discord says of it.

        The channel is :meth:`ChannelInfo.from_message` (a DM named after its human, a thread
        with its parent); ``role`` is ``assistant`` when the author is this bot's own user, else
        ``user``, unless given; ``reply_to_message_id``, ``attachments``, ``edited_at`` and
        ``author_is_bot`` come from the message. Every row of a DM carries one name: a message
        that cannot tell the human (the bot's reply in a channel discord.py built without its
        recipient) takes the name the channel's rows already have, and a newly learnt name
        (a first message, a renamed user) is given to the channel's earlier rows too.
        """
        channel = ChannelInfo.from_message(message)
        new = _new_message(channel, **message_keywords(message, role=role))
        if channel.type != "dm":
            return await self._add(channel, new)

        def one_dm_name(connection: Connection) -> NewMessage:
            messages = MessageRepository(connection, self.bot_name)
            known = messages.channel_name(channel.id)
            if new.channel_name == UNKNOWN_DM_NAME:
                if known is None or known == UNKNOWN_DM_NAME:
                    return new
                return dataclasses.replace(new, channel_name=known)
            if known is not None and known != new.channel_name:
                messages.rename_channel(channel.id, new.channel_name)
            return new

        return await self._add(channel, new, before=one_dm_name)

    async def add_messages(
        self, channel: ChannelInfo, messages: Iterable[Mapping[str, Any] | Any]
    ) -> list[StoredMessage]:
        """Store many messages of one channel (a backfill), in order of ``messages``' records.

        Each item is a mapping of :meth:`add_message`'s keywords (``user_id``, ``username``,
        ``role``, ``content``, ``message_id``, ``timestamp``, ...) or a ``discord.Message`` (read
        as :meth:`add_discord_message` does, e.g. from ``channel.history()``). They may come in
        any order and be older than what the channel holds: the sessions around them are
        recomputed, so every session of the channel keeps to the gap/timeout rule with exact
        counts. A message id this bot already stored is not stored again (its record is
        returned), so a rerun adds nothing. Everything is validated first: one bad item refuses
        the whole call with an :class:`InvalidInput` naming its index, and nothing is stored.
        Then one transaction per :data:`BACKFILL_BATCH` messages.
        """
        if not isinstance(channel, ChannelInfo):
            raise InvalidInput(f"channel must be a ChannelInfo, not {type(channel).__name__}")
        if isinstance(messages, str | bytes | Mapping) or not hasattr(messages, "__iter__"):
            raise InvalidInput(
                f"messages must be an iterable of mappings, not {type(messages).__name__}"
            )
        batch = _validated_batch(channel, messages)
        storage = self.config.storage
        records: dict[str, StoredMessage] = {}
        unique = list({new.message_id: new for new in reversed(batch)}.values())[::-1]
        created_since_analyze = 0
        for start in range(0, len(unique), BACKFILL_BATCH):
            part = unique[start : start + BACKFILL_BATCH]

            def work(
                connection: Connection,
                part: list[NewMessage] = part,
                since: int = created_since_analyze,
            ) -> tuple[list[StoredMessage], int, bool]:
                messages = MessageRepository(connection, self.bot_name)
                known = messages.stored_ids([new.message_id for new in part])
                # Full records only for the ids stored before (a rerun), not on a first backfill.
                stored = messages.by_message_ids(sorted(known)) if known else []
                fresh = [new for new in part if new.message_id not in known]
                with _collector_paused():
                    stored_batch = store_batch(
                        connection,
                        self.bot_name,
                        channel.id,
                        fresh,
                        gap=storage.session_gap,
                        timeout=storage.session_timeout,
                    )
                created = stored_batch.sessions_created
                analyze = self._postgresql and sessions_analyze_due(connection, since + created)
                return stored + stored_batch.records, created, analyze

            stored, created, analyze = await self._write(work)
            created_since_analyze += created
            # Outside the batch's transaction (ANALYZE holds its lock until commit). A failure
            # leaves the statistics to autovacuum; so does a role that does not own the table
            # (PostgreSQL only warns).
            if analyze and await self._runner.fetch_direct(ANALYZE_SESSIONS, []) is not None:
                created_since_analyze = 0
            for record in stored:
                records[record.message_id] = record
        return [records[new.message_id] for new in batch]

    async def edit_message(
        self,
        message_id: int | str,
        *,
        content: str,
        edited_at: datetime | None = None,
    ) -> StoredMessage | None:
        """Replace a stored message's content, keeping the earlier version (see :meth:`revisions`).

        ``edited_at`` (default now) becomes the record's ``edited_at``. Returns the updated record,
        or ``None`` for a message this bot never stored (or deleted). An edit that leaves the
        content as it is (Discord sends edit events when embeds load) changes nothing, and so does
        one older than the stored ``edited_at`` (an edit event delivered late).
        """
        msg_id = decimal_id(message_id, "message_id")
        if not isinstance(content, str):
            raise InvalidInput(f"content must be a str, not {type(content).__name__}")
        _storable_text(content=content)
        at = _utc(edited_at, "edited_at")

        def work(connection: Connection) -> StoredMessage | None:
            current = MessageRepository(connection, self.bot_name).by_message_id(msg_id)
            if current is None or current.content == content:
                return current
            if current.edited_at is not None and at < current.edited_at:
                return current
            LifecycleRepository(connection, self.bot_name).edit(
                current.id,
                old_content=current.content,
                old_edited_at=current.edited_at,
                content=content,
                edited_at=at,
            )
            return dataclasses.replace(current, content=content, edited_at=at)

        return await self._write(work)

    async def revisions(self, message_id: int | str) -> list[MessageRevision]:
        """The earlier versions of a stored message, oldest first (empty if never edited)."""
        msg_id = decimal_id(message_id, "message_id")

        def work(connection: Connection) -> list[MessageRevision]:
            return LifecycleRepository(connection, self.bot_name).revisions(msg_id)

        return await self._read(work)

    async def delete_messages(self, message_ids: int | str | Iterable[int | str]) -> int:
        """Delete messages of this bot (one id, or many: the bulk-delete event); how many were.

        Their earlier versions go with them, the content is gone from the database (rows are
        deleted, not flagged), and each session keeps an exact ``message_count``; a session left
        without messages is deleted. Ids this bot never stored are ignored, and another bot's
        rows are never touched. One transaction: all of them or none.
        """
        if isinstance(message_ids, int | str):
            ids = [decimal_id(message_ids, "message_id")]
        else:
            try:
                ids = [
                    decimal_id(value, f"message_ids[{i}]") for i, value in enumerate(message_ids)
                ]
            except TypeError:
                raise InvalidInput(
                    f"message_ids must be an id or an iterable of ids, not "
                    f"{type(message_ids).__name__}"
                ) from None
        unique = sorted(set(ids))
        if not unique:
            return 0

        def work(connection: Connection) -> int:
            return LifecycleRepository(connection, self.bot_name).delete(unique)

        return await self._write(work)

    async def forget_user(self, user_id: int | str) -> int:
        """Erase everything this bot stores about a user; the number of messages erased.

        Erased, in one transaction: the user's messages in every channel; their own DM
        channels entirely (the bot's replies there too), that is every DM they wrote in where no
        other human wrote, and DMs named after them (``{username}_{user_id}``); the earlier
        versions of all those messages; and their username in the names of group DMs that
        remain (replaced by ``deleted-user``). Other people's messages that mention the user are
        content and stay. Sessions keep exact counts; emptied ones are deleted. Backups still
        hold the data until they rotate out (see docs/discord.md).
        """
        user = decimal_id(user_id, "user_id")

        def work(connection: Connection) -> int:
            return LifecycleRepository(connection, self.bot_name).forget(user)

        return await self._write(work)

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
        count = self._history_limit(limit)
        if max_tokens is not None and (
            isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 0
        ):
            raise InvalidInput(f"max_tokens must be a non-negative int, got {max_tokens!r}")
        if count_tokens is not None and not callable(count_tokens):
            raise InvalidInput("count_tokens must be a callable taking a str and returning an int")
        user = None if user_id is None else decimal_id(user_id, "user_id")
        if count == 0 or max_tokens == 0:
            return []
        newest_first = await self._newest(channel, count, user, session_id)
        if max_tokens is not None:
            return _within_budget(newest_first, max_tokens, count_tokens or estimate_tokens)
        newest_first.reverse()
        return newest_first

    async def history_items(
        self, channel: ChannelInfo, limit: int | None = None, *, user_id: int | str | None = None
    ) -> list[HistoryItem]:
        """The messages :meth:`history` returns, oldest first, as :class:`HistoryItem` tuples.

        ``(message_id, role, content, metadata)`` of each: what a framework memory hands to its
        model, read without the other columns (the OpenAI Agents SDK and LangChain adapters use
        it). Same rows, same order, same legacy read fallback as :meth:`history`.
        """
        count = self._history_limit(limit)
        user = None if user_id is None else decimal_id(user_id, "user_id")
        if count == 0:
            return []

        def work(connection: Connection) -> list[HistoryItem]:
            return MessageRepository(connection, self.bot_name).newest_items(
                channel.id, count, user_id=user
            )

        found = await self._newest_direct(
            channel, count, user, None, select_sql=ITEM_SELECT_ASYNCPG
        )
        if found is not None:
            items = items_from_driver_rows(found)
        else:
            items = await self._read(work, small=count <= SMALL_READ_ROWS)
        if not items and self.config.legacy.read_fallback:
            legacy = await self._legacy_newest(channel, count, user)
            items = [HistoryItem(m.message_id, m.role, m.content, m.metadata) for m in legacy]
        items.reverse()
        return items

    def _history_limit(self, limit: int | None) -> int:
        count = self.config.storage.max_history if limit is None else limit
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise InvalidInput(f"limit must be a non-negative int, got {limit!r}")
        return count

    async def _newest(
        self, channel: ChannelInfo, count: int, user: str | None, session_id: str | None
    ) -> list[StoredMessage]:
        """The newest ``count`` messages, newest first (the legacy files while not imported)."""

        def work(connection: Connection) -> list[StoredMessage]:
            return MessageRepository(connection, self.bot_name).newest(
                channel.id, count, user_id=user, session_id=session_id
            )

        found = await self._newest_direct(channel, count, user, session_id)
        if found is not None:
            rows = messages_from_asyncpg_rows(found, self.bot_name, channel.id)
        else:
            rows = await self._read(work, small=count <= SMALL_READ_ROWS)
        if not rows and session_id is None and self.config.legacy.read_fallback:
            return await self._legacy_newest(channel, count, user)
        return rows

    async def _newest_direct(
        self,
        channel: ChannelInfo,
        count: int,
        user: str | None,
        session_id: str | None,
        *,
        select_sql: str = ASYNCPG_SELECT,
    ) -> list[Any] | None:
        """PostgreSQL: the rows of the newest-messages read (``select_sql``'s columns), newest
        first, as one statement straight on asyncpg; ``None``: run the general path (SQLite, or
        the statement failed, see ``fetch_direct``)."""
        if not self._postgresql:
            return None
        sql = newest_driver_sql(
            by_user=user is not None,
            by_session=session_id is not None,
            select_sql=select_sql,
            numbered=True,
        )
        params = newest_driver_params(self.bot_name, channel.id, count, user, session_id)
        return await self._runner.fetch_direct(sql, params)

    async def _legacy_newest(
        self, channel: ChannelInfo, count: int, user: str | None
    ) -> list[StoredMessage]:
        """Not imported yet: the JSON files, read-only, as the import would store them (newest
        first)."""
        from convostore.legacy.transition import legacy_history

        legacy = await asyncio.to_thread(legacy_history, self.config, channel, count, user)
        legacy.reverse()
        return legacy

    async def search(
        self,
        query: str,
        *,
        channel: ChannelInfo | int | str | None = None,
        user_id: int | str | None = None,
        since: datetime | None = None,
        limit: int = 20,
    ) -> list[SearchHit]:
        """This bot's messages containing every word and ``"quoted phrase"`` of ``query``.

        The most recently stored matches first (a search reads only as far as ``limit`` matches,
        however common the words). ``channel`` (a ``ChannelInfo`` or a channel id),
        ``user_id`` and ``since`` (aware datetime, inclusive) narrow the search. The query is
        text, never the database's query syntax: see :mod:`convostore.search`. Legacy JSON
        files that are not imported yet are not searched.
        """
        terms = query_terms(query)
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise InvalidInput(f"limit must be a non-negative int, got {limit!r}")
        if isinstance(channel, ChannelInfo):
            channel_id: str | None = channel.id
        else:
            channel_id = None if channel is None else decimal_id(channel, "channel")
        user = None if user_id is None else decimal_id(user_id, "user_id")
        if since is not None and (not isinstance(since, datetime) or since.utcoffset() is None):
            raise InvalidInput(f"since must be a timezone-aware datetime, got {since!r}")
        after = None if since is None else since.astimezone(UTC)
        if not terms or limit == 0:
            return []

        def work(connection: Connection) -> list[StoredMessage]:
            return SearchRepository(connection, self.bot_name).search(
                terms, channel_id=channel_id, user_id=user, since=after, limit=limit
            )

        return [
            SearchHit(
                message=message,
                snippet=snippet(message.content, terms),
                rank=relevance(message.content, terms),
            )
            for message in await self._read(work)
        ]

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

    @asynccontextmanager
    async def orm_session(self) -> AsyncIterator[AsyncDBSession]:
        """An ORM session (SQLAlchemy ``AsyncSession``) on the store's database, for the bot's own
        queries over :mod:`convostore.models`.

        The session never expires loaded objects on commit (no implicit IO afterwards) and is
        closed on exit; it commits only when the caller calls ``commit()``. It sees every bot's
        rows of a shared database: filter with :meth:`own` so that a query keeps to this bot's.
        """
        async with session_factory(self.engine)() as db_session:
            yield db_session

    def own(self, model: type[Any]) -> ColumnElement[bool]:
        """``model.bot_name == this bot``: the filter that keeps an ORM query to the bot's rows."""
        return cast(ColumnElement[bool], model.bot_name == self.bot_name)
