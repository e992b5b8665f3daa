"""Reads of a bot's database for operator jobs (export, browse): read-only, errors translated."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar, cast

from sqlalchemy import Table, select
from sqlalchemy.engine import Connection

from convostore.config import BotConfig
from convostore.db import translate_errors
from convostore.engine import make_engine, read_only
from convostore.errors import OperationError
from convostore.models import ChatSessionModel, ConversationModel
from convostore.schema import check_schema

_C = cast(Table, ConversationModel.__table__)
_S = cast(Table, ChatSessionModel.__table__)
_T = TypeVar("_T")


_NAMES_PER_STATEMENT = 500


def newest_channel_names(
    connection: Connection, bot: str, channel_ids: Sequence[str]
) -> dict[str, tuple[str, str]]:
    """``{channel_id: (name, type)}`` from each channel's newest message.

    One statement per 500 channels (an index probe per channel inside it): on an async driver
    every statement is a round trip to the driver's thread or the server, and a page names 100.
    """
    names: dict[str, tuple[str, str]] = {}
    unique = list(dict.fromkeys(channel_ids))
    for start in range(0, len(unique), _NAMES_PER_STATEMENT):
        wanted = (
            select(_S.c.channel_id)
            .where(
                _S.c.bot_name == bot,
                _S.c.channel_id.in_(unique[start : start + _NAMES_PER_STATEMENT]),
            )
            .distinct()
            .subquery()
        )
        newest = (
            select(_C.c.id)
            .where(_C.c.bot_name == bot, _C.c.channel_id == wanted.c.channel_id)
            .order_by(_C.c.timestamp.desc(), _C.c.id.desc())
            .limit(1)
            .scalar_subquery()
        )
        rows = connection.execute(
            select(_C.c.channel_id, _C.c.channel_name, _C.c.channel_type).where(
                _C.c.id.in_(select(newest).select_from(wanted))
            )
        )
        for channel_id, name, kind in rows:
            names[channel_id] = (name, kind)
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
