"""Cleanup gives disk space back: SQLite files shrink; ``--vacuum`` shrinks older files too."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from convostore import BotConfig
from convostore.cli import main
from convostore.ops.retention import cleanup
from tests.conftest import ConfigFactory, upgrade
from tests.helpers.configs import write_bot_yaml

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
SESSIONS = 40
PER_SESSION = 250
CONTENT = "x" * 600


def fill(path: Path) -> None:
    """SESSIONS sessions of bot sage, the first half 200 days old, the rest 10 days old."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        for s in range(SESSIONS):
            days = 200 if s < SESSIONS // 2 else 10
            at = (NOW - timedelta(days=days, minutes=s)).replace(tzinfo=None)
            stamp = at.isoformat(sep=" ", timespec="microseconds")
            conn.execute(
                "INSERT INTO sessions (bot_name, channel_id, session_id, started_at,"
                " last_activity, message_count, is_active) VALUES ('sage', ?, 's', ?, ?, ?, 0)",
                (f"c{s}", stamp, stamp, PER_SESSION),
            )
            conn.executemany(
                "INSERT INTO conversations (bot_name, channel_id, channel_name, channel_type,"
                " user_id, username, session_id, message_id, role, content, timestamp) VALUES"
                " ('sage', ?, 'general', 'channel', 'u1', 'alice', 's', ?, 'user', ?, ?)",
                [(f"c{s}", f"m{s}-{i}", CONTENT, stamp) for i in range(PER_SESSION)],
            )
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def size(path: Path) -> int:
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())


def config_for(path: Path) -> BotConfig:
    return BotConfig.model_validate(
        {"name": "sage", "storage": {"path": str(path)}, "legacy": {"dir": str(path.parent)}},
        strict=False,
    )


@pytest.fixture
def database(sqlite_template: Path, tmp_path: Path) -> Path:
    path = tmp_path / "conversations.db"
    shutil.copyfile(sqlite_template, path)
    fill(path)
    return path


@pytest.fixture
def old_database(tmp_path: Path) -> Path:
    """A file made the way convostore made them before it set auto_vacuum."""
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("CREATE TABLE notes (x)")
    upgrade(f"sqlite+aiosqlite:///{path}")
    fill(path)
    return path


def test_the_file_shrinks_after_cleanup_of_half_the_rows(database: Path) -> None:
    with sqlite3.connect(database) as conn:
        assert conn.execute("PRAGMA auto_vacuum").fetchone() == (2,)
    before = size(database)
    result = asyncio.run(
        cleanup(config_for(database), older_than=timedelta(days=90), now=NOW, batch_size=7)
    )
    assert (result.sessions, result.messages) == (SESSIONS // 2, SESSIONS // 2 * PER_SESSION)
    assert result.space is not None and result.space.method == "incremental_vacuum"
    after = size(database)
    assert after < before * 0.6, (before, after)
    assert result.space.bytes_before == before and result.space.bytes_after == after
    with sqlite3.connect(database) as conn:
        assert conn.execute("PRAGMA freelist_count").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM conversations").fetchone() == (
            SESSIONS // 2 * PER_SESSION,
        )


def test_an_old_file_keeps_its_size_unless_vacuum_is_asked(old_database: Path) -> None:
    before = size(old_database)
    result = asyncio.run(cleanup(config_for(old_database), older_than=timedelta(days=90), now=NOW))
    assert result.space is not None and result.space.method == "none"
    assert size(old_database) >= before * 0.95

    vacuumed = asyncio.run(
        cleanup(config_for(old_database), older_than=timedelta(days=90), now=NOW, vacuum=True)
    )
    assert vacuumed.sessions == 0  # nothing left to delete; the rewrite still runs
    assert vacuumed.space is not None and vacuumed.space.method == "VACUUM"
    assert size(old_database) < before * 0.6
    with sqlite3.connect(old_database) as conn:
        # Converted: later cleanups give space back by themselves.
        assert conn.execute("PRAGMA auto_vacuum").fetchone() == (2,)
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_dry_run_reclaims_nothing(database: Path) -> None:
    before = size(database)
    result = asyncio.run(
        cleanup(config_for(database), older_than=timedelta(days=90), now=NOW, dry_run=True)
    )
    assert result.space is None and size(database) == before


async def test_vacuum_on_both_backends_keeps_the_rows_that_stay(
    make_config: ConfigFactory, db_url: str
) -> None:
    config = make_config("sage")
    if make_url(db_url).get_backend_name() == "sqlite":
        fill(Path(str(make_url(db_url).database)))
    else:
        from tests.ops.test_guarded_upgrade import add_messages

        add_messages("postgresql", db_url, 10)
    result = await cleanup(config, older_than=timedelta(days=90), now=NOW, vacuum=True)
    assert result.space is not None
    assert result.space.method in ("VACUUM", "VACUUM ANALYZE")
    again = await cleanup(config, older_than=timedelta(days=90), now=NOW, dry_run=True)
    assert again.sessions == 0


def test_cli_cleanup_reports_the_file_size(
    database: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config_dir = tmp_path / "bots"
    write_bot_yaml(config_dir, "sage", path=database, name=False)
    assert main(["cleanup", "--older-than", "90d", "--config-dir", str(config_dir), "--yes"]) == 0
    out = capsys.readouterr().out
    assert "sage: deleted 20 sessions, 5000 messages" in out
    assert "sage: database file" in out and "(incremental_vacuum)" in out
    args = ["cleanup", "--older-than", "90d", "--vacuum", "--config-dir", str(config_dir), "--yes"]
    assert main(args) == 0
    assert "(VACUUM)" in capsys.readouterr().out
