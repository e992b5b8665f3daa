"""The two ways to run an import: across every configured database (the CLI), or inside one
Alembic migration (the data revision). Both read the tree with :class:`LegacyImport`."""

from __future__ import annotations

import asyncio
import functools
import logging
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy import event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.pool import NullPool

from convostore.config import BotConfig, redact_url
from convostore.db import translate_errors
from convostore.engine import install_sqlite_transaction_handling, make_engine
from convostore.errors import DatabaseUnavailableError, LegacyImportError, SchemaError
from convostore.legacy.importer import LegacyImport
from convostore.legacy.report import ImportProgress, ImportReport
from convostore.legacy.routing import BotFilter, default_config
from convostore.schema import KNOWN_REVISIONS, check_schema_sync

logger = logging.getLogger(__name__)

# The revision that creates the legacy_imports ledger, which a real import records itself in.
LEDGER_REVISION_INDEX = KNOWN_REVISIONS.index("0002")

# A channel is written in one transaction; after one that brings the pending rows to this many,
# the CLI commits, so bots sharing the file wait for the write lock only briefly.
COMMIT_EVERY = 20_000
# SQLite page cache of the import's connection: the unique index on Discord ids takes its rows in
# random order, and a larger cache saves most of the page reads that causes.
IMPORT_CACHE_KIB = 65_536


def legacy_dirs(configs: Mapping[str, BotConfig]) -> list[Path]:
    """The distinct legacy data directories of ``configs`` (``legacy.dir``)."""
    return sorted({Path(c.legacy.dir).expanduser().absolute() for c in configs.values()})


def _bulk_cache(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.execute(f"PRAGMA cache_size = -{IMPORT_CACHE_KIB}")


def run_on_database(url: str, work: Callable[[Connection], None]) -> None:
    """Run ``work`` on a synchronous connection to ``url`` and commit; roll back on error."""
    where = redact_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and not Path(parsed.database).exists():
            raise SchemaError(
                f"{where}: the database does not exist; run `convostore upgrade` (or `alembic "
                "upgrade head`) to create it"
            )
        engine = create_sync_engine(parsed.set(drivername="sqlite"), poolclass=NullPool)
        # The importer writes each session before its messages, so the foreign key holds by
        # construction; checking it per row and a 2 MB page cache cost a sixth of the import.
        install_sqlite_transaction_handling(engine, foreign_keys=False)
        event.listen(engine, "connect", _bulk_cache)
        try:
            with translate_errors(where), engine.connect() as connection:
                work(connection)
                connection.commit()
        finally:
            engine.dispose()
        return

    async def run() -> None:
        async_engine = make_engine(url, null_pool=True)
        try:
            async with async_engine.connect() as connection:
                await connection.run_sync(work)
                await connection.commit()
        finally:
            await async_engine.dispose()

    with translate_errors(where):
        asyncio.run(run())


def _write_staged(job: LegacyImport, bots: list[str], connection: Connection) -> None:
    job.write(connection, bots)


def _no_database_yet(exc: Exception) -> bool:
    text = str(exc)
    return "does not exist" in text or "no convostore schema" in text


def _dry_run_on_empty_schema(work: Callable[[Connection], None]) -> None:
    """Run a dry-run ``work`` against an empty schema in a throw-away SQLite file."""
    from convostore.models import Base

    with tempfile.TemporaryDirectory(prefix="convostore-dry-run-") as folder:
        engine = create_sync_engine(f"sqlite:///{Path(folder) / 'empty.db'}", poolclass=NullPool)
        try:
            Base.metadata.create_all(engine)
            with engine.connect() as connection:
                work(connection)
                connection.rollback()
        finally:
            engine.dispose()


def migrate_legacy(
    configs: Mapping[str, BotConfig],
    *,
    data_dirs: Sequence[Path] | None = None,
    legacy_tz: str | None = None,
    dry_run: bool = False,
    only_bot: str | None = None,
    progress: ImportProgress | None = None,
) -> ImportReport:
    """Import the legacy tree into the database of each bot (``convostore migrate-legacy``).

    Configured bots go to their config's database; bots found in the tree without a config go to
    the default database (``./data/conversations.db``) with the default session rules.
    """
    dirs = list(data_dirs) if data_dirs else legacy_dirs(configs)
    if not dirs:
        raise LegacyImportError("no legacy data directory: pass --data-dir or configure legacy.dir")

    accept = BotFilter({bot: c.storage.enabled for bot, c in configs.items()}, only=only_bot)
    with LegacyImport(
        dirs, configs, legacy_tz=legacy_tz, accept=accept, dry_run=dry_run, progress=progress
    ) as job:
        job.read()
        by_database: dict[str, list[str]] = {}
        for bot in job.bots_to_write():
            config = job.config_for(bot)
            assert config is not None
            by_database.setdefault(config.database_url, []).append(bot)
            if bot not in configs:
                job.report.notes.append(
                    f"bot {bot!r} has no config file; its records go to the default database "
                    f"{config.safe_database_url} with the default session rules"
                )
        for url, bots in by_database.items():

            def work(connection: Connection, bots: list[str] = bots, url: str = url) -> None:
                where = redact_url(url)
                revision = check_schema_sync(connection, where)
                if not dry_run and KNOWN_REVISIONS.index(revision) < LEDGER_REVISION_INDEX:
                    raise SchemaError(
                        f"{where}: the database is at schema revision {revision}, before the "
                        f"legacy import ledger ({KNOWN_REVISIONS[LEDGER_REVISION_INDEX]}); run "
                        "`convostore upgrade --no-legacy-import` first, then this command again"
                    )
                job.write(connection, bots, commit_every=COMMIT_EVERY)

            try:
                run_on_database(url, work)
            except (SchemaError, DatabaseUnavailableError) as exc:
                if not dry_run or not _no_database_yet(exc):
                    raise
                # A dry run needs no database: on a fresh install it counts every record as new.
                job.report.notes.append(
                    f"{redact_url(url)} has no convostore schema yet (run `convostore upgrade` "
                    "to create it): the dry run counted every record as new"
                )
                _dry_run_on_empty_schema(functools.partial(_write_staged, job, bots))
        return job.report


def run_data_migration(
    connection: Connection, attributes: Mapping[str, Any], x_args: Mapping[str, str]
) -> ImportReport | None:
    """The body of the legacy data revision: import into the database being migrated.

    ``-x legacy_import=no`` (``convostore upgrade --no-legacy-import``) skips the import: the
    schema is created, the tree is left to ``convostore migrate-legacy``.
    The bots are those whose configs use this database (``convostore_bot_configs``), plus the bots
    without a config when this is the default database or the one ``-x url=`` names with no
    config using it. The legacy directory is ``-x legacy_dir`` or the bots' ``legacy.dir``.
    Everything runs in Alembic's transaction: a failure leaves the database as it was.
    """
    if x_args.get("legacy_import", "yes").lower() in ("no", "false", "0", "off"):
        logger.info(
            "legacy import: skipped (--no-legacy-import); run `convostore migrate-legacy` to "
            "import the legacy tree (`--dry-run` first to see what it would import)"
        )
        return None
    here: Mapping[str, BotConfig] = attributes.get("convostore_bot_configs") or {}
    every: Mapping[str, BotConfig] = attributes.get("convostore_all_bot_configs") or here
    url = attributes.get("convostore_database_url")
    dirs = [Path(x_args["legacy_dir"])] if x_args.get("legacy_dir") else legacy_dirs(here)
    if not dirs:
        logger.info("legacy import: no legacy directory configured for this database; skipped")
        return None
    existing = [d for d in dirs if d.is_dir()]
    if not existing:
        logger.info(
            "legacy import: %s does not exist; nothing to import", ", ".join(map(str, dirs))
        )
        return None
    default_here = not here or url == default_config("default").database_url

    # The bots configured for another database are left to its own run.
    enabled = {bot: bot in here and here[bot].storage.enabled for bot in [*every, *here]}
    accept = BotFilter(enabled, others=default_here)
    with LegacyImport(existing, every, legacy_tz=x_args.get("legacy_tz"), accept=accept) as job:
        job.read()
        job.write(connection, job.bots_to_write())
        report = job.report
    totals = report.totals
    logger.info(
        "legacy import from %s: %d messages imported, %d duplicate, %d already present, "
        "%d unattributable, %d invalid; %d files unreadable (see `convostore migrate-legacy "
        "--dry-run --report FILE`)",
        ", ".join(map(str, existing)),
        totals.get("imported", 0),
        totals.get("duplicate", 0),
        totals.get("already_present", 0),
        totals.get("unattributable", 0),
        totals.get("invalid", 0),
        totals.get("files_unreadable", 0),
    )
    if x_args.get("legacy_report"):
        report.write(x_args["legacy_report"])
    return report
