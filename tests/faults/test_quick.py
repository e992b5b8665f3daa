"""The quick run of every fault experiment (``python -m tests.faults`` runs them at full size).

Each must lose no acknowledged write and show the user the expected clear line every time.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import PostgresDatabases, upgrade
from tests.faults import disk, kill, pgterm, places
from tests.faults.report import Outcome

pytestmark = pytest.mark.slow


def _clean(outcome: Outcome) -> None:
    assert (outcome.failures, outcome.lost) == (0, 0), (outcome.seen, outcome.notes)
    assert outcome.attempts > 0


def test_kill_9_of_writers_during_appends(db_url: str, backend: str, tmp_path: Path) -> None:
    outcome = kill.appends(db_url, backend, tmp_path, kills=3, writer_count=3)
    _clean(outcome)
    assert outcome.acknowledged > 0


def test_kill_9_of_migrate_legacy_then_rerun(sqlite_template: Path, tmp_path: Path) -> None:
    outcome = kill.migrate_legacy(sqlite_template, tmp_path, kills=1, messages=1500)
    _clean(outcome)
    assert outcome.seen == {"rerun identical to a clean import": 1}


def test_postgresql_backends_terminated_mid_traffic(
    pg_databases: PostgresDatabases, tmp_path: Path
) -> None:
    url = pg_databases.create()
    upgrade(url)
    outcome = pgterm.run(url, tmp_path, seconds=2.0, writer_count=2)
    _clean(outcome)
    assert outcome.acknowledged > 0 and not outcome.notes[0].startswith("0 backends")


def test_full_disk_under_database_backup_and_restore(sqlite_template: Path, tmp_path: Path) -> None:
    for outcome in (
        disk.under_database(sqlite_template, tmp_path, sizes_kb=[256]),
        disk.under_backup(sqlite_template, tmp_path, sizes_kb=[64, 768]),
        disk.under_restore(sqlite_template, tmp_path, fills=[1_000, 200_000]),
    ):
        _clean(outcome)


def test_full_disk_under_migrate_legacy(sqlite_template: Path, tmp_path: Path) -> None:
    outcome = disk.under_import(sqlite_template, tmp_path, messages=4000, sizes_kb=[256, 1536])
    _clean(outcome)
    assert outcome.seen == {"exit 1, one line: …disk is full…": 2}, outcome.seen
    assert outcome.acknowledged == 2 * int(outcome.notes[-1].split()[2])


def test_read_only_places_and_corrupt_files(sqlite_template: Path, tmp_path: Path) -> None:
    _clean(places.read_only(sqlite_template, tmp_path))
    _clean(places.corrupt(sqlite_template, tmp_path))
