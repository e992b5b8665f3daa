"""Restore a SQLite database from a verified backup, safely beside running bots.

The backup is copied *into* the live database with SQLite's online backup API, through a
connection on the live file: the copy takes the write lock like any writer, replaces every page in
one transaction, and every connection that has the file open sees the restored content at its next
transaction. Nothing is renamed or deleted under an open connection.

In order:

1. the backup file is verified (integrity check, a schema revision this code knows);
2. free space is checked for the safety copy and the WAL the copy writes;
3. a fence goes up: triggers on every table make any write fail with
   :data:`convostore.db.RESTORE_FENCE`, committed after ``BEGIN IMMEDIATE``. From then on no write
   can be acknowledged and then overwritten; the store waits for the fence to go (see
   ``BotStore``), so a bot's write made during the restore lands in the restored database;
4. the safety copy of the live database is taken (backup API), without the fence;
5. the backup is copied into the live database in one step; the fence goes with the old pages.

If step 4 or 5 fails the fence is taken down again and the live database is as it was.

A database SQLite cannot read any more (corrupt header, truncated file) cannot receive the backup
API's pages. It is kept aside as ``NAME.corrupt-YYYYmmdd-HHMMSS`` (with its ``-wal``) and replaced
by the backup, but only when no process has it open (looked up in ``/proc``); otherwise restore
refuses and says which processes to stop.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from convostore.db import RESTORE_FENCE
from convostore.errors import OperationError
from convostore.ops.backup import disk_full, remove_with_side_files, verify_sqlite

# How long restore waits for a bot's write transaction to finish before it gives up.
LOCK_TIMEOUT_S = 30.0
FENCE_PREFIX = "convostore_restore_fence_"
_SIDE_FILES = ("-wal", "-shm", "-journal")


def _check_space(backup: Path, database: Path) -> None:
    """Refuse before touching anything when the safety copy and the copy's WAL cannot fit."""
    live = sum(
        Path(str(database) + suffix).stat().st_size
        for suffix in ("", "-wal")
        if Path(str(database) + suffix).exists()
    )
    needed = live + 2 * backup.stat().st_size
    free = shutil.disk_usage(database.parent).free
    if free < needed:
        raise OperationError(
            f"{database.parent}: no space left on the device for the restore (needs about "
            f"{needed // 1_000_000 + 1} MB, {free // 1_000_000} MB free); database unchanged"
        )


def _failed(database: Path, exc: BaseException, what: str) -> OperationError:
    if disk_full(exc, database.parent):
        return OperationError(f"{database.parent}: no space left on the device; {what}")
    detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    if "locked" in detail or "busy" in detail:
        return OperationError(
            f"{database}: the database is in use: a write transaction held the lock for over "
            f"{LOCK_TIMEOUT_S:g} s; {what}"
        )
    return OperationError(f"{database}: {what}: {detail}")


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=LOCK_TIMEOUT_S, isolation_level=None)
    conn.execute(f"PRAGMA busy_timeout = {int(LOCK_TIMEOUT_S * 1000)}")
    return conn


def _raise_fence(live: sqlite3.Connection) -> None:
    """Triggers on every ordinary table that make any write fail, committed at once."""
    live.execute("BEGIN IMMEDIATE")
    try:
        rows = live.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        ).fetchall()
        virtual = [name for name, sql in rows if str(sql).upper().startswith("CREATE VIRTUAL")]
        tables = [
            name
            for name, _sql in rows
            if name not in virtual and not any(name.startswith(f"{v}_") for v in virtual)
        ]
        for n, table in enumerate(tables):
            quoted = '"' + table.replace('"', '""') + '"'
            for op in ("INSERT", "UPDATE", "DELETE"):
                live.execute(
                    f"CREATE TRIGGER IF NOT EXISTS {FENCE_PREFIX}{n}_{op.lower()} "
                    f"BEFORE {op} ON {quoted} BEGIN SELECT RAISE(ABORT, '{RESTORE_FENCE}'); END"
                )
        live.execute("COMMIT")
    except BaseException:
        live.execute("ROLLBACK")
        raise


def _drop_fence(conn: sqlite3.Connection) -> None:
    names = [
        row[0]
        for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE ?",
            (f"{FENCE_PREFIX}%",),
        )
    ]
    if names:
        conn.execute("BEGIN IMMEDIATE")
        for name in names:
            conn.execute(f"DROP TRIGGER IF EXISTS {name}")
        conn.execute("COMMIT")


def _safety_copy(live: sqlite3.Connection, target: Path) -> None:
    copy = sqlite3.connect(target, isolation_level=None)
    try:
        live.backup(copy, pages=-1)
        _drop_fence(copy)
        copy.execute("PRAGMA journal_mode = DELETE").fetchall()
    finally:
        copy.close()


def processes_using(path: Path) -> list[int] | None:
    """Ids of the processes that have ``path`` (or its ``-wal``/``-shm``) open; None if unknown.

    Read from ``/proc``: only Linux has it, and an unprivileged user sees only its own processes.
    """
    proc = Path("/proc")
    if not (proc / "self" / "fd").is_dir():
        return None
    keys = set()
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(OSError):
            st = os.stat(str(path) + suffix)
            keys.add((st.st_dev, st.st_ino))
    pids = []
    for entry in os.scandir(proc):
        if not entry.name.isdigit():
            continue
        try:
            fds = list(os.scandir(proc / entry.name / "fd"))
        except OSError:
            continue
        for fd in fds:
            try:
                st = os.stat(fd.path)
            except OSError:
                continue
            if (st.st_dev, st.st_ino) in keys:
                pids.append(int(entry.name))
                break
    return pids


def _copy_file_aside(database: Path, aside: Path) -> None:
    for suffix in ("", "-wal"):
        source = Path(str(database) + suffix)
        if source.exists():
            shutil.copyfile(source, str(aside) + suffix)


def _install_copy(backup: Path, database: Path) -> None:
    """Put a WAL-mode copy of ``backup`` at ``database`` (which nothing has open)."""
    tmp = database.with_name(database.name + ".restore.tmp")
    try:
        src = sqlite3.connect(f"{backup.absolute().as_uri()}?mode=ro", uri=True)
        try:
            dst = sqlite3.connect(tmp, isolation_level=None)
            try:
                src.backup(dst, pages=-1)
                dst.execute("PRAGMA journal_mode = WAL").fetchall()
            finally:
                dst.close()
        finally:
            src.close()
        for suffix in _SIDE_FILES:
            with contextlib.suppress(FileNotFoundError):
                Path(str(database) + suffix).unlink()
        os.replace(tmp, database)
    except (OSError, sqlite3.Error) as exc:
        remove_with_side_files(tmp)
        raise _failed(database, exc, "restore not done, database unchanged") from exc


def _replace_unreadable(backup: Path, database: Path, now: datetime, reason: str) -> Path:
    """Keep an unreadable database aside and put the backup in its place, if nothing uses it."""
    users = processes_using(database)
    if users is None:
        raise OperationError(
            f"{database}: {reason}; cannot tell on this system whether a bot still has it open: "
            "stop the bots, move the file away and restore again"
        )
    if users:
        raise OperationError(
            f"{database}: {reason}, and processes {', '.join(map(str, sorted(users)))} have it "
            "open; stop them and restore again (database unchanged)"
        )
    aside = database.with_name(f"{database.name}.corrupt-{now:%Y%m%d-%H%M%S}")
    try:
        _copy_file_aside(database, aside)
    except OSError as exc:
        remove_with_side_files(aside)
        raise _failed(
            database, exc, "could not keep the damaged file aside; nothing changed"
        ) from exc
    _install_copy(backup, database)
    return aside


def _unreadable(exc: sqlite3.Error) -> bool:
    return isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError)


def restore_sqlite(
    backup: str | os.PathLike[str], database: str | os.PathLike[str], *, now: datetime | None = None
) -> Path | None:
    """Restore ``database`` from a verified ``backup``; return where the previous one was kept.

    The kept file is ``NAME.before-restore-YYYYmmdd-HHMMSS`` (a sound copy) or
    ``NAME.corrupt-YYYYmmdd-HHMMSS`` (the damaged file as it was); ``None`` when there was none.
    """
    backup, database = Path(backup), Path(database)
    verification = verify_sqlite(backup)
    if not verification.ok:
        raise OperationError(
            f"{backup}: refusing to restore an unverifiable file: "
            + "; ".join(verification.problems)
        )
    now = now or datetime.now(UTC)
    if not database.exists():
        _install_copy(backup, database)
        return None
    _check_space(backup, database)
    try:
        live = _connect(database)
    except sqlite3.Error as exc:
        raise _failed(database, exc, "cannot open the database; nothing changed") from exc
    try:
        try:
            _raise_fence(live)
        except sqlite3.Error as exc:
            if _unreadable(exc):
                live.close()
                return _replace_unreadable(backup, database, now, f"not readable ({exc})")
            raise _failed(database, exc, "restore not done, database unchanged") from exc
        try:
            return _restore_fenced(live, backup, database, now)
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                _drop_fence(live)
            raise
    finally:
        live.close()


def _restore_fenced(live: sqlite3.Connection, backup: Path, database: Path, now: datetime) -> Path:
    safety = database.with_name(f"{database.name}.before-restore-{now:%Y%m%d-%H%M%S}")
    try:
        _safety_copy(live, safety)
    except sqlite3.DatabaseError as exc:
        remove_with_side_files(safety)
        if not _unreadable(exc):
            raise _failed(database, exc, "could not keep a safety copy; nothing changed") from exc
        # Pages past the header are damaged: keep the file as it is, then overwrite it.
        safety = database.with_name(f"{database.name}.corrupt-{now:%Y%m%d-%H%M%S}")
        try:
            _copy_file_aside(database, safety)
        except OSError as copy_exc:
            remove_with_side_files(safety)
            raise _failed(
                database, copy_exc, "could not keep the damaged file aside; nothing changed"
            ) from copy_exc
    except OSError as exc:
        remove_with_side_files(safety)
        raise _failed(database, exc, "could not keep a safety copy; nothing changed") from exc
    try:
        source = sqlite3.connect(f"{backup.absolute().as_uri()}?mode=ro", uri=True)
        try:
            source.backup(live, pages=-1)
        finally:
            source.close()
    except (OSError, sqlite3.Error) as exc:
        raise _failed(database, exc, "restore failed, database unchanged") from exc
    return safety
