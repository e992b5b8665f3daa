"""Import of the legacy JSON conversation tree (see docs/migration.md).

- :mod:`convostore.legacy.reader`: files -> typed records and the problems found;
- :mod:`convostore.legacy.importer`: records -> rows (Core, over a synchronous ``Connection``);
- :mod:`convostore.legacy.run`: the import of ``migrate-legacy`` and of the Alembic data revision;
- :mod:`convostore.legacy.transition`: files not imported yet, and read-only serving of them;
- :mod:`convostore.legacy.names`: placeholder names replaced from Discord's REST API.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from convostore.config import BotConfig
from convostore.db import create_engine, translate_errors
from convostore.legacy.transition import legacy_files, unimported_files


def pending_legacy_files(config: BotConfig) -> list[Path]:
    """The bot's legacy files its database does not hold yet (blocking: opens a connection)."""
    if not legacy_files(config):
        return []

    async def ask() -> list[Path]:
        engine = create_engine(config.database_url, null_pool=True)
        try:
            async with engine.connect() as connection:
                return await unimported_files(config, connection)
        finally:
            await engine.dispose()

    with translate_errors(config.safe_database_url):
        return asyncio.run(ask())


__all__ = ["legacy_files", "pending_legacy_files", "unimported_files"]
