"""The move from JSON files to the database: find files not yet imported, serve them read-only.

``unimported_files`` tells a store (and ``convostore doctor``) that a bot still has legacy
history outside the database; ``legacy_history`` serves it, when ``legacy.read_fallback`` is on,
for a conversation that has no rows in the database yet.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Table, func, select
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from convostore.channels import ChannelInfo
from convostore.config import BotConfig
from convostore.legacy.importer import (
    conversation_bots,
    route,
    synthetic_message_id,
    to_utc,
    user_placeholder,
    utc_text,
)
from convostore.legacy.reader import SHARED_DIR, SHARED_INDEX, Era, classify, read_file
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


def legacy_history(
    config: BotConfig, channel: ChannelInfo, limit: int, user_id: str | None
) -> list[StoredMessage]:
    """The newest ``limit`` legacy records of the bot in ``channel``, oldest first (read-only).

    Records are routed, deduplicated and converted as the import would; they carry ``id`` 0 and
    ``session_id`` ``"legacy"`` because they are not stored.
    """
    root = Path(config.legacy.dir).expanduser()
    shared = root / SHARED_DIR
    prefix = f"{channel.id}_"
    layouts: tuple[tuple[Era, str | None, Path], ...] = (
        (2, config.name, shared / config.name),
        (0, config.name, root / config.name),
        (1, None, shared),
    )
    candidates = [
        classify(root, p, era=era, bot=bot)
        for era, bot, folder in layouts
        for p in sorted(folder.glob(f"{prefix}*.json"))
    ]
    if (shared / SHARED_INDEX).is_file():
        candidates.append(classify(root, shared / SHARED_INDEX, era=1, bot=None))
    zone = ZoneInfo(config.legacy.timezone)
    found: dict[str, tuple[datetime, dict[str, Any]]] = {}
    for file in candidates:
        parsed = read_file(file)
        for conversation in parsed.conversations:
            if conversation.channel_id != channel.id:
                continue
            if user_id is not None and conversation.user_id != user_id:
                continue
            shared_bots = conversation_bots(conversation)
            for record in conversation.records:
                if config.name not in route(file, shared_bots, record):
                    continue
                at = to_utc(record.timestamp, zone)
                message_id = record.message_id or synthetic_message_id(
                    channel.id,
                    conversation.user_id,
                    record.role,
                    record.content,
                    utc_text(at),
                )
                if message_id in found and found[message_id][0] <= at:
                    continue
                found[message_id] = (
                    at,
                    {
                        "user_id": conversation.user_id,
                        "username": record.username or user_placeholder(conversation.user_id),
                        "role": record.role,
                        "content": record.content,
                        "metadata": record.metadata,
                    },
                )
    newest = sorted(found.items(), key=lambda item: item[1][0])[-limit:] if limit else []
    return [
        NewMessage(
            channel.id,
            channel.name,
            channel.type,
            values["user_id"],
            values["username"],
            "legacy",
            message_id,
            values["role"],
            values["content"],
            at,
            values["metadata"],
        ).stored(0, config.name)
        for message_id, (at, values) in newest
    ]
