"""Guarded upgrades: a verified backup before migrating a database with data; a failure undoes all.

The failing upgrade runs against a copy of the project's Alembic environment with the initial
revision and a revision that changes data and schema, then fails, so the real revisions are never
involved.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from alembic import command
from alembic.config import Config
from alembic.util import CommandError
from sqlalchemy.engine import make_url

from convostore.ops.backup import verify_sqlite
from tests.conftest import ROOT, PostgresDatabases
from tests.helpers.rows import plain_url

FAILING_REVISION = '''"""Fails midway, after changing schema and data."""
import sqlalchemy as sa
from alembic import op

revision = "0099"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("sessions", sa.Column("note", sa.Text(), nullable=True))
    op.execute("UPDATE conversations SET content = 'changed'")
    op.execute("INSERT INTO no_such_table VALUES (1)")


def downgrade() -> None:
    pass
'''


def script_dir(tmp_path: Path) -> Path:
    """An alembic.ini over the project's env.py, revision 0001 and the failing 0099."""
    scripts = tmp_path / "migrations"
    (scripts / "versions").mkdir(parents=True)
    shutil.copy(ROOT / "alembic" / "env.py", scripts / "env.py")
    shutil.copy(ROOT / "alembic" / "script.py.mako", scripts / "script.py.mako")
    shutil.copy(
        ROOT / "alembic" / "versions" / "0001_initial_schema.py",
        scripts / "versions" / "0001_initial_schema.py",
    )
    (scripts / "versions" / "0099_fails.py").write_text(FAILING_REVISION)
    ini = tmp_path / "alembic.ini"
    text = (ROOT / "alembic.ini").read_text()
    text = re.sub(r"(?m)^script_location = .*$", f"script_location = {scripts}", text)
    text = re.sub(
        r"(?m)^convostore_config_dir = .*$", f"convostore_config_dir = {tmp_path / 'bots'}", text
    )
    ini.write_text(text)
    return ini


def alembic_config(ini: Path, url: str) -> Config:
    cfg = Config(str(ini))
    cfg.attributes["configure_logger"] = False
    cfg.cmd_opts = argparse.Namespace(x=[f"url={url}"])
    return cfg


CONTENTS = "SELECT message_id, content FROM conversations ORDER BY id"


def snapshot(backend: str, url: str) -> tuple[object, ...]:
    """Revision, session columns and message contents: what a failed upgrade must not change."""
    if backend == "sqlite":
        with sqlite3.connect(str(make_url(url).database)) as conn:
            return (
                conn.execute("SELECT version_num FROM alembic_version").fetchall(),
                [r[1] for r in conn.execute("PRAGMA table_info(sessions)")],
                conn.execute(CONTENTS).fetchall(),
            )
    with psycopg.connect(plain_url(url)) as conn:
        return (
            conn.execute("SELECT version_num FROM alembic_version").fetchall(),
            [
                r[0]
                for r in conn.execute(
                    "SELECT column_name FROM information_schema.columns"
                    " WHERE table_name = 'sessions' ORDER BY ordinal_position"
                )
            ],
            conn.execute(CONTENTS).fetchall(),
        )


def add_messages(backend: str, url: str, count: int) -> None:
    session = (
        "INSERT INTO sessions (bot_name, channel_id, session_id, started_at, last_activity,"
        " message_count, is_active) VALUES ('sage', 'c1', 's1', '2026-11-24 10:00:00',"
        " '2026-11-24 10:00:00', 0, {true})"
    )
    message = (
        "INSERT INTO conversations (bot_name, channel_id, channel_name, channel_type, user_id,"
        " username, session_id, message_id, role, content, timestamp) VALUES ('sage', 'c1',"
        " 'general', 'channel', 'u1', 'alice', 's1', {mark}, 'user', 'hello',"
        " '2026-11-24 10:00:00')"
    )
    if backend == "sqlite":
        with sqlite3.connect(str(make_url(url).database)) as conn:
            conn.execute(session.format(true=1))
            conn.executemany(message.format(mark="?"), [(f"m{i}",) for i in range(count)])
        return
    with psycopg.connect(plain_url(url)) as conn:
        conn.execute(session.format(true="true"))
        with conn.cursor() as cursor:
            cursor.executemany(message.format(mark="%s"), [(f"m{i}",) for i in range(count)])


@pytest.fixture
def database_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'data' / 'conversations.db'}"
    databases: PostgresDatabases = request.getfixturevalue("pg_databases")
    return databases.create()


def test_failed_upgrade_leaves_the_database_as_it_was_and_names_the_backup(
    backend: str, database_url: str, tmp_path: Path
) -> None:
    ini = script_dir(tmp_path)
    command.upgrade(alembic_config(ini, database_url), "0001")
    add_messages(backend, database_url, 25)
    before = snapshot(backend, database_url)

    with pytest.raises(CommandError) as failure:
        command.upgrade(alembic_config(ini, database_url), "head")

    assert snapshot(backend, database_url) == before
    message = str(failure.value)
    if backend == "postgresql":
        assert "backup" not in message  # guarded upgrades are for SQLite; PG rolls back alone
        return
    assert "no_such_table" in message and "left as it was" in message
    backups = list((tmp_path / "data" / "backups").glob("conversations_*.db"))
    assert len(backups) == 1
    assert len(list(backups[0].parent.iterdir())) == 2  # the backup and its manifest, no -wal
    assert str(backups[0]) in message
    verification = verify_sqlite(backups[0])
    assert verification.ok
    assert verification.revision == "0001"
    assert verification.messages_per_bot == {"sage": 25}


def test_failed_upgrade_from_the_command_line_names_the_backup_without_a_traceback(
    tmp_path: Path,
) -> None:
    ini = script_dir(tmp_path)
    db = tmp_path / "data" / "conversations.db"
    bots = tmp_path / "bots"
    bots.mkdir()
    (bots / "sage.yaml").write_text(
        f"storage:\n  path: {db}\n  backups: {{dir: {tmp_path / 'safe'}, keep: 3}}\n"
    )
    url = f"sqlite+aiosqlite:///{db}"
    command.upgrade(alembic_config(ini, url), "0001")
    add_messages("sqlite", url, 3)
    before = snapshot("sqlite", url)

    result = subprocess.run(
        [sys.executable, "-m", "alembic", "-c", str(ini), "upgrade", "head"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    [backup] = (tmp_path / "safe").glob("conversations_*.db")
    assert f"a verified backup taken before the upgrade is at {backup}" in result.stderr
    assert snapshot("sqlite", url) == before
    assert verify_sqlite(backup).ok


def test_no_backup_for_a_new_database_or_one_at_head(tmp_path: Path) -> None:
    db = tmp_path / "data" / "conversations.db"
    url = f"sqlite+aiosqlite:///{db}"
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.attributes["configure_logger"] = False
    cfg.cmd_opts = argparse.Namespace(x=[f"url={url}"])
    cfg.set_main_option("convostore_config_dir", str(tmp_path / "none"))
    command.upgrade(cfg, "head")
    add_messages("sqlite", url, 2)
    command.upgrade(cfg, "head")
    command.stamp(cfg, "head")
    assert not (tmp_path / "data" / "backups").exists()


def test_upgrade_with_data_and_pending_revisions_takes_one_verified_backup(
    tmp_path: Path,
) -> None:
    ini = script_dir(tmp_path)
    (Path(ini.parent) / "migrations" / "versions" / "0099_fails.py").write_text(
        FAILING_REVISION.replace('op.execute("INSERT INTO no_such_table VALUES (1)")', "")
    )
    url = f"sqlite+aiosqlite:///{tmp_path / 'data' / 'conversations.db'}"
    command.upgrade(alembic_config(ini, url), "0001")
    add_messages("sqlite", url, 4)
    command.upgrade(alembic_config(ini, url), "head")
    [backup] = (tmp_path / "data" / "backups").glob("conversations_*.db")
    assert verify_sqlite(backup).messages_per_bot == {"sage": 4}
    assert snapshot("sqlite", url)[0] == [("0099",)]


def test_a_new_sqlite_database_gives_freed_pages_back(tmp_path: Path) -> None:
    db = tmp_path / "fresh.db"
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.attributes["configure_logger"] = False
    cfg.cmd_opts = argparse.Namespace(x=[f"url=sqlite:///{db}"])
    command.upgrade(cfg, "head")
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA auto_vacuum").fetchone() == (2,)  # INCREMENTAL
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
