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
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from convostore.config import BotConfig
from convostore.ops.doctor.bot_files import backup_finding, legacy_findings
from convostore.ops.doctor.limits import BACKUP_MAX_AGE, QUICK_CHECK_ABOVE_BYTES
from convostore.ops.doctor.postgresql import postgresql_findings
from convostore.ops.doctor.report import DatabaseReport, DoctorReport, Finding, Status
from convostore.ops.doctor.sqlite import sqlite_findings

__all__ = [
    "BACKUP_MAX_AGE",
    "QUICK_CHECK_ABOVE_BYTES",
    "DatabaseReport",
    "DoctorReport",
    "Finding",
    "Status",
    "diagnose",
    "diagnose_database",
]


async def diagnose_database(
    bots: Sequence[BotConfig], *, full_integrity: bool | None = None, now: datetime | None = None
) -> DatabaseReport:
    """Run every check on the database that ``bots`` (all on the same database) use."""
    started = time.perf_counter()
    first = bots[0]
    now = (now or datetime.now(UTC)).astimezone(UTC)
    path = first.sqlite_path
    if path is not None:
        findings = await asyncio.to_thread(sqlite_findings, path, first.name, full_integrity)
    else:
        findings = await postgresql_findings(
            first.database_url, first.safe_database_url, first.name
        )
    if path is None or path.is_file():  # the check would open (and so create) a missing file
        findings.extend(await legacy_findings(bots))
    findings.append(await asyncio.to_thread(backup_finding, bots, now))
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
