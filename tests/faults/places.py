"""Read-only places and corrupt files under open, doctor, verify, backup, upgrade and restore."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from tests.faults import mounts
from tests.faults.report import Outcome


def _open(path: Path) -> None:
    from convostore import BotConfig, BotStore

    config = BotConfig.model_validate(
        {"name": "sage", "storage": {"path": str(path)}}, strict=False
    )

    async def main() -> None:
        async with BotStore.open(config):
            pass

    asyncio.run(main())


def _write(path: Path) -> None:
    from convostore import BotConfig, BotStore, ChannelInfo

    config = BotConfig.model_validate(
        {"name": "sage", "storage": {"path": str(path)}}, strict=False
    )
    channel = ChannelInfo.channel(channel_id=1, name="general")

    async def main() -> None:
        async with BotStore.open(config) as store:
            await store.add_message(channel, user_id=1, username="a", role="user", content="x")

    asyncio.run(main())


def _doctor(path: Path) -> str:
    from convostore.ops.doctor.sqlite import sqlite_findings as _sqlite_findings

    failing = [f for f in _sqlite_findings(path, "sage", None) if f.status.name == "FAIL"]
    return failing[0].detail if failing else "all OK"


def _verify(path: Path) -> str:
    from convostore.ops.backup import verify_sqlite

    result = verify_sqlite(path)
    return "sound" if result.ok else "; ".join(result.problems)


def _attempt(outcome: Outcome, what: str, call: Callable[[], object], good: str) -> None:
    """Run one call; what the user saw must contain ``good`` (and be one line)."""
    outcome.attempts += 1
    try:
        result = call()
        seen = str(result) if result is not None else "ok"
    except Exception as exc:
        seen = f"{type(exc).__name__}: {exc}"
    if good not in seen or "\n" in seen or "Traceback" in seen:
        outcome.failures += 1
        outcome.notes.append(f"{what}: {seen[:200]}")
    outcome.saw(f"{what}: {good}")


def read_only(template: Path, work: Path) -> Outcome:
    """A healthy database in a read-only directory (mount) and as a read-only file (mount)."""
    from convostore.ops.backup import backup_sqlite
    from convostore.ops.guard import prepare_new_sqlite

    outcome = Outcome("read-only directory / file (bind mounts)", "sqlite")
    for kind in ("directory", "file"):
        directory = work / f"ro-{kind}"
        directory.mkdir()
        path = directory / "conversations.db"
        shutil.copyfile(template, path)
        with mounts.read_only(directory if kind == "directory" else path):
            _attempt(outcome, "doctor", lambda p=path: _doctor(p), "read-only, not corrupt")
            _attempt(outcome, "verify", lambda p=path: _verify(p), "sound")
            if kind == "directory":
                _attempt(outcome, "open", lambda p=path: _open(p), "ReadOnlyDatabaseError")
            else:
                _attempt(outcome, "write", lambda p=path: _write(p), "ReadOnlyDatabaseError")
            _attempt(
                outcome, "upgrade", lambda p=path: prepare_new_sqlite(p), "ReadOnlyDatabaseError"
            )
            _attempt(
                outcome,
                "backup",
                lambda p=path, k=kind: backup_sqlite(p, work / f"ro-backups-{k}").path.name,
                "conversations_",
            )
    backups = work / "ro-backup-dir"
    backups.mkdir()
    with mounts.read_only(backups):
        _attempt(
            outcome,
            "backup into read-only dir",
            lambda: backup_sqlite(work / "ro-directory" / "conversations.db", backups),
            "backup directory is not writable",
        )
    return outcome


DAMAGE: dict[str, Callable[[bytes], bytes]] = {
    "truncated": lambda data: data[: len(data) // 3],
    "zeroed header": lambda data: bytes(100) + data[100:],
    "random bytes": lambda data: os.urandom(len(data)),
    "text": lambda data: b"not a database, just some text\n" * 300,
}


def corrupt(template: Path, work: Path) -> Outcome:
    """Each kind of damage under open, doctor, verify and restore (which must repair it)."""
    from convostore.ops.backup import backup_sqlite, verify_sqlite
    from convostore.ops.restore import restore_sqlite

    outcome = Outcome("corrupt files under open/doctor/verify/restore", "sqlite")
    taken = backup_sqlite(template, work / "corrupt-backups")
    for kind, damage in DAMAGE.items():
        directory = work / f"corrupt-{kind.replace(' ', '-')}"
        directory.mkdir()
        path = directory / "conversations.db"
        path.write_bytes(damage(template.read_bytes()))
        _attempt(outcome, "open", lambda p=path: _open(p), "the database file is damaged")
        _attempt(outcome, "doctor", lambda p=path: _doctor(p), "not a readable SQLite database")
        _attempt(outcome, "verify", lambda p=path: _verify(p), "not a sound database")
        _attempt(
            outcome,
            "restore",
            lambda p=path: restore_sqlite(taken.path, p).name,  # type: ignore[union-attr]
            ".corrupt-",
        )
        if not verify_sqlite(path).ok:
            outcome.failures += 1
            outcome.notes.append(f"{kind}: not sound after restore")
    return outcome
