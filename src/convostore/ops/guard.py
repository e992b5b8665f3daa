"""Guarded schema upgrades of SQLite databases, and the set-up of a new SQLite file.

Before Alembic migrates a SQLite database that holds conversations or sessions, a verified backup
is taken with :mod:`convostore.ops.backup`: to the ``storage.backups`` directory of the bots using
that database, or to a ``backups`` folder beside the database when no config names it. The
migration itself runs in one transaction (see ``alembic/env.py``), so a failed upgrade leaves the
database as it was; the backup is there for what a transaction cannot undo (a bad data revision
that commits, a disk that fails).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from convostore.config import DEFAULT_BACKUP_KEEP, BotConfig
from convostore.errors import OperationError, ReadOnlyDatabaseError
from convostore.ops.backup import BackupResult, backup_sqlite
from convostore.sqlite_files import unwritable_reason


def prepare_new_sqlite(path: Path) -> bool:
    """Give a new (table-less) SQLite file ``auto_vacuum = INCREMENTAL`` and WAL; True if done.

    ``auto_vacuum`` can only change before the first table exists (or with a VACUUM, which is
    instant on an empty file); with it, a cleanup gives freed pages back to the file system.
    """
    if path.is_file():
        reason = unwritable_reason(path)
        if reason is not None:
            raise ReadOnlyDatabaseError(f"{path}: the database is read-only: {reason}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    except (OSError, sqlite3.Error) as exc:
        raise OperationError(f"{path}: cannot create the database file: {exc}") from exc
    try:
        if conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
            return False
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
        conn.execute("VACUUM")
        conn.execute("PRAGMA journal_mode = WAL").fetchall()
        return True
    except sqlite3.Error as exc:
        raise OperationError(f"{path}: cannot prepare the new database: {exc}") from exc
    finally:
        conn.close()


def holds_data(connection: Connection) -> bool:
    """Whether the database has any conversations or sessions rows."""
    inspector = inspect(connection)
    for table in ("conversations", "sessions"):
        if (
            inspector.has_table(table)
            and connection.execute(text(f"SELECT EXISTS (SELECT 1 FROM {table})")).scalar()
        ):
            return True
    return False


def backup_target(database: Path, bots: Mapping[str, BotConfig]) -> tuple[Path, int]:
    """(directory, keep) for the automatic backup of ``database``.

    The first bot (by name) that uses the database and names a backup directory decides; without
    one the backups go to ``backups/`` beside the database.
    """
    if bots:
        backups = bots[min(bots)].storage.backups
        return Path(backups.dir), backups.keep
    return database.absolute().parent / "backups", DEFAULT_BACKUP_KEEP


def backup_before_upgrade(
    database: Path, bots: Mapping[str, BotConfig], *, now: datetime | None = None
) -> BackupResult:
    """Take the verified backup of ``database`` that precedes a migration."""
    directory, keep = backup_target(database, bots)
    return backup_sqlite(database, directory, keep=keep, now=now)
