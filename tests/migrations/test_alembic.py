"""Alembic: pytest-alembic's built-in checks on both backends, plus convostore's own rules."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory
from pytest_alembic.tests import (  # noqa: F401  (collected as this module's tests)
    test_model_definitions_match_ddl,
    test_single_head_revision,
    test_up_down_consistency,
    test_upgrade,
)
from sqlalchemy import create_engine, inspect
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.pool import NullPool

from convostore.engine import install_sqlite_transaction_handling
from convostore.schema import KNOWN_REVISIONS
from tests.conftest import BACKENDS, ROOT, PostgresDatabases, upgrade
from tests.conftest import alembic_config as make_alembic_config


@pytest.fixture(params=BACKENDS)
def alembic_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        engine = create_engine(f"sqlite:///{tmp_path / 'alembic.db'}", poolclass=NullPool)
        install_sqlite_transaction_handling(engine, foreign_keys=False)
    else:
        databases: PostgresDatabases = request.getfixturevalue("pg_databases")
        url = make_url(databases.create()).set(drivername="postgresql+psycopg")
        engine = create_engine(url, poolclass=NullPool)
    yield engine
    engine.dispose()


@pytest.fixture(name="alembic_config")
def alembic_config_fixture() -> Config:
    return make_alembic_config()


def test_known_revisions_match_the_scripts() -> None:
    script = ScriptDirectory.from_config(make_alembic_config())
    revisions = [rev.revision for rev in reversed(list(script.walk_revisions()))]
    assert tuple(revisions) == KNOWN_REVISIONS


def _tables(db: Path) -> set[str]:
    with sqlite3.connect(db) as conn:
        return {
            r[0]
            for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            if not r[0].startswith("sqlite_")
        }


def _alembic(
    *args: str, cwd: Path, env_extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    import os

    env = {**os.environ, **(env_extra or {})}
    return subprocess.run(
        [sys.executable, "-m", "alembic", "-c", str(ROOT / "alembic.ini"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_upgrade_head_migrates_every_configured_database(tmp_path: Path) -> None:
    configs = tmp_path / "bots"
    configs.mkdir()
    (configs / "sage.yaml").write_text("storage:\n  path: ./data/conversations.db\n")
    (configs / "spark.yaml").write_text("storage:\n  path: ./data/conversations.db\n")
    (configs / "logic.yaml").write_text("storage:\n  path: ./data/{bot_name}.db\n")
    result = _alembic(
        "upgrade", "head", cwd=tmp_path, env_extra={"CONVOSTORE_CONFIG_DIR": str(configs)}
    )
    assert result.returncode == 0, result.stderr
    for db in ("conversations.db", "logic.db"):
        assert {"conversations", "sessions", "alembic_version"} <= _tables(tmp_path / "data" / db)
    with sqlite3.connect(tmp_path / "data" / "logic.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == (
            KNOWN_REVISIONS[-1],
        )
    # Downgrade base removes the schema again.
    result = _alembic(
        "downgrade", "base", cwd=tmp_path, env_extra={"CONVOSTORE_CONFIG_DIR": str(configs)}
    )
    assert result.returncode == 0, result.stderr
    assert _tables(tmp_path / "data" / "logic.db") == {"alembic_version"}


def test_x_url_targets_one_database(tmp_path: Path) -> None:
    db = tmp_path / "one.db"
    result = _alembic(
        "-x",
        f"url=sqlite:///{db}",
        "upgrade",
        "head",
        cwd=tmp_path,
        env_extra={"CONVOSTORE_CONFIG_DIR": str(tmp_path / "none")},
    )
    assert result.returncode == 0, result.stderr
    assert {"conversations", "sessions"} <= _tables(db)
    assert not (tmp_path / "data").exists()


def test_database_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "newer.db"
    upgrade(f"sqlite+aiosqlite:///{db}")
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999'")
    result = _alembic("-x", f"url=sqlite:///{db}", "upgrade", "head", cwd=tmp_path)
    assert result.returncode != 0
    assert "newer than this convostore knows" in result.stderr
    assert "Traceback" not in result.stderr


def test_password_never_printed(tmp_path: Path) -> None:
    result = _alembic(
        "-x", "url=postgresql://bots:s3cr3t-pw@127.0.0.1:1/bots", "upgrade", "head", cwd=tmp_path
    )
    assert result.returncode != 0
    assert "cannot connect to the database server" in result.stderr
    assert "s3cr3t-pw" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


def test_indexes_and_constraints_have_the_planned_names(tmp_path: Path) -> None:
    db = tmp_path / "names.db"
    upgrade(f"sqlite+aiosqlite:///{db}")
    engine = create_engine(f"sqlite:///{db}")
    try:
        inspector = inspect(engine)
        conv = {i["name"] for i in inspector.get_indexes("conversations")}
        sess = {i["name"] for i in inspector.get_indexes("sessions")}
        assert "idx_conversations_session" in conv
        assert "idx_conversations_bot_channel" not in conv  # 0008: served by the next one
        assert "idx_conversations_bot_channel_time" in conv
        assert {"idx_sessions_bot_channel", "idx_sessions_active", "uq_sessions_one_active"} <= sess
        checks = {c["name"] for c in inspector.get_check_constraints("conversations")}
        assert {"ck_conversations_channel_type", "ck_conversations_role"} <= checks
        uniques = {u["name"] for u in inspector.get_unique_constraints("conversations")}
        assert "uq_conversations_bot_name_message_id" in uniques
    finally:
        engine.dispose()
