"""The move from JSON files to the database: find files not yet imported, serve them read-only.

``unimported_files`` tells a store (and ``convostore doctor``) that a bot still has legacy
history outside the database; ``legacy_history`` serves it, when ``legacy.read_fallback`` is on,
for a conversation that has no rows in the database yet.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from operator import attrgetter
from pathlib import Path

from sqlalchemy import Table, func, select
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from convostore.channels import ChannelInfo
from convostore.config import BotConfig
from convostore.legacy.reader import (
    SHARED_DIR,
    SHARED_INDEX,
    Era,
    LegacyFile,
    LegacyRecord,
    classify,
    read_file,
)
from convostore.legacy.rules import (
    CHANNEL_TYPE,
    LegacyNames,
    LegacyRow,
    legacy_rows,
    legacy_zone,
)
from convostore.models import LegacyImportModel
from convostore.records import StoredMessage
from convostore.repositories.rows import NewMessage

_ledger: Table = LegacyImportModel.__table__  # type: ignore[assignment]


def legacy_files(config: BotConfig) -> list[Path]:
    """The legacy files that may hold the bot's history: its own folders and the shared files."""
    root = Path(config.legacy.dir).expanduser()
    shared = root / SHARED_DIR
    found: list[Path] = []
    for folder in (shared / config.name, root / config.name):
        if folder.is_dir():
            found.extend(p for p in folder.iterdir() if p.suffix == ".json" and p.is_file())
    if shared.is_dir():
        found.extend(p for p in shared.iterdir() if p.suffix == ".json" and p.is_file())
    return sorted(found)


def _last_import(connection: Connection, bot: str) -> datetime | None:
    # max() keeps the column's type, so the value comes back as an aware UTC datetime.
    finished: datetime | None = connection.execute(
        select(func.max(_ledger.c.finished_at)).where(_ledger.c.bot_name == bot)
    ).scalar()
    return finished


def _last_import_row(connection: Connection, bot: str) -> tuple[datetime, int] | None:
    row = connection.execute(
        select(_ledger.c.finished_at, _ledger.c.messages)
        .where(_ledger.c.bot_name == bot)
        .order_by(_ledger.c.finished_at.desc())
        .limit(1)
    ).first()
    return None if row is None else (row[0], int(row[1]))


async def last_import(
    config: BotConfig, connection: AsyncConnection
) -> tuple[datetime, int] | None:
    """(finished_at, messages imported) of the bot's latest legacy import, from the ledger."""
    return await connection.run_sync(_last_import_row, config.name)


async def unimported_files(config: BotConfig, connection: AsyncConnection) -> list[Path]:
    """Legacy files of the bot that the database does not hold yet.

    Never imported for the bot: every file. Otherwise the files saved after the last import
    finished (an old bot still writing JSON after the switch).
    """
    files = legacy_files(config)
    if not files:
        return []
    finished = await connection.run_sync(_last_import, config.name)
    if finished is None:
        return files
    cutoff = finished.timestamp()
    return [p for p in files if p.stat().st_mtime > cutoff]


def _channel_files(config: BotConfig, channel_id: str) -> list[LegacyFile]:
    """The files that may hold the channel's records for the bot, in the import's scan order."""
    root = Path(config.legacy.dir).expanduser()
    shared = root / SHARED_DIR
    prefix = f"{channel_id}_"
    layouts: tuple[tuple[Era, str | None, Path], ...] = (
        (2, config.name, shared / config.name),
        (0, config.name, root / config.name),
        (1, None, shared),
    )
    paths = {
        path: (era, bot) for era, bot, folder in layouts for path in folder.glob(f"{prefix}*.json")
    }
    if (shared / SHARED_INDEX).is_file():
        paths[shared / SHARED_INDEX] = (1, None)
    # The import reads the shared folder first, then the bots' own folders, each sorted by path;
    # the order decides which of two copies of a message at the same instant is kept.
    order = sorted(paths, key=lambda path: (not path.is_relative_to(shared), path))
    return [classify(root, path, era=paths[path][0], bot=paths[path][1]) for path in order]


def legacy_history(
    config: BotConfig, channel: ChannelInfo, limit: int, user_id: str | None
) -> list[StoredMessage]:
    """The newest ``limit`` legacy records of the bot in ``channel``, oldest first (read-only).

    Records are routed, converted, named and deduplicated as the import does it
    (:mod:`convostore.legacy.rules`), so they equal the rows an import would store but for ``id``
    0 and ``session_id`` ``"legacy"``, as they are not stored. Names come from the files read
    here: a user or channel named only in other channels' files gets its placeholder.
    """
    zone = legacy_zone(config.legacy.timezone)

    def zone_for(bot: str, _record: LegacyRecord) -> tzinfo | None:
        return zone if bot == config.name else None

    names = LegacyNames()
    found: dict[str, LegacyRow] = {}  # the earliest copy of each message id (rule 7)
    for file in _channel_files(config, channel.id):
        for row in legacy_rows(read_file(file), zone_for, names):
            if not isinstance(row, LegacyRow) or row.channel_id != channel.id:
                continue
            if user_id is not None and row.user_id != user_id:
                continue
            kept = found.get(row.message_id)
            if kept is None or row.at < kept.at:
                found[row.message_id] = row
    newest = sorted(found.values(), key=attrgetter("at"))[-limit:] if limit else []
    return [
        NewMessage(
            channel.id,
            names.channel(channel.id),
            CHANNEL_TYPE,
            row.user_id,
            names.user(row.user_id),
            "legacy",
            row.message_id,
            row.role,
            row.content,
            datetime.fromisoformat(row.at).replace(tzinfo=UTC),
            row.metadata,
        ).stored(0, config.name)
        for row in newest
    ]
