"""The translation of SQLAlchemy and driver errors into the convostore error tree.

Engines and their SQLite pragmas are in :mod:`convostore.engine`; the runner of units of work
(group commit, the read path) is in :mod:`convostore.unit_of_work`.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError

from convostore.config import redact_url
from convostore.engine import BUSY_TIMEOUT_MS
from convostore.errors import (
    ConvostoreError,
    DatabaseLockedError,
    DatabaseUnavailableError,
    InvalidInput,
    ReadOnlyDatabaseError,
    SchemaError,
    StorageError,
)

# What a write meets while ``convostore restore`` replaces a SQLite database (ops/restore.py):
# it is refused, never acknowledged and then overwritten; the store waits and tries again.
RESTORE_FENCE = "convostore restore in progress"


def _describe(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


# Unique keys that two writers hit at the same moment while both do nothing wrong (PostgreSQL,
# READ COMMITTED): both open the channel's session, both start one in the same second, both store
# the same message id. The loser's unit of work runs again and finds the winner's row. Any other
# constraint violation is a bad value, which a second attempt would only repeat.
RACE_KEYS = frozenset(
    {
        "uq_sessions_one_active",
        "uq_sessions_bot_name_channel_id_session_id",
        "uq_conversations_bot_name_message_id",
    }
)
# SQLite names a violated unique index by its columns, not its name.
_SQLITE_UNIQUE_COLUMNS = {
    "sessions.bot_name, sessions.channel_id": "uq_sessions_one_active",
    "sessions.bot_name, sessions.channel_id, sessions.session_id": (
        "uq_sessions_bot_name_channel_id_session_id"
    ),
    "conversations.bot_name, conversations.message_id": "uq_conversations_bot_name_message_id",
}
_PG_CONSTRAINT = re.compile(r'constraint "([^"]+)"')
_SQLITE_CONSTRAINT = re.compile(r"^(UNIQUE|CHECK|NOT NULL|FOREIGN KEY) constraint failed:?\s*(.*)$")
# SQLSTATEs worth a second attempt: serialization failure, deadlock, and the server ending the
# connection (admin shutdown, crash shutdown, cannot connect now).
_TRANSIENT_SQLSTATES = frozenset({"40001", "40P01", "57P01", "57P02", "57P03"})


def _sqlstate(exc: BaseException) -> str | None:
    orig = getattr(exc, "orig", None) or exc
    for candidate in (orig, getattr(orig, "__cause__", None)):
        code = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)
        if isinstance(code, str):
            return code
    return None


def violated_constraint(exc: BaseException) -> str | None:
    """The name (or, without one, the description) of the constraint ``exc`` violates."""
    if not isinstance(exc, IntegrityError):
        return None
    orig = exc.orig
    for candidate in (orig, getattr(orig, "__cause__", None)):
        name = getattr(candidate, "constraint_name", None)  # asyncpg
        if isinstance(name, str) and name:
            return name
        diag = getattr(candidate, "diag", None)  # psycopg
        name = getattr(diag, "constraint_name", None)
        if isinstance(name, str) and name:
            return name
    message = _describe(exc)
    found = _PG_CONSTRAINT.search(message)
    if found:
        return found.group(1)
    sqlite = _SQLITE_CONSTRAINT.match(message)
    if sqlite:
        kind, detail = sqlite.groups()
        if kind == "UNIQUE" and detail in _SQLITE_UNIQUE_COLUMNS:
            return _SQLITE_UNIQUE_COLUMNS[detail]
        if kind == "CHECK" and detail:
            return detail
        return f"{kind} ({detail})" if detail else kind
    return None


def retry_reason(exc: BaseException) -> str | None:
    """Why a failed unit of work may succeed when run again, or None when it cannot.

    ``"locked"`` (SQLite busy past the timeout), ``"conflict"`` (PostgreSQL serialization failure
    40001 or deadlock 40P01), ``"disconnected"`` (the server dropped the connection: the pool is
    invalidated and the next attempt connects afresh), ``"race"`` (a unique key of
    :data:`RACE_KEYS`). Everything else, constraint violations above all, fails at once.
    """
    cause = exc.__cause__ if isinstance(exc, ConvostoreError) else exc
    if cause is None:
        return None
    if isinstance(cause, IntegrityError):
        return "race" if violated_constraint(cause) in RACE_KEYS else None
    if isinstance(cause, DBAPIError) and cause.connection_invalidated:
        return "disconnected"
    code = _sqlstate(cause)
    if code in ("40001", "40P01"):
        return "conflict"
    if code in _TRANSIENT_SQLSTATES:
        return "disconnected"
    lowered = _describe(cause).lower()
    if "database is locked" in lowered or "database is busy" in lowered:
        return "locked"
    return None


@contextlib.contextmanager
def translate_errors(where: str) -> Iterator[None]:
    """Turn SQLAlchemy and driver errors into the convostore tree; ``where`` names the database."""
    try:
        yield
    except (OperationalError, InterfaceError, DBAPIError) as exc:
        raise translate(exc, where) from exc
    except OSError as exc:
        raise DatabaseUnavailableError(
            f"{where}: cannot reach the database: {exc.strerror or exc}"
        ) from exc


def translate(exc: BaseException, where: str) -> ConvostoreError:
    """The convostore error for a SQLAlchemy/driver error raised while working on ``where``.

    A constraint violation is the caller's value, not the database's failure: it becomes
    :class:`InvalidInput` naming the constraint.
    """
    detail = redact_url(where) if "://" in where else where
    message = _describe(exc)
    lowered = message.lower()
    if RESTORE_FENCE in message:
        return DatabaseLockedError(
            f"{detail}: a restore is replacing the database; the write was not stored, try again"
        )
    if isinstance(exc, IntegrityError):
        constraint = violated_constraint(exc) or "unknown"
        return InvalidInput(f"{detail}: the value breaks the constraint {constraint}: {message}")
    if "database is locked" in lowered or "database is busy" in lowered:
        return DatabaseLockedError(
            f"{detail}: the database stayed locked by another process for over "
            f"{BUSY_TIMEOUT_MS // 1000} s"
        )
    if "readonly database" in lowered or "read-only" in lowered:
        return ReadOnlyDatabaseError(f"{detail}: the database file or its directory is read-only")
    if "file is not a database" in lowered or "disk image is malformed" in lowered:
        return StorageError(
            f"{detail}: the database file is damaged ({message}); run `convostore doctor`, then "
            "`convostore restore` a backup (it keeps the damaged file aside)"
        )
    if "unable to open database" in lowered:
        return DatabaseUnavailableError(f"{detail}: cannot open the database file")
    if "no such table" in lowered or ("relation" in lowered and "does not exist" in lowered):
        return SchemaError(
            f"{detail}: the database has no convostore schema; run `convostore upgrade` "
            "(or `alembic upgrade head`)"
        )
    if any(
        word in lowered
        for word in ("connection refused", "could not connect", "connect call failed")
    ):
        return DatabaseUnavailableError(f"{detail}: cannot connect to the database server")
    if "database" in lowered and "does not exist" in lowered:
        return DatabaseUnavailableError(f"{detail}: the database does not exist")
    if "disk is full" in lowered or "disk full" in lowered:
        return StorageError(f"{detail}: the disk is full")
    code = _sqlstate(exc)
    if code == "40001":
        return StorageError(f"{detail}: the transaction kept conflicting with others (40001)")
    if code == "40P01":
        return StorageError(f"{detail}: the transaction kept deadlocking with others (40P01)")
    return StorageError(f"{detail}: {message}")
