"""A full disk (a small tmpfs) under the database, under a backup, and under a restore."""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
from pathlib import Path

from tests.faults import mounts
from tests.faults.report import Outcome


def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {_gist(str(exc))}"


def _gist(text: str) -> str:
    for marker in ("no space left", "disk is full", "read-only", "in use"):
        if marker in text:
            return f"…{marker}…"
    return text[-80:]


def _tmp_leftovers(directory: Path) -> list[str]:
    return sorted(
        p.name
        for p in directory.iterdir()
        if ".tmp" in p.name or p.name.endswith(("-journal",)) or "before-restore" in p.name
    )


def under_database(template: Path, work: Path, *, sizes_kb: list[int]) -> Outcome:
    """Write until the disk is full; every acknowledged row must be there once space is back."""
    from convostore import BotConfig, BotStore, ChannelInfo

    outcome = Outcome("full disk under the database", "sqlite", attempts=len(sizes_kb))
    channel = ChannelInfo.channel(channel_id=1, name="general")
    for size in sizes_kb:
        with mounts.tmpfs(work / f"db-{size}", size + template.stat().st_size // 1024) as place:
            database = place / "conversations.db"
            shutil.copyfile(template, database)
            config = BotConfig.model_validate(
                {"name": "sage", "storage": {"path": str(database)}}, strict=False
            )
            acked: list[str] = []

            async def fill(config: BotConfig = config, acked: list[str] = acked) -> str:
                async with BotStore.open(config) as store:
                    for i in range(1_000_000):
                        try:
                            row = await store.add_message(
                                channel,
                                user_id=1,
                                username="alice",
                                role="user",
                                content="x" * 2000,
                                message_id=i + 1,
                            )
                        except Exception as exc:
                            return _short(exc)
                        acked.append(row.message_id)
                return "never full"

            seen = asyncio.run(fill())
            outcome.saw(seen)
            outcome.acknowledged += len(acked)
            conn = sqlite3.connect(database)
            try:
                stored = {r[0] for r in conn.execute("SELECT message_id FROM conversations")}
                integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
            finally:
                conn.close()
            outcome.lost += len(set(acked) - stored)
            if ("no space left" not in seen and "disk is full" not in seen) or integrity != "ok":
                outcome.failures += 1
                outcome.notes.append(f"{size} KiB: {seen}, integrity {integrity}")
    return outcome


def under_backup(template: Path, work: Path, *, sizes_kb: list[int]) -> Outcome:
    """Back up into a backup directory too small for it: one clear line, nothing left behind."""
    from convostore.ops.backup import backup_sqlite

    outcome = Outcome("full disk under a backup", "sqlite", attempts=len(sizes_kb))
    database = work / "backup-source.db"
    shutil.copyfile(template, database)
    conn = sqlite3.connect(database)
    conn.execute("CREATE TABLE IF NOT EXISTS pad (b BLOB)")
    conn.execute("INSERT INTO pad VALUES (zeroblob(1500000))")
    conn.commit()
    conn.close()
    for size in sizes_kb:
        with mounts.tmpfs(work / f"backup-{size}", size) as place:
            try:
                backup_sqlite(database, place)
                outcome.saw("backup written")
                outcome.failures += 1  # the file does not fit: success would be a lie
            except Exception as exc:
                outcome.saw(_short(exc))
                if "no space left" not in str(exc):
                    outcome.failures += 1
            left = os.listdir(place)
            if left:
                outcome.failures += 1
                outcome.notes.append(f"{size} KiB: left behind {left}")
    return outcome


def under_restore(template: Path, work: Path, *, fills: list[int]) -> Outcome:
    """Restore onto a nearly full disk: refused or failed cleanly, database unchanged."""
    from convostore.ops.backup import backup_sqlite, verify_sqlite
    from convostore.ops.restore import restore_sqlite

    outcome = Outcome("full disk under a restore", "sqlite", attempts=len(fills))
    backups = work / "restore-backups"
    taken = backup_sqlite(template, backups)
    for leave in fills:
        with mounts.tmpfs(work / f"restore-{leave}", 4096) as place:
            database = place / "conversations.db"
            shutil.copyfile(template, database)
            before = verify_sqlite(database).messages_per_bot
            mounts.fill(place, leave_bytes=leave)
            try:
                kept = restore_sqlite(taken.path, database)
                outcome.saw("restored")
                if kept is not None:  # the safety copy a restore keeps on purpose
                    kept.unlink()
            except Exception as exc:
                outcome.saw(_short(exc))
                if "no space left" not in str(exc):
                    outcome.failures += 1
            (place / "filler").unlink()
            after = verify_sqlite(database)
            left = _tmp_leftovers(place)
            if not after.ok or left or after.messages_per_bot != before:
                outcome.failures += 1
                outcome.notes.append(f"{leave} B free: ok={after.ok} left={left}")
    return outcome


def under_import(template: Path, work: Path, *, messages: int, sizes_kb: list[int]) -> Outcome:
    """``migrate-legacy`` into a database on a disk that fills up mid-import: one clear line, a
    consistent database, and a rerun with space back that equals a clean import."""
    from tests.faults.kill import _configs, _fingerprint, _migrate, _tree

    outcome = Outcome(
        "full disk under migrate-legacy, then rerun", "sqlite", attempts=len(sizes_kb)
    )
    tree = _tree(work, messages)
    clean = work / "import-clean.db"
    shutil.copyfile(template, clean)
    _configs(work / "import-clean-config", clean, tree)
    _out, err = _migrate(work / "import-clean-config", tree).communicate(timeout=600)
    if err.strip():
        raise RuntimeError(f"clean migrate-legacy failed: {err[-2000:]}")
    expected = _fingerprint(f"sqlite:///{clean}")
    for size in sizes_kb:
        with mounts.tmpfs(work / f"import-{size}", size + template.stat().st_size // 1024) as place:
            database = place / "conversations.db"
            shutil.copyfile(template, database)
            config_dir = work / f"import-{size}-config"
            _configs(config_dir, database, tree)
            proc = _migrate(config_dir, tree)
            _out, err = proc.communicate(timeout=600)
            lines = err.strip().splitlines()
            seen = _gist(lines[-1]) if lines else "no error"
            outcome.saw(f"exit {proc.returncode}, one line: {seen}")
            conn = sqlite3.connect(database)
            try:
                integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
                counts = conn.execute(
                    "SELECT (SELECT count(*) FROM conversations),"
                    " (SELECT coalesce(sum(message_count), 0) FROM sessions)"
                ).fetchone()
                moved = work / f"import-{size}.db"
                target = sqlite3.connect(moved)
                conn.backup(target)  # the database and its WAL, as one consistent copy
                target.close()
            finally:
                conn.close()
        last = lines[-1][:200] if lines else ""
        outcome.notes.append(f"{size} KiB: {counts[0]} rows committed before it filled; {last}")
        full = "disk is full" in seen or "no space left" in seen
        if proc.returncode != 1 or not full or len(lines) != 1 or "Traceback" in err:
            outcome.failures += 1
            outcome.notes.append(f"{size} KiB: exit {proc.returncode}, stderr {err[-300:]!r}")
        if integrity != "ok" or counts[0] != counts[1]:
            outcome.failures += 1
            outcome.notes.append(f"{size} KiB: integrity {integrity}, rows/session counts {counts}")
        _configs(config_dir, moved, tree)
        again = _migrate(config_dir, tree)
        _out, err = again.communicate(timeout=600)
        got = _fingerprint(f"sqlite:///{moved}")
        if again.returncode != 0 or got != expected:
            outcome.failures += 1
            outcome.notes.append(f"{size} KiB rerun: exit {again.returncode}, {got} vs {expected}")
        else:
            outcome.acknowledged += int(got.split()[0])
    outcome.notes.append(f"clean import: {expected}")
    return outcome
