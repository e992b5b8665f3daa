"""Checks of a SQLite file, opened read-only: journal mode, pragmas, integrity, schema."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine
from sqlalchemy.engine import Engine

from convostore import sqlite_files
from convostore.engine import (
    BUSY_TIMEOUT_MS,
    READ_ONLY_OPTION,
    install_sqlite_transaction_handling,
)
from convostore.ops.doctor.limits import QUICK_CHECK_ABOVE_BYTES
from convostore.ops.doctor.report import Finding, Status
from convostore.ops.doctor.schema_checks import schema_findings
from convostore.ops.restore import FENCE_PREFIX


def read_only_uri(path: Path) -> str:
    return sqlite_files.read_only_uri(path)


def _read_only_finding(path: Path, reason: str, detail: str) -> Finding:
    return Finding(
        "writable",
        Status.FAIL,
        f"{path}: read-only, not corrupt: {reason}; {detail}; no bot can write to it",
        "make it writable: remount the file system read-write, or fix the owner/permissions "
        "of the file and its directory (SQLite writes -wal and -shm files beside it)",
    )


def _pragma(conn: sqlite3.Connection, name: str) -> Any:
    row = conn.execute(f"PRAGMA {name}").fetchone()
    return None if row is None else row[0]


_SYNCHRONOUS = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
_AUTO_VACUUM = {0: "none", 1: "full", 2: "incremental"}


def _file_findings(conn: sqlite3.Connection, path: Path) -> tuple[list[Finding], bool]:
    """Journal mode and auto_vacuum, stored in the file; and whether the file is in WAL."""
    findings = []
    journal = str(_pragma(conn, "journal_mode")).lower()
    if journal != "wal" and sqlite_files.is_wal_file(path):  # read as immutable: read-only place
        journal = "wal"
    wal = journal == "wal"
    if wal:
        findings.append(Finding("journal mode", Status.OK, "wal"))
    else:
        findings.append(
            Finding(
                "journal mode",
                Status.FAIL,
                f"{journal}, not wal: bots sharing the file block each other's reads and writes",
                f"stop the bots, then run `sqlite3 {path} 'PRAGMA journal_mode=WAL'` (convostore "
                "sets WAL when it opens a file; this one was made or restored by another tool)",
            )
        )
    auto_vacuum = _AUTO_VACUUM.get(int(_pragma(conn, "auto_vacuum") or 0), "?")
    free = int(_pragma(conn, "freelist_count") or 0) * int(_pragma(conn, "page_size") or 0)
    if auto_vacuum == "incremental":
        findings.append(
            Finding("auto vacuum", Status.OK, f"incremental ({free / 1e6:.1f} MB free in file)")
        )
    else:
        findings.append(
            Finding(
                "auto vacuum",
                Status.WARN,
                f"{auto_vacuum}: cleanup frees pages inside the file but the file never shrinks "
                f"({free / 1e6:.1f} MB free in file)",
                "stop the bots, take a backup, run `convostore cleanup --vacuum` once: it rewrites "
                "the file with auto_vacuum=incremental (needs as much free disk as the file)",
            )
        )
    return findings, wal


def _connection_findings(engine: Engine) -> Finding:
    with engine.connect() as connection:
        raw = connection.connection.driver_connection
        assert isinstance(raw, sqlite3.Connection)
        busy = int(_pragma(raw, "busy_timeout") or 0)
        foreign_keys = bool(_pragma(raw, "foreign_keys"))
        synchronous = _SYNCHRONOUS.get(int(_pragma(raw, "synchronous") or 0), "?")
    detail = (
        f"busy_timeout {busy} ms, foreign_keys {'on' if foreign_keys else 'off'}, "
        f"synchronous {synchronous} (as convostore's connections set them)"
    )
    if busy >= BUSY_TIMEOUT_MS and foreign_keys and synchronous in ("NORMAL", "FULL"):
        return Finding("connection pragmas", Status.OK, detail)
    return Finding(
        "connection pragmas",
        Status.FAIL,
        detail,
        "reinstall convostore: its connections should set busy_timeout "
        f"{BUSY_TIMEOUT_MS} ms, foreign_keys on, synchronous NORMAL",
    )


def _integrity(conn: sqlite3.Connection, path: Path, full: bool | None) -> Finding:
    size = path.stat().st_size
    quick = not full and (full is False or size > QUICK_CHECK_ABOVE_BYTES)
    pragma = "quick_check" if quick else "integrity_check"
    started = time.perf_counter()
    try:
        results = [str(r[0]) for r in conn.execute(f"PRAGMA {pragma}")]
    except sqlite3.DatabaseError as exc:
        results = [str(exc)]
    took = time.perf_counter() - started
    why = (
        f"; file over {QUICK_CHECK_ABOVE_BYTES // 2**20} MB, `--full` for integrity_check"
        if quick and full is None
        else ""
    )
    if results == ["ok"]:
        return Finding("integrity", Status.OK, f"{pragma}: ok ({took:.1f} s{why})")
    return Finding(
        "integrity",
        Status.FAIL,
        f"{pragma}: {'; '.join(results[:3])}",
        "stop the bots and restore the newest backup that verifies (`convostore verify FILE`, "
        "then `convostore restore FILE`)",
    )


def sqlite_findings(path: Path, bot_name: str, full: bool | None) -> list[Finding]:
    if not path.is_file():
        return [
            Finding(
                "database file",
                Status.FAIL,
                f"{path} does not exist",
                "run `convostore upgrade` to create it, or fix storage.path in the bot config",
            )
        ]
    read_only = sqlite_files.unwritable_reason(path)
    try:
        conn = sqlite3.connect(read_only_uri(path), uri=True)
    except sqlite3.Error as exc:
        return [Finding("database file", Status.FAIL, f"{path}: cannot open: {exc}")]
    try:
        try:
            findings, wal = _file_findings(conn, path)
        except sqlite3.DatabaseError as exc:
            if read_only is not None and isinstance(exc, sqlite3.OperationalError):
                return [_read_only_finding(path, read_only, f"SQLite cannot open it ({exc})")]
            return [
                Finding(
                    "database file",
                    Status.FAIL,
                    f"{path}: not a readable SQLite database: {exc}",
                    "restore the newest backup that verifies (`convostore restore FILE`)",
                )
            ]
        engine = create_engine(
            "sqlite://", creator=lambda: sqlite3.connect(read_only_uri(path), uri=True)
        )
        try:
            if wal and read_only is not None:
                findings.append(
                    Finding("connection pragmas", Status.SKIP, "not checked in a read-only place")
                )
            elif wal:
                # The store's own connect hook, on a read-only connection: it changes nothing in
                # a WAL file, and shows the pragmas every bot connection runs with.
                install_sqlite_transaction_handling(engine)
                findings.append(_connection_findings(engine))
            else:
                findings.append(
                    Finding(
                        "connection pragmas",
                        Status.SKIP,
                        "checked once the journal mode is wal",
                    )
                )
            reader = engine.execution_options(**{READ_ONLY_OPTION: True})
            with reader.connect() as connection:
                findings.extend(schema_findings(connection, bot_name))
                connection.rollback()
        finally:
            engine.dispose()
        findings.append(_integrity(conn, path, full))
        fence = conn.execute(
            "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name LIKE ?",
            (f"{FENCE_PREFIX}%",),
        ).fetchone()[0]
        if fence:
            findings.append(
                Finding(
                    "restore fence",
                    Status.FAIL,
                    f"{path}: a restore was interrupted and its write fence is still up: every "
                    "write fails",
                    "run the same `convostore restore FILE` again",
                )
            )
        if read_only is not None:
            findings.insert(0, _read_only_finding(path, read_only, "its content was read"))
        return findings
    finally:
        conn.close()
