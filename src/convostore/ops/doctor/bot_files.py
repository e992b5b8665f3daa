"""Checks of a bot's files beside its database: legacy files not imported, backup age."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from sqlalchemy.exc import DBAPIError

from convostore.config import BotConfig
from convostore.db import translate
from convostore.engine import (
    make_engine,
)
from convostore.errors import ConvostoreError
from convostore.ops.backup import newest_backup
from convostore.ops.doctor.limits import BACKUP_MAX_AGE
from convostore.ops.doctor.report import Finding, Status
from convostore.ops.doctor.sqlite import read_only_uri


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
            f"sqlite+aiosqlite:///{read_only_uri(path)}&uri=true", poolclass=NullPool
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


async def legacy_findings(bots: Sequence[BotConfig]) -> list[Finding]:
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


def backup_finding(bots: Sequence[BotConfig], now: datetime) -> Finding:
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
