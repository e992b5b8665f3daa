"""Several OS processes writing to one SQLite file at once: no lock errors, nothing lost."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy.engine import make_url

from tests.conftest import ROOT

WRITER = r"""
import asyncio, json, sys, time
from datetime import UTC, datetime
from convostore import BotStore, ChannelInfo, load_config

async def main(config_path, worker, count):
    config = load_config(config_path)
    shared = ChannelInfo.channel(channel_id=1, name="shared")
    own = ChannelInfo.channel(channel_id=100 + worker, name=f"own-{worker}")
    errors, latencies = [], []
    async with BotStore.open(config) as store:
        for i in range(count):
            channel = shared if i % 2 == 0 else own
            start = time.perf_counter()
            try:
                await store.add_message(channel, user_id=worker, username=f"w{worker}", role="user",
                                        content=f"{worker}:{i}", message_id=worker * 1_000_000 + i)
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
            latencies.append(time.perf_counter() - start)
    print(json.dumps({"errors": errors, "max_latency": max(latencies)}))

asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
"""


def _query(db_url: str, sql: str) -> list[tuple[object, ...]]:
    url = make_url(db_url)
    if url.get_backend_name() == "sqlite":
        with sqlite3.connect(str(url.database)) as conn:
            return [tuple(row) for row in conn.execute(sql).fetchall()]
    plain = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(plain) as conn:
        return [tuple(row) for row in conn.execute(sql).fetchall()]  # type: ignore[arg-type]


@pytest.mark.slow
def test_three_processes_500_messages_each(tmp_path: Path, db_url: str, backend: str) -> None:
    config = tmp_path / "sage.yaml"
    config.write_text(f"storage:\n  type: {backend}\n  url: {db_url}\n")
    started = time.perf_counter()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(config), str(worker), "500"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for worker in range(3)
    ]
    reports = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        reports.append(json.loads(out.strip().splitlines()[-1]))
    elapsed = time.perf_counter() - started
    assert [r["errors"] for r in reports] == [[], [], []]
    assert _query(db_url, "SELECT count(*) FROM conversations") == [(1500,)]
    assert _query(db_url, "SELECT count(DISTINCT message_id) FROM conversations") == [(1500,)]
    # Every message is counted by its session, and each channel has exactly one open session.
    assert _query(db_url, "SELECT sum(message_count) FROM sessions") == [(1500,)]
    per_session = _query(
        db_url,
        "SELECT s.message_count, count(c.id) FROM sessions s JOIN conversations c "
        "ON c.bot_name = s.bot_name AND c.channel_id = s.channel_id "
        "AND c.session_id = s.session_id GROUP BY s.id, s.message_count",
    )
    assert per_session and all(expected == actual for expected, actual in per_session)
    open_sessions = _query(
        db_url, "SELECT channel_id, count(*) FROM sessions WHERE is_active GROUP BY channel_id"
    )
    assert sorted(open_sessions) == [("1", 1), ("100", 1), ("101", 1), ("102", 1)]
    print(
        f"\n[{backend}] 3 processes x 500 messages: {1500 / elapsed:.0f} msg/s overall "
        f"(including process start-up), max latency "
        f"{max(r['max_latency'] for r in reports) * 1000:.0f} ms"
    )


@pytest.mark.slow
def test_six_processes_on_a_serializable_postgresql_database(
    tmp_path: Path, pg_databases: Any
) -> None:
    # The isolation CockroachDB and YugabyteDB use: conflicting transactions fail with 40001
    # (or 40P01) and the store runs them again.
    from tests.conftest import _pg_admin, upgrade

    db_url = pg_databases.create()
    name = make_url(db_url).database
    with _pg_admin() as conn:
        conn.execute(
            f"ALTER DATABASE \"{name}\" SET default_transaction_isolation = 'serializable'"
        )
    upgrade(db_url)
    assert _query(db_url, "SHOW default_transaction_isolation") == [("serializable",)]
    config = tmp_path / "sage.yaml"
    config.write_text(f"storage:\n  type: postgresql\n  url: {db_url}\n")
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(config), str(worker), "100"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for worker in range(6)
    ]
    reports = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        reports.append(json.loads(out.strip().splitlines()[-1]))
    assert [r["errors"] for r in reports] == [[]] * 6
    assert _query(db_url, "SELECT count(DISTINCT message_id), count(*) FROM conversations") == [
        (600, 600)
    ]
    assert _query(db_url, "SELECT sum(message_count) FROM sessions") == [(600,)]
    open_sessions = _query(
        db_url, "SELECT channel_id, count(*) FROM sessions WHERE is_active GROUP BY channel_id"
    )
    assert sorted(open_sessions) == [("1", 1), *((str(100 + w), 1) for w in range(6))]
