"""Verified backups of a database: verification, rotation, the finder (restore: :mod:`.restore`).

A backup is named after its database: ``sage.db`` backs up to ``sage_YYYY-MM-DD.db`` (the default
``conversations.db`` to ``conversations_YYYY-MM-DD.db``), a PostgreSQL database ``bots`` to
``bots_YYYY-MM-DD.dump``. Beside each backup, ``<backup>.manifest.json`` records its ``source``
(the absolute path of the SQLite file, or the database URL without its password). Several
databases can share one backup directory: rotation only ever removes backups whose manifest names
the same source, and :func:`newest_backup` is the one place that finds "the newest backup of this
database" (for doctor, stats, browse, restore and verify).

The copy is made in one step with SQLite's backup API (``pages=-1``): a stepped backup restarts
whenever a bot writes and never ends under traffic. It is written to a temporary name in the
backup directory and renamed into place, so a full disk or a crash leaves no partial backup.

With a ``progress`` callback the copy runs in steps of :data:`BACKUP_STEP_PAGES` pages, to report
them, inside one read transaction on the source: the snapshot stays fixed for the whole copy, so
bot writes (to the WAL) no longer restart it.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import shutil
import sqlite3
import subprocess
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from convostore.config import DEFAULT_BACKUP_KEEP, BotConfig
from convostore.errors import OperationError
from convostore.ops import write_error
from convostore.schema import KNOWN_REVISIONS
from convostore.sqlite_files import read_only_uri, unwritable_reason

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
    return sqlite3.connect(read_only_uri(path), uri=True)


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
            reason = unwritable_reason(path)
            if reason is not None and isinstance(exc, sqlite3.OperationalError):
                problem = (
                    f"cannot read it in a read-only place ({reason}): {exc}; the file is not "
                    "known to be damaged"
                )
            else:
                problem = f"not a sound database: {exc}"
            return Verification(path, False, str(exc), None, problems=(problem,))
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


def backup_source(config: BotConfig) -> str:
    """What a manifest's ``source`` says for the database ``config`` uses."""
    path = config.sqlite_path
    return str(path.absolute()) if path is not None else config.safe_database_url


def backup_stem(config: BotConfig) -> str:
    """The name backups of the bot's database start with: the file's stem, or the database name."""
    path = config.sqlite_path
    if path is not None:
        return path.stem or "conversations"
    from sqlalchemy.engine import make_url

    return make_url(config.database_url).database or "postgresql"


def _target_name(backup_dir: Path, stem: str, now: datetime, suffix: str) -> Path:
    day = backup_dir / f"{stem}_{now:%Y-%m-%d}{suffix}"
    if not day.exists():
        return day
    candidate = backup_dir / f"{stem}_{now:%Y-%m-%d_%H%M%S}{suffix}"
    n = 2
    while candidate.exists():
        candidate = backup_dir / f"{stem}_{now:%Y-%m-%d_%H%M%S}-{n}{suffix}"
        n += 1
    return candidate


@dataclass(frozen=True)
class BackupAge:
    """A backup found by its manifest: where, when, how old, and whether it was verified."""

    path: Path
    created_at: datetime
    age: timedelta
    verified: bool


def _manifests(directory: Path) -> Iterable[tuple[Path, dict[str, Any], datetime]]:
    """(backup, manifest data, created_at) for every readable manifest whose backup exists."""
    if not directory.is_dir():
        return
    for manifest in directory.glob(f"*{MANIFEST_SUFFIX}"):
        backup = manifest.with_name(manifest.name.removesuffix(MANIFEST_SUFFIX))
        try:
            data: Any = json.loads(manifest.read_text(encoding="utf-8"))
            created = datetime.fromisoformat(str(data["created_at"]))
        except (OSError, ValueError, KeyError, TypeError):
            continue  # a manifest we cannot read does not vouch for its backup
        if not isinstance(data, dict) or not backup.is_file():
            continue
        if created.tzinfo is None:
            created = created.replace(tzinfo=UTC)
        yield backup, data, created.astimezone(UTC)


def backups_of(source: str, directory: str | os.PathLike[str]) -> list[BackupAge]:
    """Every backup of the database ``source`` in ``directory``, newest first."""
    found = [
        BackupAge(backup, created, timedelta(0), data.get("verified") is True)
        for backup, data, created in _manifests(Path(directory))
        if data.get("source") == source
    ]
    return sorted(found, key=lambda b: (b.created_at, b.path.name), reverse=True)


def newest_backup(
    config: BotConfig, now: datetime | None = None, *, verified_first: bool = True
) -> BackupAge | None:
    """The newest backup of the database ``config`` uses, found in ``storage.backups.dir``.

    The one finder of "the newest backup of this database": doctor, stats, browse, restore and
    verify use it. Only backups whose manifest names this database count, whatever else shares
    the directory. A verified one is preferred (SQLite backups verify before they are kept;
    PostgreSQL dumps are verified by ``convostore verify``).
    """
    now = now or datetime.now(UTC)
    found = backups_of(backup_source(config), config.storage.backups.dir)
    if not found:
        return None
    best = max(found, key=lambda b: (b.verified and verified_first, b.created_at))
    return BackupAge(best.path, best.created_at, now - best.created_at, best.verified)


def _copy_sqlite(
    source: Path, target: Path, progress: BackupProgress | None = None, *, wal: bool = False
) -> None:
    """Copy ``source`` to ``target``; the copy is a self-contained file unless ``wal``.

    The backup API copies the source's header, WAL flag included: a WAL copy opened read-only
    (to verify it) leaves ``-wal``/``-shm`` files beside it, so copies are switched to the
    rollback journal, and a restored database back to WAL.
    """
    if unwritable_reason(source) is None:
        src = sqlite3.connect(source, timeout=30, isolation_level=None)
    else:  # a read-only place: read without creating -shm (nothing can write it anyway)
        src = sqlite3.connect(read_only_uri(source), uri=True, isolation_level=None)
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


def remove_with_side_files(path: Path) -> None:
    """Remove ``path`` and the ``-wal``/``-shm``/``-journal`` files SQLite may have left."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(OSError):  # missing, or a read-only place that holds nothing
            Path(str(path) + suffix).unlink()


def disk_full(exc: BaseException, directory: Path) -> bool:
    """Whether a failed SQLite or file write in ``directory`` ran out of space.

    SQLite reports a full disk as "database or disk is full", but as "disk I/O error" when the
    write that failed was to its ``-wal`` or ``-shm``: then the free space decides.
    """
    if isinstance(exc, OSError):
        return exc.errno == errno.ENOSPC
    text = str(exc).lower()
    if "full" in text:
        return True
    if "disk i/o error" in text:
        with contextlib.suppress(OSError):
            return shutil.disk_usage(directory).free < 1_000_000
    return False


def _sqlite_copy_error(exc: sqlite3.Error, source: Path, directory: Path) -> OperationError:
    if disk_full(exc, directory):
        return OperationError(f"{directory}: no space left on the device; backup not written")
    target_reason = unwritable_reason(directory / "backup.db")
    if target_reason is not None:
        return OperationError(
            f"{directory}: backup directory is not writable ({target_reason}); backup not written"
        )
    reason = unwritable_reason(source)
    if reason is not None:
        return OperationError(
            f"{source}: cannot read the database: it is read-only ({reason}) and its -wal holds "
            f"changes SQLite cannot read without writing: {exc}"
        )
    return OperationError(f"{directory}: backup failed: {exc}")


def _os_error(exc: OSError, where: Path) -> OperationError:
    return write_error(
        exc, where, job="backup", unfinished="backup not written", failed="backup failed"
    )


def _rotate(backup_dir: Path, keep: int, source: str) -> tuple[Path, ...]:
    """Remove all but the newest ``keep`` backups of ``source``; nothing of other databases."""
    removed = []
    for old in backups_of(source, backup_dir)[keep:]:
        old.path.unlink(missing_ok=True)
        Path(str(old.path) + MANIFEST_SUFFIX).unlink(missing_ok=True)
        removed.append(old.path)
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
    keep: int = DEFAULT_BACKUP_KEEP,
    now: datetime | None = None,
    progress: BackupProgress | None = None,
) -> BackupResult:
    """Copy a live SQLite database to ``backup_dir/<stem>_YYYY-MM-DD.db``, verify, rotate.

    ``sage.db`` backs up to ``sage_2026-12-02.db``; only backups of this file are rotated.
    """
    source = Path(database)
    if not source.is_file():
        raise OperationError(f"{source}: database file not found")
    directory = Path(backup_dir)
    now = now or datetime.now(UTC)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _os_error(exc, directory) from exc
    target = _target_name(directory, source.stem or "conversations", now, ".db")
    tmp = target.with_name(target.name + ".tmp")
    try:
        _copy_sqlite(source, tmp, progress)
    except OSError as exc:
        remove_with_side_files(tmp)
        raise _os_error(exc, directory) from exc
    except sqlite3.Error as exc:
        remove_with_side_files(tmp)
        raise _sqlite_copy_error(exc, source, directory) from exc
    verification = verify_sqlite(tmp)
    if not verification.ok:
        remove_with_side_files(tmp)
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
        # No backup without its manifest: a full disk leaves nothing behind.
        for leftover in (tmp, target, Path(str(target) + MANIFEST_SUFFIX + ".tmp")):
            remove_with_side_files(leftover)
        raise _os_error(exc, directory) from exc
    removed = _rotate(directory, keep, str(source.absolute()))
    return BackupResult(
        target, manifest, Verification(**{**asdict(verification), "path": target}), removed
    )


def _pg_tool(name: str) -> str:
    tool = shutil.which(name)
    if tool is None:
        raise OperationError(
            f"{name} is not on PATH; install the PostgreSQL client tools to back up PostgreSQL"
        )
    return tool


def _pg_args(url: Any) -> tuple[str, dict[str, str]]:
    """(connection string without the password, environment with PGPASSWORD) for a libpq tool."""
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    return url.set(drivername="postgresql", password=None).render_as_string(False), env


def _last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1] if lines else "failed"


def list_dump(path: str | os.PathLike[str]) -> list[str]:
    """``pg_restore --list`` of a dump: its table of contents; refuses a file that is not one."""
    done = subprocess.run(
        [_pg_tool("pg_restore"), "--list", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise OperationError(f"{path}: not a readable pg_dump archive: {_last_line(done.stderr)}")
    return [line for line in done.stdout.splitlines() if line and not line.startswith(";")]


def backup_postgresql(config: BotConfig, *, now: datetime | None = None) -> BackupResult:
    """``pg_dump -Fc`` of the bot's PostgreSQL database into its backup directory.

    The dump is read back with ``pg_restore --list`` before it is kept; ``convostore verify``
    restores it into a scratch database and counts its rows.
    """
    pg_dump = _pg_tool("pg_dump")
    from sqlalchemy.engine import make_url

    url = make_url(config.database_url)
    directory = Path(config.storage.backups.dir)
    now = now or datetime.now(UTC)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _os_error(exc, directory) from exc
    target = _target_name(directory, backup_stem(config), now, ".dump")
    tmp = target.with_name(target.name + ".tmp")
    dsn, env = _pg_args(url)
    done = subprocess.run(
        [pg_dump, "-Fc", "-f", str(tmp), "-d", dsn],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise OperationError(f"pg_dump of {config.safe_database_url}: {_last_line(done.stderr)}")
    try:
        entries = list_dump(tmp)
    except OperationError:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, target)
    manifest = _write_manifest(
        target,
        {
            "source": backup_source(config),
            "created_at": now.isoformat(),
            "format": "pg_dump -Fc",
            "verified": False,
            "toc_entries": len(entries),
            "size_bytes": target.stat().st_size,
        },
    )
    removed = _rotate(directory, config.storage.backups.keep, backup_source(config))
    return BackupResult(target, manifest, None, removed)


async def _pg_counts(url: str) -> tuple[str | None, dict[str, int], dict[str, int]]:
    from sqlalchemy import text

    from convostore.engine import make_engine

    engine = make_engine(url, null_pool=True)
    try:
        async with engine.connect() as connection:
            revision = (
                await connection.execute(text("SELECT version_num FROM alembic_version"))
            ).scalar()
            messages = await connection.execute(
                text("SELECT bot_name, count(*) FROM conversations GROUP BY bot_name")
            )
            sessions = await connection.execute(
                text("SELECT bot_name, count(*) FROM sessions GROUP BY bot_name")
            )
            return (
                None if revision is None else str(revision),
                {str(b): int(n) for b, n in messages},
                {str(b): int(n) for b, n in sessions},
            )
    finally:
        await engine.dispose()


async def _pg_admin(url: str, statement: str) -> None:
    from sqlalchemy import text

    from convostore.engine import make_engine

    engine = make_engine(url, null_pool=True, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(text(statement))
    finally:
        await engine.dispose()


def verify_dump(path: str | os.PathLike[str], server_url: str) -> Verification:
    """Verify a ``pg_dump -Fc`` archive: list it, restore it into a scratch database, count rows.

    The scratch database (``convostore_verify_<random>``) is created on the server of
    ``server_url`` and dropped afterwards, whatever happens. The manifest beside the dump (if any)
    is marked verified when the restore succeeds.
    """
    from sqlalchemy.engine import make_url

    from convostore.config import redact_url

    path = Path(path)
    if not path.is_file():
        raise OperationError(f"{path}: no such file")
    entries = list_dump(path)
    url = make_url(server_url)
    scratch = f"convostore_verify_{uuid.uuid4().hex[:12]}"
    scratch_url = url.set(database=scratch).render_as_string(False)
    server = redact_url(server_url)
    problems: list[str] = []
    revision: str | None = None
    messages: dict[str, int] = {}
    sessions: dict[str, int] = {}
    try:
        asyncio.run(_pg_admin(server_url, f'CREATE DATABASE "{scratch}"'))
    except Exception as exc:
        raise OperationError(
            f"{path}: not verified: cannot create a scratch database on {server}: "
            f"{_last_line(str(getattr(exc, 'orig', None) or exc))}"
        ) from exc
    try:
        dsn, env = _pg_args(make_url(scratch_url))
        done = subprocess.run(
            [
                _pg_tool("pg_restore"),
                "--no-owner",
                "--no-privileges",
                "--exit-on-error",
                "-d",
                dsn,
                str(path),
            ],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            problems.append(f"pg_restore into a scratch database failed: {_last_line(done.stderr)}")
        else:
            try:
                revision, messages, sessions = asyncio.run(_pg_counts(scratch_url))
            except Exception as exc:
                problems.append(f"not a convostore database: {_last_line(str(exc))}")
            if not problems and revision is None:
                problems.append("no schema revision recorded")
            elif revision is not None and revision not in KNOWN_REVISIONS:
                problems.append(f"schema revision {revision} is unknown to this convostore")
    finally:
        with contextlib.suppress(Exception):
            asyncio.run(_pg_admin(server_url, f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)'))
    integrity = f"pg_restore --list: {len(entries)} entries; restored into a scratch database"
    if problems:
        integrity = f"pg_restore --list: {len(entries)} entries; restore failed"
    result = Verification(
        path, not problems, integrity, revision, messages, sessions, tuple(problems)
    )
    manifest = Path(str(path) + MANIFEST_SUFFIX)
    if result.ok and manifest.is_file():
        with contextlib.suppress(OSError, ValueError):
            data = json.loads(manifest.read_text(encoding="utf-8"))
            data.update(
                verified=True,
                verified_at=datetime.now(UTC).isoformat(),
                revision=revision,
                messages_per_bot=messages,
                sessions_per_bot=sessions,
            )
            _write_manifest(path, data)
    return result


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
