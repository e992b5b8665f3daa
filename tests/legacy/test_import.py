"""The legacy import on SQLite and PostgreSQL, through the CLI and through `alembic upgrade`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import pytest
from alembic import command
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine, make_url

from convostore.cli import main
from convostore.legacy.rules import synthetic_message_id
from tests.conftest import _truncate, alembic_config
from tests.helpers.rows import query, sync_url
from tests.legacy.tree import (
    BIG,
    C1,
    C2,
    C3,
    C4,
    EXOTIC,
    EXPECTED_UNREADABLE,
    M1,
    M2,
    U1,
    U2,
    conversation,
    long_tree,
    messy_tree,
    record,
    write,
)

COLUMNS = (
    "bot_name, channel_id, channel_name, channel_type, user_id, username, session_id, message_id,"
    " role, content, timestamp, metadata, source"
)


def all_rows(url: str) -> list[tuple[Any, ...]]:
    rows = query(url, f"SELECT {COLUMNS} FROM conversations ORDER BY bot_name, message_id")
    return [(*r[:10], _utc(r[10]), _json(r[11]), r[12]) for r in rows]


def all_sessions(url: str) -> list[tuple[Any, ...]]:
    rows = query(
        url,
        "SELECT bot_name, channel_id, session_id, started_at, last_activity, message_count,"
        " is_active, source FROM sessions ORDER BY bot_name, channel_id, session_id",
    )
    return [(*r[:3], _utc(r[3]), _utc(r[4]), r[5], bool(r[6]), r[7]) for r in rows]


def _utc(value: Any) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def write_configs(folder: Path, url: str, data: Path, **bots: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    backend = make_url(url).get_backend_name()
    for name, storage in bots.items():
        lines = [
            f"name: {name}",
            "storage:",
            f"  type: {backend}",
            f"  url: '{url}'",
            f"  backups: {{dir: '{folder.parent / 'backups'}'}}",
            *(f"  {key}: {value}" for key, value in storage.items()),
            "legacy:",
            f"  dir: '{data}'",
            "  timezone: Europe/Berlin",
        ]
        (folder / f"{name}.yaml").write_text("\n".join(lines) + "\n")
    return folder


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return messy_tree(tmp_path / "legacy")


def migrate(configs: Path, *extra: str) -> int:
    return main(["migrate-legacy", "--config-dir", str(configs), *extra])


def test_cli_imports_every_record_and_accounts_for_every_file(
    configs: Path, db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report_path = tmp_path / "report.json"
    assert migrate(configs, "--report", str(report_path)) == 0
    out = capsys.readouterr().out
    assert "legacy import" in out and "invalid_json" in out and "temp_file" in out
    report = json.loads(report_path.read_text())
    assert report["bots"]["sage"]["records"] == {
        "imported": 12,
        "duplicate": 2,
        "already_present": 0,
        "unattributable": 0,
        "invalid": 0,
    }
    assert report["bots"]["spark"]["records"]["imported"] == 4
    assert report["bots"]["spark"]["records"]["duplicate"] == 1
    assert report["totals"]["unattributable"] == 2
    assert report["totals"]["invalid"] == 2
    unreadable = {f["path"]: f["reason"] for f in report["files"] if f["status"] == "unreadable"}
    assert unreadable == EXPECTED_UNREADABLE
    assert {f["path"] for f in report["files"] if f["status"] == "ignored"} == {
        "multi_bot_conversations/README.txt"
    }
    on_disk = {
        p.relative_to(configs.parent / "legacy").as_posix()
        for p in (configs.parent / "legacy").rglob("*")
        if p.is_file()
    }
    assert {f["path"] for f in report["files"]} == on_disk
    rows = all_rows(db_url)
    assert len([r for r in rows if r[0] == "sage"]) == 12
    assert len([r for r in rows if r[0] == "spark"]) == 4
    assert {r[12] for r in rows} == {"legacy"}
    assert {r[3] for r in rows} == {"channel"}


def test_routing_dedupe_time_zones_and_content(configs: Path, db_url: str) -> None:
    assert migrate(configs) == 0
    rows = all_rows(db_url)
    by_content = {(r[0], r[9]): r for r in rows}
    # Rule 1: the per-bot file's bot wins over the record's bot_name.
    assert ("sage", "claims spark") in by_content and ("spark", "claims spark") not in by_content
    # Rule 2: a shared user message goes to every bot of the conversation, stored once each,
    # the earliest copy winning (10:00:00 Berlin summer time = 08:00 UTC).
    for bot in ("sage", "spark"):
        (question,) = [r for r in rows if r[0] == bot and r[7] == str(M2)]
        assert question[10] == datetime(2025, 7, 1, 8, 0, tzinfo=UTC)
        assert question[5] == "bob"
    assert ("sage", "spark answer") not in by_content and ("spark", "spark answer") in by_content
    # The index entry's inner ids win over its key.
    index = by_content[("sage", "index hello")]
    assert (index[1], index[4]) == (str(C4), str(U2))
    # Rule 6: naive Berlin times, including both DST changes (fold=0), and aware times.
    assert by_content[("sage", EXOTIC)][10] == datetime(2025, 10, 26, 0, 30, tzinfo=UTC)
    assert by_content[("sage", BIG)][10] == datetime(2025, 3, 30, 1, 30, tzinfo=UTC)
    assert by_content[("sage", "first")][10] == datetime(2025, 7, 8, 12, 58, 16, 123456, tzinfo=UTC)
    assert by_content[("spark", "hi spark")][10] == datetime(2025, 7, 8, 12, 0, tzinfo=UTC)
    assert by_content[("spark", "hello")][10] == datetime(2025, 7, 8, 12, 0, 5, tzinfo=UTC)
    # Content comes back byte for byte, ids stay exact.
    assert by_content[("sage", BIG)][9].encode() == BIG.encode()
    assert by_content[("sage", EXOTIC)][9].encode() == EXOTIC.encode()
    assert by_content[("sage", "first")][7] == str(M1)
    # Names: from the files where they were, placeholders naming the id where not.
    assert by_content[("sage", "first")][2] == "general"
    assert by_content[("sage", "second")][2] == "general"  # same channel, named elsewhere
    assert by_content[("sage", "old times")][2] == f"channel-{C3}"
    assert by_content[("sage", "index hello")][5] == "bob"  # named in another file
    # Era 0: ids from the file name; the record stored twice counts once.
    old = by_content[("sage", "old times")]
    assert (old[1], old[4]) == (str(C3), str(U1))
    assert len([r for r in rows if r[0] == "sage" and r[9] == "old times"]) == 1
    # Rule 9: records without a Discord id get the deterministic id.
    assert old[7] == synthetic_message_id(
        str(C3), str(U1), "user", "old times", "2024-01-01T08:00:00.000000"
    )
    # Unknown keys survive in metadata.
    assert by_content[("sage", EXOTIC)][11] == {"legacy_extra": {"mood": "happy"}}


def test_sessions_follow_each_bots_rules(configs: Path, db_url: str) -> None:
    assert migrate(configs) == 0
    sessions = all_sessions(db_url)
    assert all(not s[6] and s[7] == "legacy" for s in sessions)
    sage_c1 = [s for s in sessions if s[0] == "sage" and s[1] == str(C1)]
    # Out-of-order records are sessioned in time order: March, July (3 messages), October.
    assert [s[2] for s in sage_c1] == [
        "2025-03-30_01-30-00_3600s",
        "2025-07-08_12-58-16_3600s",
        "2025-10-26_00-30-00_3600s",
    ]
    assert [s[5] for s in sage_c1] == [1, 3, 1]
    spark_c1 = [s for s in sessions if s[0] == "spark" and s[1] == str(C1)]
    # spark's gap is 60 s: its two messages 5 s apart share one 600 s session.
    assert [(s[2], s[5]) for s in spark_c1] == [("2025-07-08_12-00-00_600s", 2)]
    assert miscounted_sessions(db_url) == []


def miscounted_sessions(url: str) -> list[tuple[Any, ...]]:
    """Sessions (there must be some) whose ``message_count`` is not their number of rows."""
    counts = query(
        url,
        "SELECT s.bot_name, s.channel_id, s.session_id, s.message_count, count(c.id)"
        " FROM sessions s LEFT JOIN conversations c ON c.bot_name = s.bot_name"
        " AND c.channel_id = s.channel_id AND c.session_id = s.session_id"
        " GROUP BY s.bot_name, s.channel_id, s.session_id, s.message_count",
    )
    assert counts
    return [row for row in counts if row[3] != row[4]]


def test_rerun_adds_nothing_and_dry_run_writes_nothing(
    configs: Path, db_url: str, tree: Path, tmp_path: Path
) -> None:
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in tree.rglob("*") if p.is_file()}
    report = tmp_path / "dry.json"
    assert migrate(configs, "--dry-run", "--report", str(report)) == 0
    assert all_rows(db_url) == [] and all_sessions(db_url) == []
    dry = json.loads(report.read_text())
    assert dry["dry_run"] is True and dry["bots"]["sage"]["records"]["imported"] == 12
    assert migrate(configs) == 0
    rows, sessions = all_rows(db_url), all_sessions(db_url)
    assert migrate(configs, "--report", str(report)) == 0
    assert all_rows(db_url) == rows and all_sessions(db_url) == sessions
    again = json.loads(report.read_text())
    assert again["bots"]["sage"]["records"]["imported"] == 0
    assert again["bots"]["sage"]["records"]["already_present"] == 12
    after = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in tree.rglob("*") if p.is_file()}
    assert before == after


def test_alembic_upgrade_imports_the_same_rows_and_downgrade_removes_only_them(
    configs: Path, db_url: str, tree: Path, tmp_path: Path
) -> None:
    assert migrate(configs) == 0
    by_cli, cli_sessions = all_rows(db_url), all_sessions(db_url)
    cfg = alembic_config(db_url, configs)
    command.downgrade(cfg, "0001")
    assert all_rows(db_url) == [] and all_sessions(db_url) == []
    # A live bot's row written between the two revisions must survive the downgrade.
    live_at = "2026-11-30 10:00:00"
    query_write(db_url, live_at)
    cfg.cmd_opts.x.append(f"legacy_dir={tree}")  # type: ignore[union-attr]
    command.upgrade(cfg, "head")
    live = [r for r in all_rows(db_url) if r[12] is None]
    assert len(live) == 1
    assert [r for r in all_rows(db_url) if r[12] == "legacy"] == by_cli
    assert [s for s in all_sessions(db_url) if s[7] == "legacy"] == cli_sessions
    command.downgrade(cfg, "0001")
    assert [r[9] for r in all_rows(db_url)] == ["live message"]
    assert [s[2] for s in all_sessions(db_url)] == ["live-session"]
    # The PostgreSQL test database is shared by the following tests: leave it at head.
    cfg.cmd_opts.x[-1] = f"legacy_dir={tmp_path / 'none'}"  # type: ignore[union-attr]
    command.upgrade(cfg, "head")


def test_a_message_id_stored_live_in_another_channel_is_already_present(
    configs: Path, db_url: str, tmp_path: Path
) -> None:
    """Rule 7 against the database: the bot stored M1 (the tree has it in C1) live, in C3."""
    query_write(db_url, "2026-11-30 10:00:00", channel=C3, message_id=str(M1))
    report = tmp_path / "report.json"
    assert migrate(configs, "--report", str(report)) == 0
    records = json.loads(report.read_text())["bots"]["sage"]["records"]
    assert (records["imported"], records["already_present"]) == (11, 1)
    copies = [r for r in all_rows(db_url) if r[0] == "sage" and r[7] == str(M1)]
    assert [(r[1], r[9]) for r in copies] == [(str(C3), "live message")]
    assert miscounted_sessions(db_url) == []
    # The July session of C1 counts the two rows it holds, "second" and "claims spark".
    july = [s for s in all_sessions(db_url) if s[1] == str(C1) and s[2].startswith("2025-07-08")]
    assert [(s[0], s[5]) for s in july] == [("sage", 2), ("spark", 2)]


def query_write(url: str, at: str, *, channel: int = C1, message_id: str = "1") -> None:
    engine = create_engine(sync_url(url))
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO sessions (bot_name, channel_id, session_id, started_at,"
                    " last_activity, message_count, is_active)"
                    " VALUES ('sage', :c, 'live-session', :at, :at, 1, true)"
                ),
                {"c": str(channel), "at": at},
            )
            connection.execute(
                text(
                    "INSERT INTO conversations (bot_name, channel_id, channel_name, channel_type,"
                    " user_id, username, session_id, message_id, role, content, timestamp) VALUES"
                    " ('sage', :c, 'general', 'channel', :u, 'alice', 'live-session', :m,"
                    " 'user', 'live message', :at)"
                ),
                {"c": str(channel), "u": str(U1), "at": at, "m": message_id},
            )
    finally:
        engine.dispose()


def test_unconfigured_bots_go_to_the_default_database(
    tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "legacy"
    write(
        data / "multi_bot_conversations" / "nova" / f"{C2}_{U2}.json",
        conversation(C2, U2, record("user", "hi nova", "2025-01-01T00:00:00")),
    )
    write(
        data / "multi_bot_conversations" / "sage" / f"{C2}_{U2}.json",
        conversation(C2, U2, record("user", "hi sage", "2025-01-01T00:00:00")),
    )
    configs = write_configs(tmp_path / "bots", db_url, data, sage={})
    monkeypatch.chdir(tmp_path)
    default_db = tmp_path / "data" / "conversations.db"
    command.upgrade(alembic_config(f"sqlite+aiosqlite:///{default_db}"), "head")
    assert migrate(configs) == 0
    assert "'nova' has no config file" in capsys.readouterr().out
    assert [r[9] for r in all_rows(db_url)] == ["hi sage"]
    nova = all_rows(f"sqlite:///{default_db}")
    assert [(r[0], r[9], r[5], r[2]) for r in nova] == [
        ("nova", "hi nova", f"user-{U2}", f"channel-{C2}")
    ]


def test_only_one_bot_with_the_bot_option(configs: Path, db_url: str) -> None:
    assert migrate(configs, "--bot", "spark") == 0
    assert {r[0] for r in all_rows(db_url)} == {"spark"}


def test_errors_are_one_line(
    configs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert migrate(configs, "--data-dir", str(tmp_path / "nowhere")) == 1
    assert migrate(configs, "--legacy-tz", "Mars/Olympus") == 1
    assert migrate(configs, "--bot", "ghost") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and "Traceback" not in "".join(err)
    assert "nowhere" in err[0] and "Mars/Olympus" in err[1] and "ghost" in err[2]


def test_a_database_without_schema_is_refused(
    tmp_path: Path, tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = write_configs(
        tmp_path / "bots", f"sqlite+aiosqlite:///{tmp_path / 'new.db'}", tree, sage={}
    )
    assert migrate(folder) == 1
    assert "alembic upgrade head" in capsys.readouterr().err
    assert not (tmp_path / "new.db").exists()


def test_a_failed_import_keeps_what_it_committed_and_a_rerun_finishes_it(
    configs: Path, db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A real database trigger refuses one message, as a full disk or a dropped server would fail
    # a batch half-way; the import commits after every channel here.
    monkeypatch.setattr("convostore.legacy.run.COMMIT_EVERY", 1)
    drop = refuse_content(db_url, "old times")
    try:
        assert migrate(configs) == 1
        err = capsys.readouterr().err.strip()
        assert "refused by a test trigger" in err and len(err.splitlines()) == 1
        partial = all_rows(db_url)
        assert 0 < len(partial) < 16
        assert "old times" not in {r[9] for r in partial}
    finally:
        execute(db_url, *drop)
    assert migrate(configs) == 0
    rows, sessions = all_rows(db_url), all_sessions(db_url)
    assert len(rows) == 16 and len({(r[0], r[7]) for r in rows}) == 16
    counts = query(
        db_url,
        "SELECT s.message_count, (SELECT count(*) FROM conversations c WHERE c.bot_name ="
        " s.bot_name AND c.channel_id = s.channel_id AND c.session_id = s.session_id)"
        " FROM sessions s",
    )
    assert len(counts) == len(sessions) and all(a == b for a, b in counts)


def refuse_content(url: str, content: str) -> list[str]:
    """A real trigger refusing to insert a message of this content; the statements to drop it."""
    assert "'" not in content
    if url.startswith("sqlite"):
        trigger = [
            f"CREATE TRIGGER refuse BEFORE INSERT ON conversations WHEN NEW.content = '{content}'"
            " BEGIN SELECT RAISE(ABORT, 'refused by a test trigger'); END"
        ]
        drop = ["DROP TRIGGER refuse"]
    else:
        trigger = [
            f"CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN IF NEW.content = '{content}'"
            " THEN RAISE EXCEPTION 'refused by a test trigger'; END IF; RETURN NEW; END $$"
            " LANGUAGE plpgsql",
            "CREATE TRIGGER refuse BEFORE INSERT ON conversations FOR EACH ROW"
            " EXECUTE FUNCTION refuse()",
        ]
        drop = ["DROP TRIGGER refuse ON conversations", "DROP FUNCTION refuse()"]
    execute(url, *trigger)
    return drop


def test_long_channels_are_written_whole_in_statements_of_many_rows(
    tmp_path: Path, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Channels longer than one multi-row statement (and than one batch) arrive whole and exact:
    every record's content, time and Discord id, sessions whose counts match their rows; a
    refused row in the middle of a statement fails the import with one line and stores nothing,
    and the rerun imports everything."""
    data = tmp_path / "legacy"
    start = datetime(2025, 1, 10, 9, 0)  # naive Berlin winter time: UTC+1
    expected: dict[str, tuple[datetime, str | None]] = {}
    for channel, user, length in ((C3, U1, 1203), (C4, U2, 5009)):
        records = []
        for i in range(length):
            content = f"{channel} message {i:04d}"
            at = start + timedelta(minutes=7 * i)
            discord_id = str(M1 + channel + i) if i % 3 == 0 else None
            extra = {"message_id": int(discord_id)} if discord_id else {}
            records.append(
                record("user" if i % 2 else "assistant", content, at.isoformat(), "sage", **extra)
            )
            expected[content] = (at.replace(tzinfo=UTC) - timedelta(hours=1), discord_id)
        write(
            data / "multi_bot_conversations" / "sage" / f"{channel}_{user}.json",
            conversation(channel, user, *reversed(records)),
        )
    configs = write_configs(tmp_path / "bots", db_url, data, sage={})
    drop = refuse_content(db_url, f"{C4} message 0777")
    try:
        assert migrate(configs) == 1
        err = capsys.readouterr().err.strip()
        assert "refused by a test trigger" in err and len(err.splitlines()) == 1
        assert all_rows(db_url) == [] and all_sessions(db_url) == []
    finally:
        execute(db_url, *drop)
    assert migrate(configs) == 0
    rows = all_rows(db_url)
    assert len(rows) == len(expected) == 6212
    for row in rows:
        at, discord_id = expected[row[9]]
        assert row[10] == at
        assert discord_id is None or row[7] == discord_id
    assert len({r[7] for r in rows}) == len(rows)
    counts = query(
        db_url,
        "SELECT s.message_count, (SELECT count(*) FROM conversations c WHERE c.bot_name ="
        " s.bot_name AND c.channel_id = s.channel_id AND c.session_id = s.session_id)"
        " FROM sessions s",
    )
    assert all(stored == counted for stored, counted in counts)
    assert sum(stored for stored, _ in counts) == len(rows)
    assert migrate(configs) == 0
    assert len(all_rows(db_url)) == len(rows)


def execute(url: str, *statements: str) -> None:
    engine = create_engine(sync_url(url))
    try:
        with engine.begin() as connection:
            for statement in statements:
                connection.exec_driver_sql(statement)
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite"])
def test_sigterm_during_an_import_leaves_no_staging_files(
    backend: str, db_url: str, tmp_path: Path
) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    data = long_tree(tmp_path / "big", files=400, records=200)
    configs = write_configs(tmp_path / "bots", db_url, data, sage={})
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    process = subprocess.Popen(
        [sys.executable, "-m", "convostore", "migrate-legacy", "--config-dir", str(configs)],
        env={**os.environ, "TMPDIR": str(scratch)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    # The tree (about 24 MB) is read by worker processes, each staging into a part of its own.
    deadline = time.monotonic() + 60
    while not list(scratch.glob("convostore-import-*/part-*.db")) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert list(scratch.glob("convostore-import-*/part-*.db")), "no worker started staging"
    workers = [
        child
        for child in psutil.Process(process.pid).children()
        if "convostore.legacy.workers" in child.cmdline()
    ]
    assert workers
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM
    assert "terminated" in err and "Traceback" not in err
    assert list(scratch.iterdir()) == []
    gone, alive = psutil.wait_procs(workers, timeout=10)
    assert alive == [] and len(gone) == len(workers)


@pytest.fixture
def pg_configs(tmp_path: Path, pg_template_url: str, tree: Path) -> Path:
    _truncate(pg_template_url)
    return write_configs(tmp_path / "pg-bots", pg_template_url, tree, sage={}, spark={})


def test_postgresql_import_sends_a_flush_of_messages_as_one_statement(
    pg_configs: Path, pg_template_url: str
) -> None:
    """One INSERT of arrays per flush (Core's executemany ran it once per row on the server), and
    a record without metadata stored as JSON null, as Core's JSON type stored it before."""
    inserts: list[bool] = []

    def seen(_conn: Any, _cursor: Any, statement: str, _params: Any, _ctx: Any, many: bool) -> None:
        if statement.startswith("INSERT INTO conversations"):
            inserts.append(many)

    event.listen(Engine, "before_cursor_execute", seen)
    try:
        assert migrate(pg_configs) == 0
    finally:
        event.remove(Engine, "before_cursor_execute", seen)
    channels = query(pg_template_url, "SELECT count(DISTINCT (bot_name, channel_id)) FROM sessions")
    assert inserts and not any(inserts)
    assert len(inserts) <= channels[0][0]
    stored = query(
        pg_template_url,
        "SELECT count(*) FILTER (WHERE metadata IS NULL),"
        " count(*) FILTER (WHERE metadata::text = 'null'), count(*) FROM conversations",
    )
    assert stored[0][0] == 0 and 0 < stored[0][1] < stored[0][2]
