"""Concurrency: 1, 3 and 6 OS processes appending to one SQLite file, and to one PostgreSQL DB.

Each process opens its own ``BotStore`` (same bot) and appends ``--count`` messages, alternating
between one channel shared by all processes and a channel of its own, one transaction each. All
processes start at the same instant. Afterwards the database is checked: every message stored once
(rows lost = sent - stored), each session's ``message_count`` matching its rows, one open session
per channel. Baseline, same run: one process alone (throughput ratio against it).

    .venv/bin/python benchmarks/bench_concurrency.py [--processes 1,3,6] [--count 1000]
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _common as common


async def worker(url: str, index: int, count: int, start_at: float) -> dict[str, Any]:
    from convostore import BotStore, ChannelInfo

    shared = ChannelInfo.channel(channel_id=1, name="shared")
    own = ChannelInfo.channel(channel_id=100 + index, name=f"own-{index}")
    errors: list[str] = []
    latencies: list[float] = []
    async with BotStore.open(common.bot_config(url)) as store:
        await store.history(own, limit=1)  # untimed: opens the store's connections
        await asyncio.sleep(max(0.0, start_at - time.time()))
        started = time.time()
        for i in range(count):
            begin = time.perf_counter()
            try:
                await store.add_message(
                    shared if i % 2 == 0 else own,
                    user_id=index + 1,
                    username=f"w{index}",
                    role="user",
                    content=f"process {index} message {i}",
                    message_id=(index + 1) * 10_000_000 + i,
                )
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
            latencies.append(time.perf_counter() - begin)
        finished = time.time()
    return {"started": started, "finished": finished, "latencies": latencies, "errors": errors}


def check(url: str) -> dict[str, int]:
    """What the database holds after a run: rows, distinct ids, counted messages, open sessions."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    sync = parsed.set(
        drivername="sqlite" if parsed.get_backend_name() == "sqlite" else "postgresql+psycopg"
    )
    engine = create_engine(sync)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT count(*) FROM conversations")).scalar_one()
            distinct = conn.execute(
                text("SELECT count(DISTINCT message_id) FROM conversations")
            ).scalar_one()
            counted = conn.execute(
                text("SELECT coalesce(sum(message_count), 0) FROM sessions")
            ).scalar_one()
            bad_open = conn.execute(
                text(
                    "SELECT count(*) FROM (SELECT channel_id FROM sessions WHERE is_active"
                    " GROUP BY channel_id HAVING count(*) <> 1) AS t"
                )
            ).scalar_one()
    finally:
        engine.dispose()
    return {
        "rows": int(rows),
        "distinct": int(distinct),
        "counted": int(counted),
        "bad_open": int(bad_open),
    }


def run(url: str, processes: int, count: int) -> dict[str, Any]:
    start_at = time.time() + 3.0  # time for every process to import and connect
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "--worker", url, str(i), str(count), str(start_at)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(processes)
    ]
    reports = []
    for proc in procs:
        out, err = proc.communicate(timeout=1800)
        if proc.returncode != 0:
            raise SystemExit(f"worker failed:\n{err}")
        reports.append(json.loads(out.strip().splitlines()[-1]))
    latencies = [lat for r in reports for lat in r["latencies"]]
    errors = [e for r in reports for e in r["errors"]]
    wall = max(r["finished"] for r in reports) - min(r["started"] for r in reports)
    stored = check(url)
    sent = processes * count
    return {
        "processes": processes,
        "messages": sent,
        "per_s": sent / wall,
        **common.summary(latencies),
        "errors": len(errors),
        "first_errors": errors[:3],
        "lost": sent - stored["distinct"],
        "duplicated": stored["rows"] - stored["distinct"],
        "miscounted": stored["rows"] - stored["counted"],
        "channels_without_one_open_session": stored["bad_open"],
    }


def main() -> None:
    p = common.parser(__doc__ or "")
    p.add_argument("--processes", default="1,3,6")
    p.add_argument("--count", type=int, default=1000, help="messages per process")
    args = p.parse_args()
    counts = [int(n) for n in args.processes.split(",")]
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(dir=common.RESULTS) as tmp:
        for backend in common.backends(args):
            baseline: float | None = None
            for n in counts:
                if backend == "sqlite":
                    url = common.sqlite_database(Path(tmp) / f"concurrency_{n}.db")
                    r = run(url, n, args.count)
                else:
                    with common.postgres_database(f"concurrency{n}") as (url, _plain):
                        r = run(url, n, args.count)
                baseline = baseline or r["per_s"]
                results.append(
                    {"backend": backend, **r, "ratio_vs_1_process": r["per_s"] / baseline}
                )
                print(f"  done: {backend}, {n} processes", flush=True)
    headers = [
        "backend",
        "processes",
        "messages",
        "per_s",
        "p50_ms",
        "p99_ms",
        "errors",
        "lost",
        "duplicated",
        "miscounted",
        "ratio_vs_1_process",
    ]
    print(f"\nconcurrency: {args.count:,} messages per process, half to one shared channel")
    print(common.table(headers, [[r[h] for h in headers] for r in results]))
    for r in results:
        if r["first_errors"]:
            print(f"  {r['backend']} x{r['processes']} errors: {r['first_errors']}")
    common.write_results("concurrency", {"count": args.count, "rows": results})


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        url, index, count, start_at = sys.argv[2:6]
        report = asyncio.run(worker(url, int(index), int(count), float(start_at)))
        print(json.dumps(report))
    else:
        common.RESULTS.mkdir(parents=True, exist_ok=True)
        main()
