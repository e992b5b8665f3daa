"""Alembic environment for convostore.

``alembic upgrade head`` migrates every distinct database named by the bot configs (directory
``$CONVOSTORE_CONFIG_DIR`` or ``convostore_config_dir`` in alembic.ini); ``-x url=...`` targets one.
Each run sets ``config.attributes["convostore_bot_configs"]`` to the configs that use the database
being migrated and ``config.attributes["convostore_all_bot_configs"]`` to all of them, for data
revisions. SQLite runs with ``foreign_keys=OFF`` (batch mode recreates tables, and with foreign keys
on that would cascade-delete children) and in one ``BEGIN IMMEDIATE`` transaction, so a failed
revision leaves the database as it was.

Guarded upgrades (SQLite): when an upgrade or downgrade has revisions to run on a database that
holds conversations or sessions, a verified backup is taken first (``convostore.ops.guard``), while
the migration's transaction already holds the write lock, so no bot writes between the backup and
the migration. A failure names that backup. A new, empty SQLite file gets
``auto_vacuum = INCREMENTAL`` before its first table, so cleanups give disk space back.
"""

from __future__ import annotations

import asyncio
import logging
from logging.config import fileConfig
from pathlib import Path
from typing import Any

from alembic import context
from alembic.util import CommandError
from sqlalchemy.engine import Connection, Engine

from convostore.config import CONFIG_DIR_ENV, BotConfig, async_url, load_configs, redact_url
from convostore.db import translate
from convostore.engine import make_engine
from convostore.errors import ConvostoreError, SchemaError, StorageError
from convostore.models import Base, UTCDateTime
from convostore.ops import guard
from convostore.schema import (
    include_name,
    include_object_for,
    newer_revision,
    newer_than_code,
)

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)
logger = logging.getLogger("convostore.alembic")
target_metadata = Base.metadata


def render_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    # Revisions must never import application code: render custom types as plain SQLAlchemy ones.
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _config_dir() -> Path:
    import os

    # `convostore upgrade --config-dir DIR` (no alembic.ini) says where the configs are.
    explicit = config.attributes.get("convostore_config_dir")
    if explicit is not None:
        return Path(explicit)
    if os.environ.get(CONFIG_DIR_ENV):
        return Path(os.environ[CONFIG_DIR_ENV])
    here = Path(config.config_file_name or "alembic.ini").resolve().parent
    return here / config.get_main_option("convostore_config_dir", "config/bots")


def _targets() -> list[tuple[str, dict[str, BotConfig]]]:
    """(async URL, configs using it) for each database to migrate."""
    x = context.get_x_argument(as_dictionary=True)
    folder = _config_dir()
    configs = load_configs(folder) if folder.is_dir() else {}
    if "url" in x:
        url = async_url(x["url"])
        here = {n: c for n, c in configs.items() if c.database_url == url}
        if here:
            # One configured database of several: the data revision must know every configured
            # bot, or it would take the other databases' bots for unconfigured ones.
            config.attributes["convostore_all_bot_configs"] = configs
        return [(url, here)]
    if not configs:
        raise CommandError(f"no bot configs in {folder}; add one or pass -x url=DATABASE_URL")
    by_url: dict[str, dict[str, BotConfig]] = {}
    for name, bot in configs.items():
        if bot.storage.enabled:
            by_url.setdefault(bot.database_url, {})[name] = bot
    config.attributes["convostore_all_bot_configs"] = configs
    return list(by_url.items())


def _refuse_newer(connection: Connection) -> None:
    newer = newer_revision(context.get_context().get_current_heads())
    if newer is not None:
        raise CommandError(
            f"the database is at {newer_than_code(newer)}; upgrade convostore instead of migrating"
        )


def _has_pending_steps() -> bool:
    """Whether this command (upgrade or downgrade) has revisions to run on the database."""
    migration_context = context.get_context()
    steps_for = migration_context.opts.get("fn")
    # alembic.command names the step functions of its upgrade and downgrade commands so; stamp,
    # current, check and the rest never change data and take no backup.
    if steps_for is None or getattr(steps_for, "__name__", "") not in ("upgrade", "downgrade"):
        return False
    return bool(list(steps_for(migration_context.get_current_heads(), migration_context)))


def _guard(connection: Connection) -> Path | None:
    """Back up a SQLite database with data before revisions run on it; the backup's path."""
    database = connection.engine.url.database
    if connection.dialect.name != "sqlite" or not database or database == ":memory:":
        return None
    if not _has_pending_steps() or not guard.holds_data(connection):
        return None
    bots = config.attributes.get("convostore_bot_configs") or {}
    try:
        result = guard.backup_before_upgrade(Path(database), bots)
    except ConvostoreError as exc:
        raise CommandError(f"{exc}; nothing was migrated (no backup, no upgrade)") from None
    logger.info("verified backup before migrating: %s", result.path)
    config.attributes["convostore_upgrade_backup"] = result.path
    return result.path


def _failure(exc: BaseException, where: str) -> str:
    from sqlalchemy.exc import DBAPIError

    if isinstance(exc, DBAPIError | OSError):
        translated = translate(exc, where)
        # Locks, read-only files and lost connections read best translated; a statement that a
        # revision got wrong reads best as the database said it ("no such table" in a revision
        # is not a missing schema).
        if type(translated) not in (StorageError, SchemaError):
            return str(translated)
        exc = getattr(exc, "orig", None) or exc
    elif isinstance(exc, ConvostoreError | CommandError):
        return str(exc)
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def do_run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,
        compare_type=True,
        render_item=render_item,
        include_name=include_name,
        include_object=include_object_for(connection.dialect.name),
        # SQLite DDL is transactional once the driver leaves BEGIN to us: one transaction per run.
        transactional_ddl=True,
    )
    _refuse_newer(connection)
    backup = _guard(connection)
    try:
        with context.begin_transaction():
            context.run_migrations()
    except Exception as exc:
        if backup is None:
            raise
        connection.rollback()
        where = connection.engine.url.render_as_string(hide_password=True)
        raise CommandError(
            f"upgrade of {where} failed: {_failure(exc, where)}; the database was left as it was; "
            f"a verified backup taken before the upgrade is at {backup}"
        ) from exc


async def _migrate(url: str) -> None:
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        guard.prepare_new_sqlite(Path(str(parsed.database)))
    engine = make_engine(url, foreign_keys=False, null_pool=True)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(do_run_migrations)
            await connection.commit()
    finally:
        await engine.dispose()


def run_migrations_online() -> None:
    connectable = config.attributes.get("connection")
    if connectable is not None:
        # Handed in by a caller (tests, the guarded-upgrade code): a sync Engine or Connection.
        config.attributes.setdefault("convostore_bot_configs", {})
        config.attributes.setdefault("convostore_all_bot_configs", {})
        if isinstance(connectable, Engine):
            with connectable.connect() as connection:
                do_run_migrations(connection)
                connection.commit()
        else:
            do_run_migrations(connectable)
        return
    try:
        targets = _targets()
    except ConvostoreError as exc:
        raise CommandError(str(exc)) from None
    config.attributes.setdefault("convostore_all_bot_configs", {})
    for url, bots in targets:
        safe = redact_url(url)
        logger.info("migrating %s (bots: %s)", safe, ", ".join(sorted(bots)) or "none configured")
        config.attributes["convostore_bot_configs"] = bots
        config.attributes["convostore_database_url"] = url
        try:
            asyncio.run(_migrate(url))
        except CommandError:
            raise
        except ConvostoreError as exc:
            raise CommandError(str(exc)) from None
        except Exception as exc:
            from sqlalchemy.exc import DBAPIError

            if isinstance(exc, DBAPIError | OSError):
                raise CommandError(str(translate(exc, safe))) from None
            raise


if context.is_offline_mode():
    raise CommandError(
        "offline (--sql) mode is not supported: SQLite batch operations need a database"
    )
run_migrations_online()
