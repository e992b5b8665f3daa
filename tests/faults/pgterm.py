"""PostgreSQL backends terminated mid-traffic (``pg_terminate_backend``, own test database only)."""

from __future__ import annotations

import random
import time
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

from tests.faults import writers
from tests.faults._db import query
from tests.faults.report import Outcome


def run(db_url: str, work: Path, *, seconds: float, writer_count: int = 3) -> Outcome:
    url = make_url(db_url)
    database = url.database
    plain = url.set(drivername="postgresql").render_as_string(hide_password=False)
    outcome = Outcome("pg_terminate_backend mid-traffic", "postgresql")
    stop = work / "stop-pgterm"
    live = [writers.start(db_url, w, stop) for w in range(writer_count)]
    for writer in live:
        writers.wait_ready(writer)
    rng = random.Random(7)
    terminated = 0
    try:
        with psycopg.connect(plain, autocommit=True) as admin:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                time.sleep(rng.uniform(0.05, 0.3))
                rows = admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid()",
                    (database,),
                ).fetchall()
                outcome.attempts += 1
                terminated += sum(1 for (ok,) in rows if ok)
    finally:
        stop.touch()
        for writer in live:
            writer.collect()
    acked = {mid for writer in live for mid in writer.acked}
    stored = {
        int(row[0])
        for row in query(db_url, "SELECT message_id FROM conversations WHERE bot_name = 'writer'")
    }
    outcome.acknowledged = len(acked)
    outcome.lost = len(acked - stored)
    for writer in live:
        for error in writer.errors:
            outcome.failures += 1
            outcome.saw(f"writer: {error[:60]}")
    outcome.notes.append(f"{terminated} backends terminated in {outcome.attempts} rounds")
    outcome.saw(f"{terminated} backends terminated, writers saw no error")
    return outcome
