"""The translation of SQLAlchemy and driver errors into the convostore error tree.

Engines and their SQLite pragmas are in :mod:`convostore.engine`; the runner of units of work
(group commit, the read path) is in :mod:`convostore.unit_of_work`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError

from convostore.config import redact_url
from convostore.engine import BUSY_TIMEOUT_MS
from convostore.errors import (
    DatabaseLockedError,
    DatabaseUnavailableError,
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


def translate(exc: BaseException, where: str) -> StorageError:
    """The convostore error for a SQLAlchemy/driver error raised while working on ``where``."""
    detail = redact_url(where) if "://" in where else where
    message = _describe(exc)
    lowered = message.lower()
    if RESTORE_FENCE in message:
        return DatabaseLockedError(
            f"{detail}: a restore is replacing the database; the write was not stored, try again"
        )
    if isinstance(exc, IntegrityError):
        return StorageError(f"{detail}: integrity error: {message}")
    if "database is locked" in lowered or "database is busy" in lowered:
        return DatabaseLockedError(
            f"{detail}: the database stayed locked by another process for over "
            f"{BUSY_TIMEOUT_MS // 1000} s"
        )
    if "readonly database" in lowered or "read-only" in lowered:
        return ReadOnlyDatabaseError(f"{detail}: the database file or its directory is read-only")
    if "unable to open database" in lowered:
        return DatabaseUnavailableError(f"{detail}: cannot open the database file")
    if "no such table" in lowered or ("relation" in lowered and "does not exist" in lowered):
        return SchemaError(
            f"{detail}: the database has no convostore schema; run `alembic upgrade head`"
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
    return StorageError(f"{detail}: {message}")
