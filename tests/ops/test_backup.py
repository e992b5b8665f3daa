"""Backup, verify and restore of SQLite databases, and pg_dump backups of PostgreSQL."""

from __future__ import annotations

import errno
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from convostore import BotStore, ChannelInfo
from convostore.errors import OperationError
from convostore.ops import backup as backup_mod
from convostore.ops import restore as restore_mod
from convostore.ops.backup import backup_bot, backup_sqlite, verify_sqlite
from convostore.ops.restore import restore_sqlite
from convostore.schema import HEAD_REVISION
from tests.conftest import ConfigFactory
from tests.helpers.rows import add_rows, count

NOON = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


@pytest.fixture
def database(sqlite_template: Path, tmp_path: Path) -> Path:
    path = tmp_path / "conversations.db"
    shutil.copyfile(sqlite_template, path)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.close()
    add_rows(path, "sage", 10)
    add_rows(path, "echo", 3)
    return path


def test_backup_verifies_and_records_a_manifest(database: Path, tmp_path: Path) -> None:
    result = backup_sqlite(database, tmp_path / "backups", now=NOON)
    assert result.path.name == "conversations_2026-11-24.db"
    assert result.verification is not None
    assert result.verification.messages_per_bot == {"sage": 10, "echo": 3}
    assert result.verification.revision == HEAD_REVISION
    assert result.manifest.is_file()
    assert '"verified": true' in result.manifest.read_text()
    assert not list((tmp_path / "backups").glob("*.tmp"))
    # a self-contained file: verifying it left no -wal/-shm beside it
    assert sorted(p.name for p in (tmp_path / "backups").iterdir()) == [
        "conversations_2026-11-24.db",
        "conversations_2026-11-24.db.manifest.json",
    ]


def test_same_day_backup_gets_a_suffix_and_never_overwrites(database: Path, tmp_path: Path) -> None:
    first = backup_sqlite(database, tmp_path / "b", now=NOON)
    add_rows(database, "sage", 1, start=100)
    second = backup_sqlite(database, tmp_path / "b", now=NOON)
    third = backup_sqlite(database, tmp_path / "b", now=NOON)
    assert first.path.name == "conversations_2026-11-24.db"
    assert second.path.name == "conversations_2026-11-24_120000.db"
    assert third.path.name == "conversations_2026-11-24_120000-2.db"
    assert count(first.path) == 13 and count(second.path) == 14


def test_rotation_keeps_the_newest(database: Path, tmp_path: Path) -> None:
    made = []
    for day in range(1, 6):
        made.append(backup_sqlite(database, tmp_path / "b", keep=2, now=NOON.replace(day=day)).path)
        time.sleep(0.01)
    left = sorted(p.name for p in (tmp_path / "b").glob("conversations_*.db"))
    assert left == [made[3].name, made[4].name]
    assert len(list((tmp_path / "b").glob("*.manifest.json"))) == 2


def test_full_disk_leaves_no_partial_file(
    database: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(source: Path, target: Path, progress: object = None) -> None:
        target.write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(backup_mod, "_copy_sqlite", full)
    with pytest.raises(OperationError, match="no space left"):
        backup_sqlite(database, tmp_path / "b", now=NOON)
    assert list((tmp_path / "b").iterdir()) == []


def test_unwritable_directory_is_a_clear_error(
    database: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the tests may run as root, which ignores mode bits: simulate the refusal at the copy step
    def denied(source: Path, target: Path, progress: object = None) -> None:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(backup_mod, "_copy_sqlite", denied)
    with pytest.raises(OperationError, match="not writable"):
        backup_sqlite(database, tmp_path / "b", now=NOON)
    assert list((tmp_path / "b").iterdir()) == []


def test_backup_directory_that_is_a_file_is_a_clear_error(database: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the directory should be")
    with pytest.raises(OperationError, match="blocker"):
        backup_sqlite(database, blocker / "backups", now=NOON)


WRITER = textwrap.dedent(
    """
    import sqlite3, sys, time
    conn = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
    i = 0
    deadline = time.monotonic() + float(sys.argv[2])
    while time.monotonic() < deadline:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            "INSERT INTO conversations (bot_name, channel_id, channel_name, channel_type, user_id,"
            " username, session_id, message_id, role, content, timestamp) VALUES"
            " ('sage', 'c1', 'general', 'channel', 'u1', 'alice', 's1', ?, 'user', 'hi',"
            " '2026-11-24 10:00:00.000000')",
            [(f"w{i}-{k}",) for k in range(50)],
        )
        conn.execute("COMMIT")
        i += 1
    print(i)
    """
)


def test_backup_while_another_process_writes_is_consistent(database: Path, tmp_path: Path) -> None:
    add_rows(database, "sage", 20000, start=1000)
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(database), "3"], stdout=subprocess.PIPE, text=True
    )
    try:
        time.sleep(0.3)
        results = [backup_sqlite(database, tmp_path / "b", keep=10, now=NOON) for _ in range(3)]
    finally:
        out, _ = writer.communicate(timeout=30)
    assert writer.returncode == 0 and int(out) > 0
    for result in results:
        assert result.verification is not None and result.verification.ok
        n = count(result.path)
        # whole writer transactions only: 50 rows each on top of the 20,013 rows before
        assert n >= 20013 and (n - 20013) % 50 == 0


def test_backup_in_steps_reports_progress_and_stays_consistent_under_writes(
    database: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_rows(database, "sage", 20000, start=1000)
    monkeypatch.setattr(backup_mod, "BACKUP_STEP_PAGES", 16)
    seen: list[tuple[int, int]] = []
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(database), "3"], stdout=subprocess.PIPE, text=True
    )
    try:
        time.sleep(0.3)
        result = backup_sqlite(
            database,
            tmp_path / "b",
            now=NOON,
            progress=lambda done, total: seen.append((done, total)),
        )
    finally:
        out, _ = writer.communicate(timeout=30)
    assert writer.returncode == 0 and int(out) > 0
    assert len(seen) > 10, "one call per step of 16 pages"
    assert seen[-1][0] == seen[-1][1] and all(done <= total for done, total in seen)
    assert result.verification is not None and result.verification.ok
    n = count(result.path)
    assert n >= 20013 and (n - 20013) % 50 == 0


def test_restore_round_trip_keeps_a_safety_copy(database: Path, tmp_path: Path) -> None:
    taken = backup_sqlite(database, tmp_path / "b", now=NOON)
    add_rows(database, "sage", 5, start=500)
    assert count(database) == 18
    safety = restore_sqlite(taken.path, database, now=NOON)
    assert count(database) == 13
    assert safety is not None and count(safety) == 18
    assert verify_sqlite(database).messages_per_bot == {"sage": 10, "echo": 3}
    with sqlite3.connect(database) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_restore_refuses_a_corrupted_file(database: Path, tmp_path: Path) -> None:
    taken = backup_sqlite(database, tmp_path / "b", now=NOON)
    data = bytearray(taken.path.read_bytes())
    data[4096 : 4096 * 3] = b"\xff" * (4096 * 2)
    taken.path.write_bytes(bytes(data))
    add_rows(database, "sage", 1, start=900)
    with pytest.raises(OperationError, match="refusing to restore"):
        restore_sqlite(taken.path, database, now=NOON)
    assert count(database) == 14


def test_restore_refuses_garbage(database: Path, tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(OperationError, match="refusing to restore"):
        restore_sqlite(junk, database, now=NOON)
    assert count(database) == 13


def test_restore_waits_for_a_write_transaction_then_refuses(
    database: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(restore_mod, "LOCK_TIMEOUT_S", 0.3)
    taken = backup_sqlite(database, tmp_path / "b", now=NOON)
    holder = sqlite3.connect(database, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(OperationError, match=r"in use: a write transaction held the lock"):
            restore_sqlite(taken.path, database, now=NOON)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert count(database) == 13
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b", "conversations.db"]


def test_restore_reaches_connections_that_stay_open(database: Path, tmp_path: Path) -> None:
    taken = backup_sqlite(database, tmp_path / "b", now=NOON)
    reader = sqlite3.connect(database, isolation_level=None)
    try:
        add_rows(database, "sage", 5, start=500)
        assert reader.execute("SELECT count(*) FROM conversations").fetchone() == (18,)
        restore_sqlite(taken.path, database, now=NOON)
        # The same open connection sees the restored content, and its writes stay.
        assert reader.execute("SELECT count(*) FROM conversations").fetchone() == (13,)
        add_rows(database, "sage", 2, start=700)
        assert reader.execute("SELECT count(*) FROM conversations").fetchone() == (15,)
        fences = "SELECT count(*) FROM sqlite_master WHERE name LIKE 'convostore_restore%'"
        assert reader.execute(fences).fetchone() == (0,)
    finally:
        reader.close()
    assert count(database) == 15


@pytest.mark.parametrize("damage", ["zeroed header", "truncated", "random bytes", "text"])
def test_restore_over_a_corrupt_database_keeps_it_aside(
    database: Path, tmp_path: Path, damage: str
) -> None:
    taken = backup_sqlite(database, tmp_path / "b", now=NOON)
    data = database.read_bytes()
    damaged = {
        "zeroed header": bytes(100) + data[100:],
        "truncated": data[: len(data) // 3],
        "random bytes": bytes((i * 151 + 7) % 256 for i in range(len(data))),
        "text": b"these are not the pages you are looking for\n" * 200,
    }[damage]
    database.write_bytes(damaged)
    kept = restore_sqlite(taken.path, database, now=NOON)
    assert kept == tmp_path / "conversations.db.corrupt-20261124-120000"
    assert kept.read_bytes() == damaged
    assert count(database) == 13
    assert verify_sqlite(database).ok
    with sqlite3.connect(database) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_restore_over_a_corrupt_database_refuses_while_it_is_open(
    database: Path, tmp_path: Path
) -> None:
    taken = backup_sqlite(database, tmp_path / "b", now=NOON)
    database.write_bytes(bytes(100) + database.read_bytes()[100:])
    with (
        open(database, "rb"),  # a bot process holding the file
        pytest.raises(OperationError, match=r"processes \d+.* have it open; stop them"),
    ):
        restore_sqlite(taken.path, database, now=NOON)
    assert not list(tmp_path.glob("*.corrupt-*"))


async def test_backup_bot_on_each_backend(
    backend: str, make_config: ConfigFactory, tmp_path: Path, store: BotStore
) -> None:
    await store.add_message(
        ChannelInfo(id="1", name="general", type="channel"),
        user_id=1,
        username="alice",
        role="user",
        content="hi",
    )
    config = make_config(backups={"dir": str(tmp_path / "backups"), "keep": 2})
    result = backup_bot(config, now=NOON)
    assert result.path.is_file() and result.path.stat().st_size > 0
    assert result.manifest.is_file()
    if backend == "sqlite":
        assert result.path.suffix == ".db"
        assert result.verification is not None
        assert result.verification.messages_per_bot == {"sage": 1}
    else:
        assert result.path.name == f"{make_url(config.database_url).database}_2026-11-24.dump"
        assert result.path.read_bytes()[:5] == b"PGDMP"


@pytest.mark.parametrize("backend", ["postgresql"])
def test_postgresql_backup_without_pg_dump_is_a_clear_error(
    make_config: ConfigFactory, backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(backup_mod.shutil, "which", lambda name: None)
    with pytest.raises(OperationError, match="pg_dump is not on PATH"):
        backup_bot(make_config(backups={"dir": str(tmp_path / "b"), "keep": 2}), now=NOON)


def test_an_interrupted_restore_leaves_a_fence_that_doctor_names_and_restore_clears(
    database: Path, tmp_path: Path
) -> None:
    from convostore.ops.doctor.sqlite import sqlite_findings as _sqlite_findings

    taken = backup_sqlite(database, tmp_path / "b", now=NOON)
    live = sqlite3.connect(database, isolation_level=None)
    try:
        restore_mod._raise_fence(live)  # what a restore killed after its first step leaves
        with pytest.raises(sqlite3.IntegrityError, match="convostore restore in progress"):
            add_rows(database, "sage", 1, start=800)
    finally:
        live.close()
    fence = [f for f in _sqlite_findings(database, "sage", None) if f.check == "restore fence"]
    assert fence and "run the same `convostore restore FILE` again" in fence[0].advice
    restore_sqlite(taken.path, database, now=NOON)
    add_rows(database, "sage", 1, start=801)
    assert count(database) == 14
    assert not [f for f in _sqlite_findings(database, "sage", None) if f.check == "restore fence"]


async def test_a_bot_write_waits_for_the_restore_fence(database: Path) -> None:
    import asyncio

    from convostore import BotConfig

    config = BotConfig.model_validate(
        {"name": "sage", "storage": {"path": str(database)}}, strict=False
    )
    live = sqlite3.connect(database, isolation_level=None)
    try:
        async with BotStore.open(config) as store:
            restore_mod._raise_fence(live)
            write = asyncio.create_task(
                store.add_message(
                    ChannelInfo.channel(channel_id=5, name="g"),
                    user_id=1,
                    username="a",
                    role="user",
                    content="waited",
                )
            )
            await asyncio.sleep(0.3)
            assert not write.done()
            restore_mod._drop_fence(live)
            row = await asyncio.wait_for(write, 10)
            assert row.content == "waited"
    finally:
        live.close()
