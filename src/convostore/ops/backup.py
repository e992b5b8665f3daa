"""Verified backups of a SQLite database and their verification (restore: :mod:`.restore`).

The copy is made in one step with SQLite's backup API (``pages=-1``): a stepped backup restarts
whenever a bot writes and never ends under traffic. It is written to a temporary name in the
backup directory and renamed into place, so a full disk or a crash leaves no partial backup.

With a ``progress`` callback the copy runs in steps of :data:`BACKUP_STEP_PAGES` pages, to report
them, inside one read transaction on the source: the snapshot stays fixed for the whole copy, so
bot writes (to the WAL) no longer restart it.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from convostore.config import BotConfig
from convostore.errors import OperationError
from convostore.ops import write_error
from convostore.schema import KNOWN_REVISIONS

MANIFEST_SUFFIX = ".manifest.json"
BACKUP_STEP_PAGES = 2048  # 8 MB of 4 KiB pages per step

# (pages copied, pages in all), after each step of a backup
BackupProgress = Callable[[int, int], None]


@dataclass(frozen=True)
class Verification:
    """What a database file holds, and whether it is sound."""

    path: Path
    ok: bool
    integrity: str
    revision: str | None
    messages_per_bot: dict[str, int] = field(default_factory=dict)
    sessions_per_bot: dict[str, int] = field(default_factory=dict)
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class BackupResult:
    path: Path
    manifest: Path
    verification: Verification | None
    removed: tuple[Path, ...] = ()


def _connect_read_only(path: Path) -> sqlite3.Connection:
    if not path.is_file():
        raise OperationError(f"{path}: no such file")
    return sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)


def verify_sqlite(path: str | os.PathLike[str], *, full: bool = True) -> Verification:
    """Check a SQLite file: integrity (or quick) check, schema revision, rows per bot."""
    path = Path(path)
    problems: list[str] = []
    try:
        conn = _connect_read_only(path)
    except sqlite3.Error as exc:
        raise OperationError(f"{path}: cannot open: {exc}") from exc
    try:
        try:
            pragma = "integrity_check" if full else "quick_check"
            results = [row[0] for row in conn.execute(f"PRAGMA {pragma}")]
        except sqlite3.DatabaseError as exc:
            return Verification(
                path, False, str(exc), None, problems=(f"not a sound database: {exc}",)
            )
        integrity = "ok" if results == ["ok"] else "; ".join(str(r) for r in results[:5])
        if integrity != "ok":
            problems.append(f"{pragma} failed: {integrity}")
        revision: str | None = None
        messages: dict[str, int] = {}
        sessions: dict[str, int] = {}
        try:
            row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
            revision = row[0] if row else None
            messages = dict(
                conn.execute("SELECT bot_name, count(*) FROM conversations GROUP BY bot_name")
            )
            sessions = dict(
                conn.execute("SELECT bot_name, count(*) FROM sessions GROUP BY bot_name")
            )
        except sqlite3.DatabaseError as exc:
            problems.append(f"not a convostore database: {exc}")
        if revision is None and not problems:
            problems.append("no schema revision recorded")
        elif revision is not None and revision not in KNOWN_REVISIONS:
            problems.append(f"schema revision {revision} is unknown to this convostore")
    finally:
        conn.close()
    return Verification(
        path, not problems, integrity, revision, messages, sessions, tuple(problems)
    )


def _target_name(backup_dir: Path, now: datetime, suffix: str) -> Path:
    day = backup_dir / f"conversations_{now:%Y-%m-%d}{suffix}"
    if not day.exists():
        return day
    candidate = backup_dir / f"conversations_{now:%Y-%m-%d_%H%M%S}{suffix}"
    n = 2
    while candidate.exists():
        candidate = backup_dir / f"conversations_{now:%Y-%m-%d_%H%M%S}-{n}{suffix}"
        n += 1
    return candidate


def _copy_sqlite(
    source: Path, target: Path, progress: BackupProgress | None = None, *, wal: bool = False
) -> None:
    """Copy ``source`` to ``target``; the copy is a self-contained file unless ``wal``.

    The backup API copies the source's header, WAL flag included: a WAL copy opened read-only
    (to verify it) leaves ``-wal``/``-shm`` files beside it, so copies are switched to the
    rollback journal, and a restored database back to WAL.
    """
    src = sqlite3.connect(source, timeout=30, isolation_level=None)
    try:
        dst = sqlite3.connect(target, isolation_level=None)
        try:
            if progress is None:
                src.backup(dst, pages=-1)
            else:
                src.execute("BEGIN")
                src.execute("SELECT count(*) FROM sqlite_master").fetchone()  # the snapshot
                src.backup(
                    dst,
                    pages=BACKUP_STEP_PAGES,
                    progress=lambda _status, remaining, total: progress(total - remaining, total),
                )
                src.execute("COMMIT")
            dst.execute(f"PRAGMA journal_mode = {'WAL' if wal else 'DELETE'}").fetchall()
        finally:
            dst.close()
    finally:
        src.close()


def _os_error(exc: OSError, where: Path) -> OperationError:
    return write_error(
        exc, where, job="backup", unfinished="backup not written", failed="backup failed"
    )


def _rotate(backup_dir: Path, keep: int, suffix: str) -> tuple[Path, ...]:
    backups = sorted(
        (p for p in backup_dir.glob(f"conversations_*{suffix}") if not p.name.endswith(".tmp")),
        key=lambda p: p.stat().st_mtime_ns,
        reverse=True,
    )
    removed = []
    for old in backups[keep:]:
        old.unlink(missing_ok=True)
        Path(str(old) + MANIFEST_SUFFIX).unlink(missing_ok=True)
        removed.append(old)
    return tuple(removed)


def _write_manifest(target: Path, manifest: dict[str, object]) -> Path:
    path = Path(str(target) + MANIFEST_SUFFIX)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def backup_sqlite(
    database: str | os.PathLike[str],
    backup_dir: str | os.PathLike[str],
    *,
    keep: int = 7,
    now: datetime | None = None,
    progress: BackupProgress | None = None,
) -> BackupResult:
    """Copy a live SQLite database to ``backup_dir/conversations_YYYY-MM-DD.db``, verify, rotate."""
    source = Path(database)
    if not source.is_file():
        raise OperationError(f"{source}: database file not found")
    directory = Path(backup_dir)
    now = now or datetime.now(UTC)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _os_error(exc, directory) from exc
    target = _target_name(directory, now, ".db")
    tmp = target.with_name(target.name + ".tmp")
    try:
        _copy_sqlite(source, tmp, progress)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise _os_error(exc, directory) from exc
    except sqlite3.Error as exc:
        tmp.unlink(missing_ok=True)
        raise OperationError(f"{directory}: backup failed: {exc}") from exc
    verification = verify_sqlite(tmp)
    if not verification.ok:
        tmp.unlink(missing_ok=True)
        raise OperationError(
            f"{source}: backup does not verify: {'; '.join(verification.problems)}"
        )
    try:
        os.replace(tmp, target)
        manifest = _write_manifest(
            target,
            {
                "source": str(source.absolute()),
                "created_at": now.isoformat(),
                "verified": True,
                "integrity": verification.integrity,
                "revision": verification.revision,
                "messages_per_bot": verification.messages_per_bot,
                "sessions_per_bot": verification.sessions_per_bot,
                "size_bytes": target.stat().st_size,
            },
        )
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise _os_error(exc, directory) from exc
    removed = _rotate(directory, keep, ".db")
    return BackupResult(
        target, manifest, Verification(**{**asdict(verification), "path": target}), removed
    )


def backup_postgresql(config: BotConfig, *, now: datetime | None = None) -> BackupResult:
    """``pg_dump -Fc`` of the bot's PostgreSQL database into its backup directory."""
    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        raise OperationError(
            "pg_dump is not on PATH; install the PostgreSQL client tools to back up PostgreSQL"
        )
    from sqlalchemy.engine import make_url

    url = make_url(config.database_url).set(drivername="postgresql")
    directory = Path(config.storage.backups.dir)
    now = now or datetime.now(UTC)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _os_error(exc, directory) from exc
    target = _target_name(directory, now, ".dump")
    tmp = target.with_name(target.name + ".tmp")
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    args = [pg_dump, "-Fc", "-f", str(tmp), "-d", url.set(password=None).render_as_string(False)]
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tmp.unlink(missing_ok=True)
        message = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"
        raise OperationError(f"pg_dump of {config.safe_database_url}: {message}")
    os.replace(tmp, target)
    manifest = _write_manifest(
        target,
        {
            "source": config.safe_database_url,
            "created_at": now.isoformat(),
            "format": "pg_dump -Fc",
        },
    )
    removed = _rotate(directory, config.storage.backups.keep, ".dump")
    return BackupResult(target, manifest, None, removed)


def backup_bot(
    config: BotConfig, *, now: datetime | None = None, progress: BackupProgress | None = None
) -> BackupResult:
    """Back up the database ``config`` uses, to its ``storage.backups.dir``."""
    path = config.sqlite_path
    if path is None:
        return backup_postgresql(config, now=now)
    return backup_sqlite(
        path,
        config.storage.backups.dir,
        keep=config.storage.backups.keep,
        now=now,
        progress=progress,
    )
