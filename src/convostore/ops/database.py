"""Reads of a bot's database for operator jobs (export, browse): read-only, errors translated."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar, cast

from sqlalchemy import Table, bindparam, select
from sqlalchemy.engine import Connection

from convostore.config import BotConfig
from convostore.db import translate_errors
from convostore.engine import make_engine, read_only
from convostore.errors import OperationError
from convostore.models import ConversationModel
from convostore.schema import check_schema

_C = cast(Table, ConversationModel.__table__)
_T = TypeVar("_T")


def newest_channel_names(
    connection: Connection, bot: str, channel_ids: Sequence[str]
) -> dict[str, tuple[str, str]]:
    """``{channel_id: (name, type)}`` from each channel's newest message (one index probe each)."""
    query = (
        select(_C.c.channel_name, _C.c.channel_type)
        .where(_C.c.bot_name == bot, _C.c.channel_id == bindparam("channel"))
        .order_by(_C.c.timestamp.desc(), _C.c.id.desc())
        .limit(1)
    )
    names: dict[str, tuple[str, str]] = {}
    for channel_id in channel_ids:
        row = connection.execute(query, {"channel": channel_id}).first()
        if row is not None:
            names[channel_id] = (row[0], row[1])
    return names


async def read_bot_database(config: BotConfig, work: Callable[[Connection], _T]) -> _T:
    """Run ``work`` on a read-only connection to the bot's database, errors translated.

    ``work`` may commit to end its read transaction (and start a new one) as it goes.
    """
    where = config.safe_database_url
    path = config.sqlite_path
    if path is not None and not path.is_file():
        raise OperationError(f"{path}: database file not found (bot {config.name})")
    engine = make_engine(config.database_url, null_pool=True)
    try:
        with translate_errors(where):
            async with read_only(engine).connect() as connection:
                await check_schema(connection, where)
                await connection.commit()
                return await connection.run_sync(work)
    finally:
        await engine.dispose()
