"""Restore beside running bots (real processes): every acknowledged write survives somewhere."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.faults import restore_live

pytestmark = pytest.mark.slow


def test_restore_under_live_writers_loses_nothing(sqlite_template: Path, tmp_path: Path) -> None:
    database = tmp_path / "conversations.db"
    shutil.copyfile(sqlite_template, database)
    outcome = restore_live.run(database, tmp_path, restores=3)
    assert outcome.failures == 0, outcome
    assert outcome.lost == 0, outcome
    # The writers kept writing after the last restore, and those writes are there.
    after = int(outcome.notes[0].split()[0])
    assert after > 0 and outcome.acknowledged > after, outcome
