"""A user's data across bots: erase it (``forget-user``) or export it (``export --user``).

Both work from the same finding, :func:`convostore.repositories.lifecycle.user_data`: the user's
messages everywhere, their own DM channels entirely (the bot's replies too) and the earlier
versions of those messages. The export is what the erase would remove, so a data-access request
and an erasure request cover the same rows.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.engine import Connection

from convostore.config import BotConfig
from convostore.errors import InvalidInput
from convostore.ops import write_error
from convostore.ops.database import read_bot_database
from convostore.records import StoredMessage
from convostore.repositories.lifecycle import LifecycleRepository, chunks, user_data
from convostore.repositories.rows import MESSAGE_COLUMNS, MESSAGES, message_from_row


def decimal_user_id(value: str) -> str:
    text = str(value).strip()
    if not text or not text.isascii() or not text.isdigit() or len(text) > 64:
        raise InvalidInput(f"USER_ID must be a decimal Discord id, got {str(value)[:40]!r}")
    return text


@dataclass(frozen=True)
class ForgetCount:
    """What ``forget-user`` erased (or, in a dry run, would erase) for one bot."""

    bot: str
    messages: int
    dm_channels: int
    group_dms: int
    dry_run: bool


async def forget_user(config: BotConfig, user_id: str, *, dry_run: bool = False) -> ForgetCount:
    """Erase ``user_id``'s data for one bot (``BotStore.forget_user``), or count it."""
    user = decimal_user_id(user_id)

    def count(connection: Connection) -> ForgetCount:
        data = user_data(connection, config.name, user)
        return ForgetCount(
            config.name, len(data.message_ids), len(data.dm_channels), len(data.group_dms), True
        )

    before = await read_bot_database(config, count)
    if dry_run:
        return before
    from convostore.store import BotStore

    async with BotStore.open(config) as store:
        erased = await store.forget_user(user)
    return ForgetCount(config.name, erased, before.dm_channels, before.group_dms, False)


_BY_IDS = select(*MESSAGE_COLUMNS).where(
    MESSAGES.c.bot_name == bindparam("bot"),
    MESSAGES.c.message_id.in_(bindparam("ids", expanding=True)),
)


def _message_json(record: StoredMessage, revisions: list[dict[str, Any]]) -> dict[str, Any]:
    document = asdict(record)
    document["revisions"] = revisions
    return document


def _bot_document(connection: Connection, *, bot: str, user: str) -> dict[str, Any]:
    data = user_data(connection, bot, user)
    records: list[StoredMessage] = []
    for part in chunks(data.message_ids):
        rows = connection.execute(_BY_IDS, {"bot": bot, "ids": part})
        records.extend(message_from_row(row) for row in rows)
    records.sort(key=lambda r: (r.timestamp, r.id))
    lifecycle = LifecycleRepository(connection, bot)
    return {
        "usernames": data.usernames,
        "dm_channels": data.dm_channels,
        "group_dms": data.group_dms,
        "messages": [
            _message_json(r, [asdict(v) for v in lifecycle.revisions(r.message_id)])
            for r in records
        ],
    }


def _default(value: object) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


async def export_user(configs: list[BotConfig], user_id: str, out: Path) -> tuple[Path, int]:
    """Write ``out/user-{user_id}.json``: everything the bots store about the user.

    One document: per bot, the rows ``forget-user`` would erase (the user's messages, their DM
    channels with the bots' replies), each with its earlier versions. Returns the file and the
    number of messages in it.
    """
    user = decimal_user_id(user_id)
    bots: dict[str, Any] = {}
    for config in configs:
        bots[config.name] = await read_bot_database(
            config, functools.partial(_bot_document, bot=config.name, user=user)
        )
    document = {
        "user_id": user,
        "exported_at": datetime.now(UTC).isoformat(),
        "bots": bots,
    }
    text = json.dumps(document, default=_default, ensure_ascii=False, indent=2) + "\n"
    target = await asyncio.to_thread(_write, out, f"user-{user}.json", text)
    return target, sum(len(b["messages"]) for b in bots.values())


def _write(out: Path, name: str, text: str) -> Path:
    target = out / name
    tmp = out / f".{name}.tmp"
    try:
        out.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise write_error(
            exc, out, job="export", unfinished="nothing written", failed="cannot write the export"
        ) from None
    return target


__all__ = ["ForgetCount", "decimal_user_id", "export_user", "forget_user"]
