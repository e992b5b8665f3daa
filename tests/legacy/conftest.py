"""Fixtures of the legacy import tests: each module's ``tree`` fixture says which tree."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.legacy.test_import import write_configs


@pytest.fixture
def configs(tmp_path: Path, db_url: str, tree: Path) -> Path:
    """Configs of sage and spark (spark with its own session rules) reading the module's tree."""
    return write_configs(
        tmp_path / "bots", db_url, tree, sage={}, spark={"session_gap": 60, "session_timeout": 600}
    )
