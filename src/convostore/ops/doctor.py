"""``convostore doctor``: checks of each configured database, each finding with what to do.

Per database: journal mode and connection pragmas (SQLite), schema revision against the head this
code knows and drift between the schema and the models (Alembic's ``compare_metadata``, as
pytest-alembic checks it), an integrity check (SQLite; ``quick_check`` above
:data:`QUICK_CHECK_ABOVE_BYTES` unless a full check is asked for), that the hot queries use their
indexes (:mod:`convostore.ops.plans`), legacy files not imported yet, and the age of the last
backup. SQLite files are opened read-only and never changed: doctor reports, it does not repair.
"""

from __future__ import annotations

import asyncio
import enum
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Index, create_engine
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.schema import CreateIndex

from convostore.config import BotConfig
from convostore.db import translate
from convostore.engine import (
    BUSY_TIMEOUT_MS,
    READ_ONLY_OPTION,
    install_sqlite_transaction_handling,
    make_engine,
)
from convostore.errors import ConvostoreError
from convostore.models import Base
from convostore.ops.backup import newest_backup
from convostore.ops.plans import QueryPlan, explain_hot_queries
from convostore.schema import HEAD_REVISION, newer_revision, newer_than_code, stored_revisions

QUICK_CHECK_ABOVE_BYTES = 256 * 1024 * 1024
BACKUP_MAX_AGE = timedelta(days=2)


class Status(enum.StrEnum):
    OK = "OK"
    WARN = "WARN"
    FAIL = "FAIL"
    SKIP = "SKIP"  # the check does not apply or cannot run here; not a problem in itself


@dataclass(frozen=True)
class Finding:
    check: str
    status: Status
    detail: str
    advice: str | None = None

    @property
    def needs_attention(self) -> bool:
        return self.status in (Status.WARN, Status.FAIL)


@dataclass(frozen=True)
class DatabaseReport:
    database: str  # the URL without its password
    bots: tuple[str, ...]
    findings: tuple[Finding, ...]
    seconds: float = 0.0

    @property
    def needs_attention(self) -> bool:
        return any(f.needs_attention for f in self.findings)


@dataclass(frozen=True)
class DoctorReport:
    databases: tuple[DatabaseReport, ...] = field(default_factory=tuple)

    @property
    def needs_attention(self) -> bool:
        return any(d.needs_attention for d in self.databases)


# --- checks shared by both backends -------------------------------------------------------------


def _revision(connection: Connection) -> tuple[Finding, bool]:
    """The revision finding, and whether the schema is at head (drift is only meaningful there)."""
    versions = stored_revisions(connection)
    if versions is None:
        return (
            Finding(
                "schema revision",
                Status.FAIL,
                "no convostore schema (no alembic_version table)",
                "run `convostore upgrade` (or `alembic upgrade head`)",
            ),
            False,
        )
    if not versions:
        return (
            Finding(
                "schema revision",
                Status.FAIL,
                "no revision recorded",
                "run `convostore upgrade` (or `alembic upgrade head`)",
            ),
            False,
        )
    current = versions[0]
    newer = newer_revision(versions)
    if newer is not None:
        return (
            Finding(
                "schema revision",
                Status.FAIL,
                newer_than_code(newer).removeprefix("schema revision "),
                "upgrade convostore on this machine; do not open the database with this version",
            ),
            False,
        )
    if current != HEAD_REVISION:
        return (
            Finding(
                "schema revision",
                Status.WARN,
                f"{current}, head is {HEAD_REVISION}",
                "stop the bots and run `convostore upgrade` (or `alembic upgrade head`; SQLite: "
                "a verified backup is taken first)",
            ),
            False,
        )
    return Finding("schema revision", Status.OK, f"{current} (head)"), True


def _describe_diff(diff: Any) -> str:
    if isinstance(diff, list):  # column modifications come grouped
        return "; ".join(_describe_diff(d) for d in diff)
    operation = str(diff[0])
    if operation.startswith("modify_"):
        return f"{operation} {diff[2]}.{diff[3]}"
    obj = diff[1] if len(diff) > 1 else None
    name = getattr(obj, "name", None) or str(obj)
    table = getattr(getattr(obj, "table", None), "name", None)
    return (
        f"{operation} {table}.{name}"
        if table and operation.endswith("_index")
        else (f"{operation} {name}")
    )


def _drift(connection: Connection) -> Finding:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    context = MigrationContext.configure(connection, opts={"compare_type": True})
    diffs = compare_metadata(context, Base.metadata)
    if not diffs:
        return Finding("model drift", Status.OK, "the schema matches the models")
    missing = [d[1] for d in diffs if isinstance(d, tuple) and d[0] == "add_index"]
    if missing and len(missing) == len(diffs):
        ddl = "; ".join(
            str(CreateIndex(index).compile(dialect=connection.dialect)).strip()
            for index in missing
            if isinstance(index, Index)
        )
        advice = f"recreate the missing index (bots may keep running): {ddl}"
    else:
        advice = (
            "the schema was changed outside Alembic: restore it to the revision's definition "
            "(alembic/versions) or restore a verified backup"
        )
    shown = "; ".join(_describe_diff(d) for d in diffs[:5])
    more = f" (+{len(diffs) - 5} more)" if len(diffs) > 5 else ""
    return Finding("model drift", Status.WARN, f"{len(diffs)} difference(s): {shown}{more}", advice)


def _plan_findings(plans: Sequence[QueryPlan]) -> list[Finding]:
    findings = []
    for plan in plans:
        name = f"index use: {plan.query.name}"
        used = plan.index_used
        if plan.uses_expected_index:
            findings.append(Finding(name, Status.OK, f"{plan.query.table} via {used}"))
            continue
        if plan.query.table in plan.full_scans and used is None:
            detail = f"full scan of {plan.query.table}"
        elif plan.query.table in plan.full_scans:
            detail = f"scans all of {used} on {plan.query.table}"
        else:
            detail = f"{plan.query.table} via {used}, not {plan.query.preferred_index}"
        findings.append(
            Finding(
                name,
                Status.WARN,
                detail,
                f"check that index {plan.query.preferred_index} exists (see the model drift "
                "line), then run `ANALYZE` so the planner has current statistics",
            )
        )
    return findings


def _schema_findings(connection: Connection, bot_name: str) -> list[Finding]:
    revision, at_head = _revision(connection)
    findings = [revision]
    if revision.status is Status.FAIL and revision.detail.startswith("no convostore schema"):
        return findings
    if at_head:
        findings.append(_drift(connection))
    else:
        findings.append(Finding("model drift", Status.SKIP, "compared only at the head revision"))
    findings.extend(_plan_findings(explain_hot_queries(connection, bot_name=bot_name)))
    return findings


# --- SQLite --------------------------------------------------------------------------------------


def _read_only_uri(path: Path) -> str:
    return f"{path.absolute().as_uri()}?mode=ro"


def _pragma(conn: sqlite3.Connection, name: str) -> Any:
    row = conn.execute(f"PRAGMA {name}").fetchone()
    return None if row is None else row[0]


_SYNCHRONOUS = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
_AUTO_VACUUM = {0: "none", 1: "full", 2: "incremental"}


def _file_findings(conn: sqlite3.Connection, path: Path) -> tuple[list[Finding], bool]:
    """Journal mode and auto_vacuum, stored in the file; and whether the file is in WAL."""
    findings = []
    journal = str(_pragma(conn, "journal_mode")).lower()
    wal = journal == "wal"
    if wal:
        findings.append(Finding("journal mode", Status.OK, "wal"))
    else:
        findings.append(
            Finding(
                "journal mode",
                Status.FAIL,
                f"{journal}, not wal: bots sharing the file block each other's reads and writes",
                f"stop the bots, then run `sqlite3 {path} 'PRAGMA journal_mode=WAL'` (convostore "
                "sets WAL when it opens a file; this one was made or restored by another tool)",
            )
        )
    auto_vacuum = _AUTO_VACUUM.get(int(_pragma(conn, "auto_vacuum") or 0), "?")
    free = int(_pragma(conn, "freelist_count") or 0) * int(_pragma(conn, "page_size") or 0)
    if auto_vacuum == "incremental":
        findings.append(
            Finding("auto vacuum", Status.OK, f"incremental ({free / 1e6:.1f} MB free in file)")
        )
    else:
        findings.append(
            Finding(
                "auto vacuum",
                Status.WARN,
                f"{auto_vacuum}: cleanup frees pages inside the file but the file never shrinks "
                f"({free / 1e6:.1f} MB free in file)",
                "stop the bots, take a backup, run `convostore cleanup --vacuum` once: it rewrites "
                "the file with auto_vacuum=incremental (needs as much free disk as the file)",
            )
        )
    return findings, wal


def _connection_findings(engine: Engine) -> Finding:
    with engine.connect() as connection:
        raw = connection.connection.driver_connection
        assert isinstance(raw, sqlite3.Connection)
        busy = int(_pragma(raw, "busy_timeout") or 0)
        foreign_keys = bool(_pragma(raw, "foreign_keys"))
        synchronous = _SYNCHRONOUS.get(int(_pragma(raw, "synchronous") or 0), "?")
    detail = (
        f"busy_timeout {busy} ms, foreign_keys {'on' if foreign_keys else 'off'}, "
        f"synchronous {synchronous} (as convostore's connections set them)"
    )
    if busy >= BUSY_TIMEOUT_MS and foreign_keys and synchronous in ("NORMAL", "FULL"):
        return Finding("connection pragmas", Status.OK, detail)
    return Finding(
        "connection pragmas",
        Status.FAIL,
        detail,
        "reinstall convostore: its connections should set busy_timeout "
        f"{BUSY_TIMEOUT_MS} ms, foreign_keys on, synchronous NORMAL",
    )


def _integrity(conn: sqlite3.Connection, path: Path, full: bool | None) -> Finding:
    size = path.stat().st_size
    quick = not full and (full is False or size > QUICK_CHECK_ABOVE_BYTES)
    pragma = "quick_check" if quick else "integrity_check"
    started = time.perf_counter()
    try:
        results = [str(r[0]) for r in conn.execute(f"PRAGMA {pragma}")]
    except sqlite3.DatabaseError as exc:
        results = [str(exc)]
    took = time.perf_counter() - started
    why = (
        f"; file over {QUICK_CHECK_ABOVE_BYTES // 2**20} MB, `--full` for integrity_check"
        if quick and full is None
        else ""
    )
    if results == ["ok"]:
        return Finding("integrity", Status.OK, f"{pragma}: ok ({took:.1f} s{why})")
    return Finding(
        "integrity",
        Status.FAIL,
        f"{pragma}: {'; '.join(results[:3])}",
        "stop the bots and restore the newest backup that verifies (`convostore verify FILE`, "
        "then `convostore restore FILE`)",
    )


def _sqlite_findings(path: Path, bot_name: str, full: bool | None) -> list[Finding]:
    if not path.is_file():
        return [
            Finding(
                "database file",
                Status.FAIL,
                f"{path} does not exist",
                "run `convostore upgrade` to create it, or fix storage.path in the bot config",
            )
        ]
    try:
        conn = sqlite3.connect(_read_only_uri(path), uri=True)
    except sqlite3.Error as exc:
        return [Finding("database file", Status.FAIL, f"{path}: cannot open: {exc}")]
    try:
        try:
            findings, wal = _file_findings(conn, path)
        except sqlite3.DatabaseError as exc:
            return [
                Finding(
                    "database file",
                    Status.FAIL,
                    f"{path}: not a readable SQLite database: {exc}",
                    "restore the newest backup that verifies (`convostore restore FILE`)",
                )
            ]
        engine = create_engine(
            "sqlite://", creator=lambda: sqlite3.connect(_read_only_uri(path), uri=True)
        )
        try:
            if wal:
                # The store's own connect hook, on a read-only connection: it changes nothing in
                # a WAL file, and shows the pragmas every bot connection runs with.
                install_sqlite_transaction_handling(engine)
                findings.append(_connection_findings(engine))
            else:
                findings.append(
                    Finding(
                        "connection pragmas",
                        Status.SKIP,
                        "checked once the journal mode is wal",
                    )
                )
            reader = engine.execution_options(**{READ_ONLY_OPTION: True})
            with reader.connect() as connection:
                findings.extend(_schema_findings(connection, bot_name))
                connection.rollback()
        finally:
            engine.dispose()
        findings.append(_integrity(conn, path, full))
        return findings
    finally:
        conn.close()


# --- PostgreSQL ----------------------------------------------------------------------------------


async def _postgresql_findings(url: str, where: str, bot_name: str) -> list[Finding]:
    engine = make_engine(url, null_pool=True)
    try:
        async with engine.connect() as connection:

            def checks(sync_connection: Connection) -> list[Finding]:
                findings = _schema_findings(sync_connection, bot_name)
                sync_connection.rollback()  # ends SET LOCAL enable_seqscan = off
                return findings

            findings = await connection.run_sync(checks)
    except (DBAPIError, OSError) as exc:
        return [Finding("connection", Status.FAIL, str(translate(exc, where)))]
    finally:
        await engine.dispose()
    findings.append(
        Finding(
            "integrity",
            Status.SKIP,
            "no integrity check on PostgreSQL here (the server checksums pages if "
            "initdb --data-checksums; pg_amcheck checks indexes)",
        )
    )
    return findings


# --- per bot: legacy files and backups -----------------------------------------------------------


async def _pending_legacy(bot: BotConfig) -> tuple[list[Path], tuple[datetime, int] | None]:
    """The bot's legacy files its database does not hold yet, on a read-only connection for SQLite,
    and the bot's latest import from the ledger.

    Opening the file through the store's engine would switch a non-WAL file to WAL: doctor
    reports the journal mode, it does not change it.
    """
    from convostore.legacy import legacy_files, unimported_files
    from convostore.legacy.transition import last_import

    if not await asyncio.to_thread(legacy_files, bot):
        return [], None
    path = bot.sqlite_path
    if path is None:
        engine = make_engine(bot.database_url, null_pool=True)
    else:
        from sqlalchemy.ext.asyncio import create_async_engine
        from sqlalchemy.pool import NullPool

        engine = create_async_engine(
            f"sqlite+aiosqlite:///{_read_only_uri(path)}&uri=true", poolclass=NullPool
        )
    try:
        async with engine.connect() as connection:
            return await unimported_files(bot, connection), await last_import(bot, connection)
    finally:
        await engine.dispose()


def _imported_detail(bot: BotConfig, last: tuple[datetime, int] | None) -> str:
    if last is None:
        return "none waiting to be imported"
    finished, messages = last
    detail = (
        f"none waiting to be imported (imported {finished:%Y-%m-%d %H:%M} UTC, {messages} messages"
    )
    report = (
        f"the import's report lists them; `convostore migrate-legacy --dry-run --bot {bot.name} "
        "--report FILE.json` writes it again"
    )
    if messages == 0:
        # Recorded in the ledger by an import that could read none of the bot's files.
        return f"{detail}: its files were unreadable; {report})"
    return f"{detail})"


async def _legacy_findings(bots: Sequence[BotConfig]) -> list[Finding]:
    findings = []
    for bot in bots:
        check = f"legacy files ({bot.name})"
        try:
            pending, last = await _pending_legacy(bot)
        except (DBAPIError, OSError) as exc:
            message = str(translate(exc, bot.safe_database_url))
            findings.append(Finding(check, Status.FAIL, message, "check legacy.dir in the config"))
            continue
        except ConvostoreError as exc:
            findings.append(Finding(check, Status.FAIL, str(exc), "check legacy.dir in the config"))
            continue
        if not pending:
            findings.append(Finding(check, Status.OK, _imported_detail(bot, last)))
        else:
            findings.append(
                Finding(
                    check,
                    Status.WARN,
                    f"{len(pending)} not imported yet, e.g. {pending[0]}",
                    f"run `convostore migrate-legacy --bot {bot.name}` (`--dry-run` first to see "
                    "what it would import)",
                )
            )
    return findings


def _backup_finding(bots: Sequence[BotConfig], now: datetime) -> Finding:
    directories = sorted({Path(b.storage.backups.dir) for b in bots})
    found = [b for b in (newest_backup(bot, now, verified_first=False) for bot in bots) if b]
    where = ", ".join(str(d) for d in directories)
    if not found:
        return Finding(
            "last backup",
            Status.WARN,
            f"none of this database found in {where}",
            "run `convostore backup` now and daily (cron or a systemd timer)",
        )
    newest = max(found, key=lambda b: (b.verified, b.created_at))
    path, created = newest.path, newest.created_at
    age = now - created
    hours = age.total_seconds() / 3600
    if hours < 1:
        shown = f"{age.total_seconds() / 60:.0f} min"
    else:
        shown = f"{hours:.0f} h" if hours < 48 else f"{hours / 24:.1f} days"
    verified = ", verified" if newest.verified else ""
    if age > BACKUP_MAX_AGE:
        return Finding(
            "last backup",
            Status.WARN,
            f"{shown} old: {path}{verified}",
            "run `convostore backup` now and daily (cron or a systemd timer)",
        )
    return Finding("last backup", Status.OK, f"{shown} old: {path}{verified}")


# --- entry point ---------------------------------------------------------------------------------


async def diagnose_database(
    bots: Sequence[BotConfig], *, full_integrity: bool | None = None, now: datetime | None = None
) -> DatabaseReport:
    """Run every check on the database that ``bots`` (all on the same database) use."""
    started = time.perf_counter()
    first = bots[0]
    now = (now or datetime.now(UTC)).astimezone(UTC)
    path = first.sqlite_path
    if path is not None:
        findings = await asyncio.to_thread(_sqlite_findings, path, first.name, full_integrity)
    else:
        findings = await _postgresql_findings(
            first.database_url, first.safe_database_url, first.name
        )
    if path is None or path.is_file():  # the check would open (and so create) a missing file
        findings.extend(await _legacy_findings(bots))
    findings.append(await asyncio.to_thread(_backup_finding, bots, now))
    return DatabaseReport(
        first.safe_database_url,
        tuple(b.name for b in bots),
        tuple(findings),
        time.perf_counter() - started,
    )


async def diagnose(
    configs: Iterable[BotConfig],
    *,
    full_integrity: bool | None = None,
    now: datetime | None = None,
) -> DoctorReport:
    """Check every database the enabled bots use, one report per distinct database.

    ``full_integrity``: ``None`` runs ``integrity_check`` on files up to
    :data:`QUICK_CHECK_ABOVE_BYTES` and ``quick_check`` above; ``True`` always the full check;
    ``False`` always the quick one.
    """
    by_database: dict[str, list[BotConfig]] = {}
    for config in sorted(configs, key=lambda c: c.name):
        if config.storage.enabled:
            by_database.setdefault(config.database_url, []).append(config)
    reports = [
        await diagnose_database(bots, full_integrity=full_integrity, now=now)
        for bots in by_database.values()
    ]
    return DoctorReport(tuple(reports))
