"""A healthy database in a read-only place is called read-only everywhere; a full disk during
backup or restore says so and leaves nothing behind. Real bind mounts and tmpfs (tests run as root).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from convostore import BotConfig, BotStore, ChannelInfo
from convostore.errors import OperationError, ReadOnlyDatabaseError
from convostore.ops import restore as restore_mod
from convostore.ops.backup import backup_sqlite, verify_sqlite
from convostore.ops.doctor.sqlite import sqlite_findings as _sqlite_findings
from convostore.ops.guard import prepare_new_sqlite
from convostore.ops.restore import restore_sqlite
from tests.faults import mounts

GENERAL = ChannelInfo.channel(channel_id=1, name="general")


def _config(path: Path) -> BotConfig:
    return BotConfig.model_validate({"name": "sage", "storage": {"path": str(path)}}, strict=False)


@pytest.fixture
def healthy(sqlite_template: Path, tmp_path: Path) -> Path:
    directory = tmp_path / "data"
    directory.mkdir()
    path = directory / "conversations.db"
    shutil.copyfile(sqlite_template, path)
    return path


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if ".tmp" in p.name or "before-" in p.name)


async def test_read_only_directory_is_reported_as_read_only(healthy: Path) -> None:
    with mounts.read_only(healthy.parent):
        findings = _sqlite_findings(healthy, "sage", None)
        first = findings[0]
        assert first.check == "writable" and "read-only, not corrupt" in first.detail
        assert "read-only file system" in first.detail
        assert not any("not a readable" in f.detail for f in findings)
        assert [f.detail for f in findings if f.check == "journal mode"] == ["wal"]
        assert verify_sqlite(healthy).ok
        with pytest.raises(ReadOnlyDatabaseError, match=r"read-only: .* read-only file system"):
            async with BotStore.open(_config(healthy)):
                pass
        with pytest.raises(ReadOnlyDatabaseError, match=r"read-only file system"):
            prepare_new_sqlite(healthy)  # what `alembic upgrade head` runs first
        backups = healthy.parent.parent / "backups"
        taken = backup_sqlite(healthy, backups)
        assert taken.verification is not None and taken.verification.ok
    assert sorted(os.listdir(healthy.parent)) == ["conversations.db"]


async def test_read_only_file_is_reported_as_read_only(healthy: Path) -> None:
    with mounts.read_only(healthy):
        findings = _sqlite_findings(healthy, "sage", None)
        assert findings[0].check == "writable" and "the file" in findings[0].detail
        assert verify_sqlite(healthy).ok
        async with BotStore.open(_config(healthy)) as store:
            assert await store.history(GENERAL) == []
            with pytest.raises(ReadOnlyDatabaseError, match="read-only"):
                await store.add_message(GENERAL, user_id=1, username="a", role="user", content="x")


def test_backup_into_a_read_only_directory_blames_that_directory(
    healthy: Path, tmp_path: Path
) -> None:
    backups = tmp_path / "backups"
    backups.mkdir()
    with mounts.read_only(backups), pytest.raises(OperationError) as info:
        backup_sqlite(healthy, backups)
    assert str(info.value).startswith(f"{backups}: backup directory is not writable")


@pytest.mark.parametrize("size_kb", [64, 200, 400])
def test_full_disk_during_backup_says_so_and_leaves_nothing(
    healthy: Path, tmp_path: Path, size_kb: int
) -> None:
    sqlite3.connect(healthy).execute("PRAGMA user_version").fetchall()
    with mounts.tmpfs(tmp_path / "small", size_kb) as small:
        with pytest.raises(OperationError, match="no space left on the device"):
            # Big enough not to fit: pad the database with a blob first.
            conn = sqlite3.connect(healthy)
            conn.execute("CREATE TABLE IF NOT EXISTS pad (b BLOB)")
            conn.execute("INSERT INTO pad VALUES (zeroblob(600000))")
            conn.commit()
            conn.close()
            backup_sqlite(healthy, small)
        assert os.listdir(small) == []


def test_full_disk_under_a_restore_says_so_and_changes_nothing(
    healthy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken = backup_sqlite(healthy, tmp_path / "backups")
    with mounts.tmpfs(tmp_path / "small", 2048) as small:
        database = small / "conversations.db"
        shutil.copyfile(healthy, database)
        mounts.fill(small, leave_bytes=100_000)
        before = verify_sqlite(database)
        with pytest.raises(OperationError, match=r"no space left on the device for the restore"):
            restore_sqlite(taken.path, database)
        # Past the free-space check, the real ENOSPC: same line, nothing left behind.
        monkeypatch.setattr(restore_mod, "_check_space", lambda *_: None)
        with pytest.raises(OperationError, match=r"no space left on the device"):
            restore_sqlite(taken.path, database)
        assert _leftovers(small) == []
        (small / "filler").unlink()
        check = verify_sqlite(database)
        assert check.ok, check.problems
        assert check.messages_per_bot == before.messages_per_bot
        fences = sqlite3.connect(database).execute(
            "SELECT count(*) FROM sqlite_master WHERE name LIKE 'convostore_restore%'"
        )
        assert fences.fetchone() == (0,)
