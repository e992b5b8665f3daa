"""One bot process, many concurrent calls: group commit, and reads while the write lock is taken.

1. **Group commit** (SQLite): ``--count`` messages stored by one caller, one ``add_message`` after
   another (single stream), then the same number by ``--writers`` concurrent callers (asyncio
   tasks of one store, each in a channel of its own), at each ``--synchronous`` level. The ratio
   is the concurrent rate over the single-stream rate of the same level, same run. Every message
   is checked afterwards: stored once, session counters equal to the rows. Beside it, the same
   messages by plain ``sqlite3`` (the raw statements of ``bench_append.py``), one transaction
   per message and then one per ``--writers`` messages: how much grouping alone buys the driver.
2. **Reads while another process holds the write lock**: a second process takes SQLite's write
   lock (``BEGIN IMMEDIATE``) for 1 s, lets go for 0.2 s, and again, while this process keeps a
   writer task storing messages (each waits for the lock) and times ``history(limit=100)`` calls,
   ``--reads`` of them, 2 ms apart. Baseline, same run: the same reads with no lock holder. Every
   store opens its connections before the timers.

    .venv/bin/python benchmarks/bench_inprocess.py [--count 4000] [--writers 64]
        [--synchronous normal,full] [--reads 2000]
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import _common as common

BASE_TIME = datetime(2026, 1, 1, tzinfo=UTC)
CONTENT = "group commit benchmark message " + "lorem ipsum dolor sit amet " * 6


async def store_messages(url: str, count: int, writers: int, synchronous: str) -> common.Timer:
    from convostore import BotStore, ChannelInfo

    per_writer = count // writers
    async with BotStore.open(common.bot_config(url, synchronous=synchronous)) as store:
        channels = [ChannelInfo.channel(channel_id=10 + w, name=f"c{w}") for w in range(writers)]
        await store.history(channels[0], limit=1)  # untimed: opens the reader's connection
        await store.add_message(  # untimed: opens the writer's connection
            ChannelInfo.channel(channel_id=1, name="warm"),
            user_id=1,
            username="warm",
            role="user",
            content="warm",
            message_id=1,
        )
        timer = common.Timer()

        async def writer(w: int) -> None:
            for i in range(per_writer):
                start = time.perf_counter()
                await store.add_message(
                    channels[w],
                    user_id=1000 + w,
                    username=f"user{w}",
                    role="user" if i % 2 == 0 else "assistant",
                    content=CONTENT,
                    message_id=10**12 + w * 10**6 + i,
                    timestamp=BASE_TIME + timedelta(seconds=i),
                )
                timer.latencies.append(time.perf_counter() - start)

        await asyncio.gather(*(writer(w) for w in range(writers)))
        timer.stop()
    return timer


def raw_groups(path: Path, count: int, writers: int, synchronous: str) -> common.Timer:
    """The same messages by plain ``sqlite3``, ``writers`` per transaction: what grouping buys.

    The statements of ``bench_append.py``'s raw baseline (the open session counted, the message
    inserted, a session started when none is open) on one connection with the store's pragmas,
    message ``i`` of every writer in one ``BEGIN IMMEDIATE … COMMIT`` (``writers`` = 1: one
    transaction per message). No threads, no records: the driver's own cost of the same work.
    """
    from bench_append import RAW_CLOSE as close
    from bench_append import RAW_EXTEND as extend
    from bench_append import RAW_INSERT as insert
    from bench_append import RAW_START as start_sql
    from bench_append import _sqlite_time, extend_values

    per_writer = count // writers
    db = sqlite3.connect(path, isolation_level=None)
    for pragma in common.sqlite_pragmas(synchronous):
        db.execute(pragma)
    timer = common.Timer()
    for i in range(per_writer):
        started = time.perf_counter()
        db.execute("BEGIN IMMEDIATE")
        for w in range(writers):
            at = BASE_TIME + timedelta(seconds=i)
            channel = str(10 + w)
            found = db.execute(extend, extend_values(at, channel)).fetchone()
            if found is None:
                session = f"s-{channel}-{i}"
                db.execute(close, ("raw", channel))
                db.execute(start_sql, ("raw", channel, session, _sqlite_time(at), _sqlite_time(at)))
            else:
                session = found[0]
            role = "user" if i % 2 == 0 else "assistant"
            message_id = str(10**12 + w * 10**6 + i)
            values = ("raw", channel, f"c{w}", "channel", str(1000 + w), f"user{w}", session)
            db.execute(
                insert, (*values, message_id, role, CONTENT, _sqlite_time(at), None)
            ).fetchone()
        db.execute("COMMIT")
        took = time.perf_counter() - started
        timer.latencies.extend([took] * writers)
    timer.stop()
    db.close()
    return timer


def database_counts(path: Path) -> dict[str, int]:
    with sqlite3.connect(path) as conn:
        rows, distinct = conn.execute(
            "SELECT count(*), count(DISTINCT message_id) FROM conversations"
        ).fetchone()
        counted = conn.execute("SELECT coalesce(sum(message_count), 0) FROM sessions").fetchone()[0]
    return {"rows": rows, "distinct": distinct, "counted_in_sessions": counted}


LOCK_HOLDER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=60)
conn.execute("PRAGMA journal_mode = WAL")
end = time.monotonic() + float(sys.argv[2])
print("ready", flush=True)
while time.monotonic() < end:
    conn.execute("BEGIN IMMEDIATE")
    time.sleep(1.0)
    conn.execute("COMMIT")
    time.sleep(0.2)
"""


async def reads(url: str, count: int, *, with_writer: bool) -> tuple[list[float], int]:
    from convostore import BotStore, ChannelInfo

    channel = ChannelInfo.channel(channel_id=1, name="read")
    written = 0
    async with BotStore.open(common.bot_config(url)) as store:
        for i in range(100):
            await store.add_message(
                channel, user_id=1, username="u", role="user", content=CONTENT, message_id=i + 1
            )
        await store.history(channel, limit=100)  # untimed: opens the reader's connection
        stop = asyncio.Event()

        async def writer() -> None:
            nonlocal written
            i = 0
            while not stop.is_set():
                await store.add_message(
                    channel,
                    user_id=2,
                    username="w",
                    role="user",
                    content=CONTENT,
                    message_id=10**9 + i,
                )
                written += 1
                i += 1

        task = asyncio.create_task(writer()) if with_writer else None
        latencies = []
        for _ in range(count):
            start = time.perf_counter()
            rows = await store.history(channel, limit=100)
            latencies.append(time.perf_counter() - start)
            assert len(rows) == 100
            await asyncio.sleep(0.002)
        stop.set()
        if task is not None:
            await task
    return latencies, written


async def main() -> None:
    p = common.parser(__doc__ or "")
    p.add_argument("--count", type=int, default=4000, help="messages per group-commit run")
    p.add_argument("--writers", type=int, default=64)
    p.add_argument("--synchronous", default="normal,full")
    p.add_argument("--reads", type=int, default=2000)
    args = p.parse_args()
    group_rows: list[dict[str, Any]] = []
    raw_rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(dir=common.RESULTS) as tmp:
        for level in common.synchronous_levels(args.synchronous):
            single_path, many_path = (
                Path(tmp) / f"single-{level}.db",
                Path(tmp) / f"many-{level}.db",
            )
            single = await store_messages(common.sqlite_database(single_path), args.count, 1, level)
            many = await store_messages(
                common.sqlite_database(many_path), args.count, args.writers, level
            )
            for writers, timer, path in ((1, single, single_path), (args.writers, many, many_path)):
                group_rows.append(
                    {
                        "synchronous": level,
                        "writers": writers,
                        "messages": len(timer.latencies),
                        "per_s": timer.rate,
                        **common.summary(timer.latencies),
                        "vs_single": timer.rate / single.rate,
                        **database_counts(path),
                    }
                )
            raw: dict[int, common.Timer] = {}
            for writers in (1, args.writers):
                raw_path = Path(tmp) / f"raw-{level}-{writers}.db"
                common.sqlite_database(raw_path)  # a fresh migrated file there
                raw[writers] = raw_groups(raw_path, args.count, writers, level)
            for writers, timer in raw.items():
                raw_rows.append(
                    {
                        "synchronous": level,
                        "writers": writers,
                        "messages": len(timer.latencies),
                        "per_s": timer.rate,
                        "vs_single": timer.rate / raw[1].rate,
                    }
                )
            print(f"  done: group commit at {level}", flush=True)

        read_path = Path(tmp) / "reads.db"
        url = common.sqlite_database(read_path)
        alone, _ = await reads(url, args.reads, with_writer=False)
        duration = args.reads * 0.004 + 30
        holder = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            LOCK_HOLDER,
            str(read_path),
            str(duration),
            stdout=asyncio.subprocess.PIPE,
        )
        try:
            assert holder.stdout is not None
            await holder.stdout.readline()  # "ready"
            started = time.perf_counter()
            locked, written = await reads(url, args.reads, with_writer=True)
            took = time.perf_counter() - started
        finally:
            holder.terminate()
            await holder.wait()
    read_rows = [
        {"contender": "history alone", **common.summary(alone), "writes_done": 0},
        {
            "contender": "history while another process holds the write lock 1 s in every 1.2 s",
            **common.summary(locked),
            "writes_done": written,
            "seconds": took,
        },
    ]
    headers = ["synchronous", "writers", "messages", "per_s", "p50_ms", "p99_ms", "vs_single"]
    headers += ["rows", "distinct", "counted_in_sessions"]
    print(f"\ngroup commit: {args.count:,} messages per run, one store, SQLite")
    print(common.table(headers, [[r[h] for h in headers] for r in group_rows]))
    headers = ["synchronous", "writers", "messages", "per_s", "vs_single"]
    print(
        "\nthe same work by plain sqlite3 (bench_append.py's raw statements), one transaction per"
        " message (writers = 1) or one per message of every writer: what grouping alone buys"
    )
    print(common.table(headers, [[r[h] for h in headers] for r in raw_rows]))
    headers = ["contender", "samples", "p50_ms", "p99_ms", "writes_done"]
    print("\nhistory(limit=100) in the writing process, 2 ms between reads")
    print(common.table(headers, [[r[h] for h in headers] for r in read_rows]))
    common.write_results(
        "inprocess",
        {
            "count": args.count,
            "writers": args.writers,
            "group_commit": group_rows,
            "raw_sqlite3_groups": raw_rows,
            "reads": read_rows,
        },
    )


if __name__ == "__main__":
    common.RESULTS.mkdir(parents=True, exist_ok=True)
    asyncio.run(main())
