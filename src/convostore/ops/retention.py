"""Retention: delete a bot's sessions (with their messages) whose last activity is too old.

Deletion runs in batches, one short transaction each, so bots writing to the same SQLite file
wait at most one batch for the write lock. Only the configured bot's rows are ever touched.

Disk space (SQLite): a file created with ``auto_vacuum = INCREMENTAL`` (every file ``alembic
upgrade`` creates) gets its freed pages back with ``PRAGMA incremental_vacuum``, in short
transactions of :data:`VACUUM_PAGES_PER_STEP` pages, then a WAL checkpoint shrinks the files. An
older file without it keeps its size unless ``vacuum=True`` rewrites it with ``VACUUM`` (which also
turns ``auto_vacuum`` on for later cleanups).
"""

from __future__ import annotations

import asyncio
import functools
import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Table, and_, delete, exists, func, or_, select, text, tuple_
from sqlalchemy.engine import Connection
from sqlalchemy.sql import Select
from sqlalchemy.sql.expression import Exists

from convostore.config import BotConfig
from convostore.db import translate_errors
from convostore.engine import make_engine
from convostore.errors import InvalidInput, OperationError
from convostore.models import ChatSessionModel, ConversationModel
from convostore.unit_of_work import UnitOfWorkRunner

_S = cast(Table, ChatSessionModel.__table__)
_C = cast(Table, ConversationModel.__table__)

_UNITS = {"d": 86400, "h": 3600, "m": 60, "w": 7 * 86400}
# About 8 MB of 4 KiB pages per transaction: bots wait for the write lock a few ms at a time.
VACUUM_PAGES_PER_STEP = 2000


def parse_age(value: str) -> timedelta:
    """``90d``, ``12h``, ``30m``, ``2w`` (or a bare number of days) as a duration."""
    match = re.fullmatch(r"\s*(\d+)\s*([dhmw]?)\s*", value)
    if not match or int(match.group(1)) <= 0:
        raise InvalidInput(f"{value!r} is not an age such as 90d, 12h or 2w")
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2) or "d"])


@dataclass(frozen=True)
class DoomedSession:
    channel_id: str
    channel_type: str
    session_id: str
    last_activity: datetime
    message_count: int


@dataclass(frozen=True)
class SpaceReclaimed:
    """How the database gave disk space back, and its size (file + WAL) before and after."""

    method: str  # "incremental_vacuum", "VACUUM", "auto_vacuum full", "none" or "VACUUM ANALYZE"
    bytes_before: int | None = None
    bytes_after: int | None = None


@dataclass(frozen=True)
class CleanupResult:
    bot_name: str
    cutoffs: dict[str, datetime | None]
    sessions: int
    messages: int
    dry_run: bool
    doomed: tuple[DoomedSession, ...] = ()
    space: SpaceReclaimed | None = None


def _file_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())


def reclaim_sqlite_space(
    path: Path, *, vacuum: bool = False, before: int | None = None
) -> SpaceReclaimed:
    """Give the free pages of a SQLite file back to the file system (see the module docstring)."""
    before = _file_bytes(path) if before is None else before
    try:
        conn = sqlite3.connect(path, timeout=30, isolation_level=None)
        try:
            mode = int(conn.execute("PRAGMA auto_vacuum").fetchone()[0])
            if vacuum:
                if mode != 2:
                    conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
                conn.execute("VACUUM")
                method = "VACUUM"
            elif mode == 2:
                method = "incremental_vacuum"
                free = int(conn.execute("PRAGMA freelist_count").fetchone()[0])
                while free:
                    # executescript steps the pragma to its end: execute() would free one page.
                    conn.executescript(
                        "BEGIN IMMEDIATE; "
                        f"PRAGMA incremental_vacuum({VACUUM_PAGES_PER_STEP}); COMMIT;"
                    )
                    left = int(conn.execute("PRAGMA freelist_count").fetchone()[0])
                    if left >= free:
                        break
                    free = left
            else:
                method = "auto_vacuum full" if mode == 1 else "none"
            # The file shrinks when the WAL is checkpointed; do not wait long for readers.
            conn.execute("PRAGMA busy_timeout = 200")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise OperationError(
            f"{path}: the rows are deleted but giving disk space back failed: {exc}"
        ) from exc
    return SpaceReclaimed(method, before, _file_bytes(path))


def cutoffs_for(
    config: BotConfig, older_than: timedelta | None, now: datetime
) -> dict[str, datetime | None]:
    """Cutoff per channel type: the flag for both, else YAML retention (per type, then fallback)."""
    if older_than is not None:
        return {"channel": now - older_than, "dm": now - older_than}
    retention = config.storage.retention
    days = {
        "channel": retention.channels_max_age_days or retention.max_age_days,
        "dm": retention.dms_max_age_days or retention.max_age_days,
    }
    return {kind: None if d is None else now - timedelta(days=d) for kind, d in days.items()}


def _is_dm() -> Exists:
    return exists().where(
        _C.c.bot_name == _S.c.bot_name,
        _C.c.channel_id == _S.c.channel_id,
        _C.c.channel_type == "dm",
    )


def doomed_sessions_query(
    bot: str, cutoffs: dict[str, datetime | None], *, details: bool = True
) -> Select[Any]:
    """The bot's sessions last active before their type's cutoff (``{"channel": …, "dm": …}``).

    Oldest first; with ``details``, each row also carries its message count and whether it is a DM.
    """
    is_dm = _is_dm()
    clauses = []
    if cutoffs["channel"] == cutoffs["dm"]:
        # one cutoff for both types: no need for the DM test in the filter (it is costly)
        clauses.append(_S.c.last_activity < cutoffs["dm"])
    elif cutoffs["channel"] is not None:
        clauses.append(and_(~is_dm, _S.c.last_activity < cutoffs["channel"]))
    if cutoffs["dm"] is not None and cutoffs["channel"] != cutoffs["dm"]:
        clauses.append(and_(is_dm, _S.c.last_activity < cutoffs["dm"]))
    if not details:
        return (
            select(_S.c.id, _S.c.channel_id, _S.c.session_id)
            .where(_S.c.bot_name == bot, or_(*clauses))
            .order_by(_S.c.last_activity, _S.c.id)
        )
    return (
        select(
            _S.c.id,
            _S.c.channel_id,
            _S.c.session_id,
            _S.c.last_activity,
            # the rows that would really go, not the session's counter
            select(func.count())
            .where(
                _C.c.bot_name == _S.c.bot_name,
                _C.c.channel_id == _S.c.channel_id,
                _C.c.session_id == _S.c.session_id,
            )
            .scalar_subquery()
            .label("message_count"),
            is_dm.label("is_dm"),
        )
        .where(_S.c.bot_name == bot, or_(*clauses))
        .order_by(_S.c.last_activity, _S.c.id)
    )


async def doomed_sessions(
    config: BotConfig, *, older_than: timedelta | None = None, now: datetime | None = None
) -> int:
    """How many of the bot's sessions :func:`cleanup` would delete now (one cheap count)."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    cutoffs = cutoffs_for(config, older_than, now)
    if cutoffs["channel"] is None and cutoffs["dm"] is None:
        return 0
    query = doomed_sessions_query(config.name, cutoffs, details=False).order_by(None).subquery()
    engine = make_engine(config.database_url, null_pool=True)
    transactions = UnitOfWorkRunner(engine)
    try:
        with translate_errors(f"cleanup of {config.name} on {config.safe_database_url}"):
            return int(
                await transactions.read(
                    lambda c: c.execute(select(func.count()).select_from(query)).scalar_one()
                )
            )
    finally:
        await transactions.close()
        await engine.dispose()


async def _list_doomed(
    transactions: UnitOfWorkRunner, bot: str, cutoffs: dict[str, datetime | None]
) -> tuple[DoomedSession, ...]:
    """The sessions a cleanup would delete, with their message counts (a dry run)."""
    rows = await transactions.read(lambda c: c.execute(doomed_sessions_query(bot, cutoffs)).all())
    return tuple(
        DoomedSession(
            r.channel_id,
            "dm" if r.is_dm else "channel",
            r.session_id,
            r.last_activity,
            r.message_count,
        )
        for r in rows
    )


def _delete_batch(
    connection: Connection, bot: str, cutoffs: dict[str, datetime | None], batch_size: int
) -> tuple[int, int]:
    """Delete the oldest ``batch_size`` doomed sessions and their messages; how many of each."""
    query = doomed_sessions_query(bot, cutoffs, details=False).limit(batch_size)
    rows = connection.execute(query).all()
    if not rows:
        return 0, 0
    keys = [(r.channel_id, r.session_id) for r in rows]
    messages = connection.execute(
        delete(_C).where(_C.c.bot_name == bot, tuple_(_C.c.channel_id, _C.c.session_id).in_(keys))
    ).rowcount
    connection.execute(delete(_S).where(_S.c.id.in_([r.id for r in rows])))
    return len(rows), int(messages or 0)


async def _delete_doomed(
    transactions: UnitOfWorkRunner,
    bot: str,
    cutoffs: dict[str, datetime | None],
    batch_size: int,
    progress: Callable[[int], None] | None,
) -> tuple[int, int]:
    """Delete every doomed session, a short transaction per batch; sessions and messages gone."""
    sessions = messages = 0
    while True:
        done, gone = await transactions.write(
            functools.partial(_delete_batch, bot=bot, cutoffs=cutoffs, batch_size=batch_size)
        )
        if not done:
            return sessions, messages
        sessions += done
        messages += gone
        if progress is not None:
            progress(done)


async def cleanup(
    config: BotConfig,
    *,
    older_than: timedelta | None = None,
    dry_run: bool = False,
    now: datetime | None = None,
    batch_size: int = 500,
    progress: Callable[[int], None] | None = None,
    vacuum: bool = False,
) -> CleanupResult:
    """Delete (or with ``dry_run`` list) the bot's sessions older than the cutoffs.

    After a deletion, SQLite files give the space back (``vacuum`` rewrites the whole file, even
    when nothing was deleted); on PostgreSQL ``vacuum`` runs ``VACUUM ANALYZE`` on both tables.
    """
    now = (now or datetime.now(UTC)).astimezone(UTC)
    cutoffs = cutoffs_for(config, older_than, now)
    bot = config.name
    path = config.sqlite_path
    before = _file_bytes(path) if path is not None and path.exists() and not dry_run else None
    if cutoffs["channel"] is None and cutoffs["dm"] is None:
        if not vacuum or dry_run:
            return CleanupResult(bot, cutoffs, 0, 0, dry_run)
        space = await _reclaim(config, vacuum=True, before=before)
        return CleanupResult(bot, cutoffs, 0, 0, dry_run, space=space)
    engine = make_engine(
        config.database_url, synchronous=config.storage.synchronous, null_pool=True
    )
    transactions = UnitOfWorkRunner(engine)
    where = f"cleanup of {bot} on {config.safe_database_url}"
    try:
        with translate_errors(where):
            if dry_run:
                doomed = await _list_doomed(transactions, bot, cutoffs)
                return CleanupResult(
                    bot, cutoffs, len(doomed), sum(d.message_count for d in doomed), True, doomed
                )
            sessions, messages = await _delete_doomed(
                transactions, bot, cutoffs, batch_size, progress
            )
    finally:
        await transactions.close()
        await engine.dispose()
    space = await _reclaim(config, vacuum=vacuum, before=before) if sessions or vacuum else None
    return CleanupResult(bot, cutoffs, sessions, messages, False, space=space)


async def _reclaim(config: BotConfig, *, vacuum: bool, before: int | None) -> SpaceReclaimed | None:
    path = config.sqlite_path
    if path is not None:
        return await asyncio.to_thread(reclaim_sqlite_space, path, vacuum=vacuum, before=before)
    if not vacuum:
        return None  # autovacuum makes the space reusable
    engine = make_engine(config.database_url, null_pool=True)
    try:
        with translate_errors(f"VACUUM on {config.safe_database_url}"):
            async with engine.connect() as connection:
                await connection.execution_options(isolation_level="AUTOCOMMIT")
                await connection.execute(text("VACUUM (ANALYZE) conversations, sessions"))
    finally:
        await engine.dispose()
    return SpaceReclaimed("VACUUM ANALYZE")


async def close_sessions(config: BotConfig, now: datetime | None = None) -> int:
    """Close the bot's open sessions past their gap or timeout; return how many."""
    from convostore.store import BotStore

    async with BotStore.open(config) as store:
        return await store.close_expired_sessions(now)
