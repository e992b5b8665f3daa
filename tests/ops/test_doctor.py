"""convostore doctor: a healthy database passes; each kind of problem is found, with advice."""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy.engine import make_url

from convostore import BotConfig
from convostore.cli import main
from convostore.ops.backup import MANIFEST_SUFFIX, backup_source
from convostore.ops.doctor import DatabaseReport, Finding, Status, diagnose
from convostore.schema import HEAD_REVISION
from tests.conftest import PostgresDatabases, upgrade
from tests.helpers.configs import write_bot_yaml

NOW = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


@pytest.fixture
def own_db_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A migrated database of the current backend that this test alone may damage."""
    if backend == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "data" / "conversations.db"
        path.parent.mkdir()
        shutil.copyfile(template, path)
        return f"sqlite+aiosqlite:///{path}"
    databases: PostgresDatabases = request.getfixturevalue("pg_databases")
    url = databases.create()
    upgrade(url)
    return url


def bot(url: str, tmp_path: Path, name: str = "sage") -> BotConfig:
    return BotConfig.model_validate(
        {
            "name": name,
            "storage": {
                "url": url,
                "type": make_url(url).get_backend_name(),
                "backups": {"dir": str(tmp_path / "backups")},
            },
            "legacy": {"dir": str(tmp_path / "legacy")},
        },
        strict=False,
    )


def record_backup(tmp_path: Path, at: datetime, url: str) -> Path:
    directory = tmp_path / "backups"
    directory.mkdir(exist_ok=True)
    source = backup_source(bot(url, tmp_path))
    backup = directory / f"conversations_{at:%Y-%m-%d}.db"
    backup.write_bytes(b"backup")
    Path(str(backup) + MANIFEST_SUFFIX).write_text(
        json.dumps({"source": source, "created_at": at.isoformat(), "verified": True})
    )
    return backup


def execute(url: str, *statements: str) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        with sqlite3.connect(str(parsed.database)) as conn:
            for statement in statements:
                conn.execute(statement)
        return
    plain = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(plain, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)  # type: ignore[arg-type]


def run(*configs: BotConfig, **options: Any) -> DatabaseReport:
    [report] = asyncio.run(diagnose(configs, now=NOW, **options)).databases
    return report


def by_check(report: DatabaseReport) -> dict[str, Finding]:
    return {f.check: f for f in report.findings}


def test_a_healthy_database_needs_no_attention(
    own_db_url: str, backend: str, tmp_path: Path
) -> None:
    record_backup(tmp_path, NOW - timedelta(hours=5), own_db_url)
    report = run(bot(own_db_url, tmp_path), bot(own_db_url, tmp_path, "echo"))
    assert report.bots == ("echo", "sage")
    assert not report.needs_attention, [f for f in report.findings if f.needs_attention]
    checks = by_check(report)
    assert checks["schema revision"].detail == f"{HEAD_REVISION} (head)"
    assert checks["model drift"].status is Status.OK
    for name in ("history", "session lookup", "cleanup selection"):
        [finding] = [f for f in report.findings if f.check.startswith(f"index use: {name}")]
        assert finding.status is Status.OK
    assert checks["last backup"].detail.startswith("5 h old")
    assert checks["legacy files (echo)"].detail == "none waiting to be imported"
    assert checks["legacy files (sage)"].status is Status.OK
    if backend == "sqlite":
        assert checks["journal mode"].detail == "wal"
        assert checks["auto vacuum"].status is Status.OK
        assert checks["integrity"].detail.startswith("integrity_check: ok")
        assert "busy_timeout 30000 ms, foreign_keys on, synchronous NORMAL" in (
            checks["connection pragmas"].detail
        )
    else:
        assert checks["integrity"].status is Status.SKIP


def test_a_database_stamped_at_an_old_revision_is_reported(own_db_url: str, tmp_path: Path) -> None:
    execute(own_db_url, "UPDATE alembic_version SET version_num = '0001'")
    record_backup(tmp_path, NOW, own_db_url)
    finding = by_check(run(bot(own_db_url, tmp_path)))["schema revision"]
    assert finding.status is Status.WARN
    assert finding.detail == f"0001, head is {HEAD_REVISION}"
    assert finding.advice is not None and "alembic upgrade head" in finding.advice


def test_a_revision_newer_than_the_code_fails(own_db_url: str, tmp_path: Path) -> None:
    execute(own_db_url, "UPDATE alembic_version SET version_num = '9999'")
    finding = by_check(run(bot(own_db_url, tmp_path)))["schema revision"]
    assert finding.status is Status.FAIL
    assert finding.advice is not None and "upgrade convostore" in finding.advice


def test_a_dropped_index_shows_as_drift_and_in_the_query_plan(
    own_db_url: str, backend: str, tmp_path: Path
) -> None:
    execute(own_db_url, "DROP INDEX idx_conversations_bot_channel_time")
    if backend == "sqlite":  # SQLite's other index for history (revision 0007)
        execute(own_db_url, "DROP INDEX idx_conversations_history")
    report = run(bot(own_db_url, tmp_path))
    checks = by_check(report)
    drift = checks["model drift"]
    assert drift.status is Status.WARN
    assert "add_index conversations.idx_conversations_bot_channel_time" in drift.detail
    assert drift.advice is not None
    assert "CREATE INDEX idx_conversations_bot_channel_time ON conversations" in drift.advice
    [history] = [f for f in report.findings if f.check.startswith("index use: history")]
    assert history.status is Status.WARN
    assert "not idx_conversations_bot_channel_time" in history.detail
    assert report.needs_attention


def test_a_database_without_schema_fails(backend: str, tmp_path: Path, request: Any) -> None:
    if backend == "sqlite":
        path = tmp_path / "empty.db"
        sqlite3.connect(path).close()
        url = f"sqlite+aiosqlite:///{path}"
    else:
        url = request.getfixturevalue("pg_databases").create()
    finding = by_check(run(bot(url, tmp_path)))["schema revision"]
    assert finding.status is Status.FAIL
    assert finding.advice is not None and "alembic upgrade head" in finding.advice


def test_journal_mode_not_wal_on_a_file_opened_without_the_store(
    sqlite_template: Path, tmp_path: Path
) -> None:
    path = tmp_path / "restored-by-hand.db"
    shutil.copyfile(sqlite_template, path)
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode = DELETE")
    legacy = tmp_path / "legacy" / "multi_bot_conversations" / "sage" / "general.json"
    legacy.parent.mkdir(parents=True)
    legacy.write_text("[]")  # the legacy check reads the database too
    report = run(bot(f"sqlite+aiosqlite:///{path}", tmp_path))
    assert by_check(report)["legacy files (sage)"].status is Status.WARN
    journal = by_check(report)["journal mode"]
    assert journal.status is Status.FAIL
    assert journal.detail.startswith("delete, not wal")
    assert journal.advice is not None and "PRAGMA journal_mode=WAL" in journal.advice
    with sqlite3.connect(path) as conn:  # doctor reports, it does not repair
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)


def test_a_file_created_without_auto_vacuum_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        # A file that already has a table when convostore first migrates it keeps auto_vacuum
        # off, as every file made before convostore set it.
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("CREATE TABLE notes (x)")
    upgrade(f"sqlite+aiosqlite:///{path}")
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA auto_vacuum").fetchone() == (0,)
    finding = by_check(run(bot(f"sqlite+aiosqlite:///{path}", tmp_path)))["auto vacuum"]
    assert finding.status is Status.WARN
    assert finding.advice is not None and "convostore cleanup --vacuum" in finding.advice


def test_a_missing_sqlite_file_is_reported_and_not_created(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "conversations.db"
    finding = by_check(run(bot(f"sqlite+aiosqlite:///{path}", tmp_path)))["database file"]
    assert finding.status is Status.FAIL
    assert not path.exists()


def test_a_corrupted_sqlite_file_fails(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"not a database at all" * 100)
    report = run(bot(f"sqlite+aiosqlite:///{path}", tmp_path))
    [finding] = [f for f in report.findings if f.check == "database file"]
    assert finding.status is Status.FAIL
    assert "restore" in (finding.advice or "")


@pytest.mark.parametrize(
    ("age", "status"), [(None, Status.WARN), (timedelta(days=3), Status.WARN)], ids=str
)
def test_no_backup_or_an_old_one_needs_attention(
    own_db_url: str, tmp_path: Path, age: timedelta | None, status: Status
) -> None:
    if age is not None:
        record_backup(tmp_path, NOW - age, own_db_url)
    finding = by_check(run(bot(own_db_url, tmp_path)))["last backup"]
    assert finding.status is status
    assert finding.advice is not None and "convostore backup" in finding.advice
    if age is not None:
        assert finding.detail.startswith("3.0 days old")


def test_legacy_files_waiting_are_reported(own_db_url: str, tmp_path: Path) -> None:
    waiting = tmp_path / "legacy" / "multi_bot_conversations" / "sage" / "general.json"
    waiting.parent.mkdir(parents=True)
    waiting.write_text("[]")
    record_backup(tmp_path, NOW, own_db_url)
    finding = by_check(run(bot(own_db_url, tmp_path)))["legacy files (sage)"]
    assert finding.status is Status.WARN
    assert finding.detail == f"1 not imported yet, e.g. {waiting}"
    assert finding.advice is not None and "convostore migrate-legacy --bot sage" in finding.advice


def test_unreachable_postgresql_is_one_finding_without_the_password(tmp_path: Path) -> None:
    config = bot("postgresql://bots:s3cr3t-pw@127.0.0.1:1/bots", tmp_path)
    report = run(config)
    [connection] = [f for f in report.findings if f.check == "connection"]
    assert connection.status is Status.FAIL
    assert "cannot connect" in connection.detail
    assert "s3cr3t-pw" not in repr(report)


def write_config(tmp_path: Path, url: str) -> Path:
    directory = tmp_path / "bots"
    write_bot_yaml(
        directory,
        "sage",
        url=url,
        backups=tmp_path / "backups",
        legacy={"dir": str(tmp_path / "legacy")},
        name=False,
    )
    return directory


def test_cli_exits_0_when_healthy_and_3_with_advice_on_warnings(
    own_db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config_dir = write_config(tmp_path, own_db_url)
    record_backup(tmp_path, datetime.now(UTC), own_db_url)
    assert main(["doctor", "--config-dir", str(config_dir)]) == 0
    out = capsys.readouterr().out
    assert "OK    schema revision" in out
    assert "all checks passed" in out

    assert main(["doctor", "--config-dir", str(config_dir), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["status"] == "ok" and document["exit_code"] == 0
    [database] = document["databases"]
    assert database["bots"] == ["sage"]
    [revision] = [f for f in database["findings"] if f["check"] == "schema revision"]
    assert revision["status"] == "OK" and revision["detail"].startswith(HEAD_REVISION)

    execute(own_db_url, "UPDATE alembic_version SET version_num = '0001'")
    assert main(["doctor", "--config-dir", str(config_dir), "--bot", "sage"]) == 3
    captured = capsys.readouterr()
    assert f"WARN  schema revision: 0001, head is {HEAD_REVISION}" in captured.out
    assert "-> stop the bots and run `convostore upgrade`" in captured.out
    assert "need attention" in captured.out
    assert "Traceback" not in captured.err
    assert main(["doctor", "--config-dir", str(config_dir), "--json"]) == 3
    document = json.loads(capsys.readouterr().out)
    assert document["status"] == "warn" and document["exit_code"] == 3
    [revision] = [
        f for f in document["databases"][0]["findings"] if f["check"] == "schema revision"
    ]
    assert revision["status"] == "WARN" and "alembic upgrade head" in revision["advice"]


def test_cli_exits_1_on_a_failure(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config_dir = write_config(tmp_path, "postgresql://bots:s3cr3t-pw@127.0.0.1:1/bots")
    assert main(["doctor", "--config-dir", str(config_dir), "--json"]) == 1
    out = capsys.readouterr().out
    document = json.loads(out)
    assert document["status"] == "fail" and document["exit_code"] == 1
    assert "s3cr3t-pw" not in out


def test_cli_unknown_bot_is_one_line_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config_dir = write_config(tmp_path, f"sqlite:///{tmp_path / 'x.db'}")
    assert main(["doctor", "--config-dir", str(config_dir), "--bot", "nobody"]) == 1
    err = capsys.readouterr().err
    assert err.strip() == "convostore doctor: error: no bot named 'nobody' in the configuration"


def test_cli_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["doctor", "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "--full" in out and "--quick" in out and "--config-dir" in out


def test_another_databases_backup_is_not_this_ones(own_db_url: str, tmp_path: Path) -> None:
    # Per-bot files sharing one backups directory: spark's backup says nothing about sage's file.
    directory = tmp_path / "backups"
    directory.mkdir()
    other = directory / f"spark_{NOW:%Y-%m-%d}.db"
    other.write_bytes(b"backup")
    Path(str(other) + MANIFEST_SUFFIX).write_text(
        json.dumps(
            {"source": "/srv/data/spark.db", "created_at": NOW.isoformat(), "verified": True}
        )
    )
    finding = by_check(run(bot(own_db_url, tmp_path)))["last backup"]
    assert finding.status is Status.WARN
    assert finding.detail.startswith("none of this database found in")
