"""Fixtures of the integration tests: a store on its own SQLite file (the thread-backed paths)."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from convostore import BotConfig, BotStore


@pytest.fixture
def sqlite_db_path(tmp_path: Path, sqlite_template: Path) -> Path:
    """A migrated SQLite database file of this test's own."""
    path = tmp_path / "conversations.db"
    shutil.copyfile(sqlite_template, path)
    return path


@pytest.fixture
async def sqlite_store(sqlite_db_path: Path) -> AsyncIterator[BotStore]:
    """The bot ``sage`` on ``sqlite_db_path``, open for the test."""
    config = BotConfig.model_validate({"name": "sage", "storage": {"path": str(sqlite_db_path)}})
    async with BotStore.open(config) as opened:
        yield opened
