"""``restore`` while writer processes append: no acknowledged write may vanish.

Every acknowledged message must be in the final database or in one of the safety copies the
restores kept; every message acknowledged after the last restore returned must be in the final
database.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from tests.faults import writers
from tests.faults.report import Outcome


def _ids(path: Path) -> set[int]:
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT message_id FROM conversations WHERE bot_name = 'writer'")
        return {int(row[0]) for row in rows}
    finally:
        conn.close()


def run(database: Path, work: Path, *, restores: int, writer_count: int = 3) -> Outcome:
    """``database`` is a migrated SQLite file; backups and safety copies go under ``work``."""
    from datetime import UTC, datetime, timedelta

    from convostore.ops.backup import backup_sqlite
    from convostore.ops.restore import restore_sqlite

    outcome = Outcome("restore under 3 live writers", "sqlite", attempts=restores)
    taken = backup_sqlite(database, work / "backups")
    url = f"sqlite+aiosqlite:///{database}"
    stop = work / "stop"
    procs = [writers.start(url, w, stop) for w in range(writer_count)]
    for proc in procs:
        writers.wait_ready(proc)
    kept: list[Path] = []
    last_done = 0.0
    try:
        for k in range(restores):
            time.sleep(0.4)
            now = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=k)
            try:
                safety = restore_sqlite(taken.path, database, now=now)
            except Exception as exc:
                outcome.failures += 1
                outcome.saw(f"{type(exc).__name__}: {exc}")
                continue
            last_done = time.monotonic()
            outcome.saw("restored, exit 0")
            if safety is not None:
                kept.append(safety)
        time.sleep(0.4)
    finally:
        stop.touch()
        for proc in procs:
            proc.collect()
    final = _ids(database)
    everywhere = final.union(*(_ids(path) for path in kept))
    acked = {mid: at for proc in procs for mid, at in proc.acked.items()}
    after = {mid for mid, at in acked.items() if at > last_done}
    outcome.acknowledged = len(acked)
    outcome.lost = len(after - final) + len(set(acked) - everywhere - after)
    outcome.notes.append(f"{len(after)} acknowledged after the last restore returned")
    for proc in procs:
        for error in proc.errors:
            outcome.failures += 1
            outcome.saw(f"writer: {error.split(':')[0]}")
    return outcome
