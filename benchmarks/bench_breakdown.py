"""Where the time of an append and of a history read goes, piece by piece, on SQLite.

The figures docs/performance.md gives to explain the peer comparisons ("Where the time goes"):

- **thread hop**: the round trip of a function that does nothing through the event loop's default
  executor (``loop.run_in_executor``) and through ``asyncio.to_thread``, as a store that runs its
  SQLite work in a thread pays once per call;
- **history**: the store's own history read (``newest_driver_sql``, the newest 100 rows of a
  channel) on a plain ``sqlite3`` connection with convostore's pragmas, split into the SQL
  selecting one column of those rows, the SQL selecting every column a record needs, and the
  building of the 100 records from those rows (``messages_from_driver_rows``, no SQL), over the
  same random channels, on the cached files of ``bench_history.py`` (about 1,000 rows per channel);
- **append**: the append's raw statements (``bench_append.py``'s, the ones convostore runs), one
  transaction per message over ``--channels`` conversations after ``--seed`` untimed ones, split
  into ``BEGIN IMMEDIATE`` plus the statements and the ``COMMIT``, at each ``synchronous`` level.

Every figure is the p50 (and mean) of ``--samples`` timings, in microseconds.

    .venv/bin/python benchmarks/bench_breakdown.py [--samples 3000] [--sizes 10000,100000]
        [--seed 4000] [--channels 1000] [--synchronous normal,full]
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import _common as common
import _data as data
import bench_append
import bench_wal_pages


def _row(piece: str, what: str, timings: list[float]) -> dict[str, Any]:
    return {
        "piece": piece,
        "what": what,
        "samples": len(timings),
        "p50_us": common.percentile(timings, 0.5) * 1e6,
        "mean_us": statistics.fmean(timings) * 1e6,
    }


async def thread_hop(samples: int) -> list[dict[str, Any]]:
    loop = asyncio.get_running_loop()

    def nothing() -> None:
        return None

    found = []
    for what, hop in (
        ("loop.run_in_executor(None, f)", lambda: loop.run_in_executor(None, nothing)),
        ("asyncio.to_thread(f)", lambda: asyncio.to_thread(nothing)),
    ):
        for _ in range(200):  # the executor's threads started
            await hop()
        timings = []
        for _ in range(samples):
            started = time.perf_counter()
            await hop()
            timings.append(time.perf_counter() - started)
        found.append(_row("thread hop", what, timings))
    return found


def history(rows: int, samples: int) -> list[dict[str, Any]]:
    from convostore.repositories.messages import newest_driver_sql
    from convostore.repositories.rows import messages_from_driver_rows

    full = newest_driver_sql()
    one = full.replace(full[: full.index(" FROM ")], "SELECT message_id")
    conn = sqlite3.connect(data.sqlite_file(rows), isolation_level=None)
    for pragma in common.sqlite_pragmas():
        conn.execute(pragma)
    rng = random.Random(7)
    channels = [data.channel_id(rng.randrange(data.channels(rows))) for _ in range(samples)]
    found = []
    for what, sql in (("SQL, one column", one), ("SQL, every column of a record", full)):
        for cid in channels[:200]:
            conn.execute(sql, (data.BOT, cid, 100)).fetchall()
        timings = []
        for cid in channels:
            started = time.perf_counter()
            got = conn.execute(sql, (data.BOT, cid, 100)).fetchall()
            timings.append(time.perf_counter() - started)
            assert len(got) == 100
        found.append(_row(f"history, {rows:,} rows", what, timings))
    fetched = [(cid, conn.execute(full, (data.BOT, cid, 100)).fetchall()) for cid in channels]
    conn.close()
    timings = []
    for cid, got in fetched:
        started = time.perf_counter()
        messages_from_driver_rows(got, data.BOT, cid)
        timings.append(time.perf_counter() - started)
    found.append(_row(f"history, {rows:,} rows", "building the 100 records", timings))
    return found


def append(path: Path, seed: int, samples: int, channels: int, level: str) -> list[dict[str, Any]]:
    messages = bench_append.workload(seed + samples, channels)
    common.sqlite_database(path)
    conn = sqlite3.connect(path, isolation_level=None)
    for pragma in common.sqlite_pragmas(level):
        conn.execute(pragma)
    statements: list[float] = []
    commits: list[float] = []
    for m in messages:
        started = time.perf_counter()
        bench_wal_pages.raw_statements(conn, m)
        statements.append(time.perf_counter() - started)
        started = time.perf_counter()
        conn.execute("COMMIT")
        commits.append(time.perf_counter() - started)
    conn.close()
    piece = f"append, synchronous={level}"
    return [
        _row(piece, "BEGIN IMMEDIATE and the statements", statements[seed:]),
        _row(piece, "COMMIT", commits[seed:]),
    ]


async def main() -> None:
    p = common.parser(__doc__ or "")
    p.add_argument("--samples", type=int, default=3000, help="timings per piece")
    p.add_argument("--sizes", default="10000,100000", help="history: rows of the files read")
    p.add_argument("--seed", type=int, default=4000, help="append: untimed messages first")
    p.add_argument("--channels", type=int, default=1000, help="append: conversations")
    p.add_argument("--synchronous", default="normal,full", help="append: levels")
    args = p.parse_args()
    rows = await thread_hop(args.samples)
    for size in (int(s) for s in args.sizes.split(",") if s.strip()):
        rows += history(size, args.samples)
    with tempfile.TemporaryDirectory(dir=common.RESULTS.parent) as tmp:
        for level in common.synchronous_levels(args.synchronous):
            rows += append(Path(tmp) / f"{level}.db", args.seed, args.samples, args.channels, level)
    headers = list(rows[0])
    print("\nwhere the time goes, SQLite (microseconds)")
    print(common.table(headers, [[r[h] for h in headers] for r in rows]))
    common.write_results("breakdown", {"samples": args.samples, "rows": rows})


if __name__ == "__main__":
    common.RESULTS.mkdir(parents=True, exist_ok=True)
    asyncio.run(main())
