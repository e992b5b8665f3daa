"""Write volume of one append: write-ahead-log pages per commit, and the rate of the raw statements.

What an append costs SQLite itself, below any Python wrapper: the append's raw statements
(``bench_append.py``'s ``UPDATE`` of the open session and ``INSERT … ON CONFLICT DO NOTHING``, the
statements convostore runs; a new session when the message does not fit) run with plain
``sqlite3``, one transaction per message, on a database migrated by ``alembic upgrade head``, with
convostore's pragmas. Beside it, the OpenAI Agents SDK's ``SQLiteSession.add_items([item])`` (its
own schema and statements, through its own API) on a file of its own, at the same
``PRAGMA synchronous``. Then the same raw appends with each secondary index of ``conversations``
dropped in turn: what each index adds to a commit.

Each contender first stores ``--seed`` messages over ``--channels`` conversations (untimed: every
conversation has rows and an open session), then the WAL is emptied and automatic checkpoints are
turned off, and ``--count`` more messages are timed; the pages written are the WAL's frame count
afterwards (``PRAGMA wal_checkpoint(PASSIVE)`` from a second connection), divided by the commits.
Every contender runs ``--runs`` times per level, in turns; the median run is reported.
``ratio_to_sdk``: this contender's median rate / the SDK's, same level, same run.

    .venv/bin/python benchmarks/bench_wal_pages.py [--count 2000] [--seed 4000]
        [--channels 1000] [--synchronous normal,full] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _common as common
import bench_append

SECONDARY_INDEXES = (
    "idx_conversations_session",
    "idx_conversations_bot_channel_time",
    "idx_conversations_bot_user_time",
    "idx_conversations_history",
)


def wal_frames(path: Path) -> int:
    """Frames in the WAL of ``path`` now (a passive checkpoint copies them but keeps the log)."""
    with sqlite3.connect(path) as conn:
        return int(conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1])


def raw_statements(conn: sqlite3.Connection, m: dict[str, Any]) -> None:
    """``BEGIN IMMEDIATE`` and one append's raw statements (as ``bench_append.run_aiosqlite``),
    the commit left to the caller."""
    at_text = bench_append._sqlite_time
    at = m["timestamp"]
    channel = str(m["channel"] + 1)
    conn.execute("BEGIN IMMEDIATE")
    found = conn.execute(
        bench_append.RAW_EXTEND, bench_append.extend_values(at, channel)
    ).fetchone()
    if found is None:
        session = f"s-{m['message_id']}"
        conn.execute(bench_append.RAW_CLOSE, ("raw", channel))
        conn.execute(bench_append.RAW_START, ("raw", channel, session, at_text(at), at_text(at)))
    else:
        session = found[0]
    conn.execute(
        bench_append.RAW_INSERT, bench_append.insert_values(m, channel, session, at_text(at))
    ).fetchone()


def raw_appender(conn: sqlite3.Connection) -> Callable[[dict[str, Any]], None]:
    """One append with the raw statements, one transaction."""

    def store(m: dict[str, Any]) -> None:
        raw_statements(conn, m)
        conn.execute("COMMIT")

    return store


def run_raw(
    path: Path, seed: list[dict[str, Any]], timed: list[dict[str, Any]], level: str, drop: str
) -> tuple[float, float]:
    """(frames per commit, appends per second) of the raw statements, ``drop`` dropped first."""
    common.sqlite_database(path)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        for pragma in common.sqlite_pragmas(level):
            conn.execute(pragma)
        if drop:
            conn.execute(f"DROP INDEX {drop}")
        conn.execute("PRAGMA wal_autocheckpoint = 0")  # the WAL keeps every frame
        store = raw_appender(conn)
        for m in seed:
            store(m)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        started = time.perf_counter()
        for m in timed:
            store(m)
        elapsed = time.perf_counter() - started
        return wal_frames(path) / len(timed), len(timed) / elapsed
    finally:
        conn.close()


async def run_sdk(
    path: Path, seed: list[dict[str, Any]], timed: list[dict[str, Any]], level: str
) -> tuple[float, float]:
    """(frames per commit, appends per second) of ``SQLiteSession.add_items([item])``."""
    from agents import SQLiteSession

    pragma = common.sqlite_pragmas(level)

    class Session(SQLiteSession):  # type: ignore[misc]
        @staticmethod
        def _configure_connection(conn: sqlite3.Connection) -> None:
            SQLiteSession._configure_connection(conn)
            conn.execute(pragma[2])  # PRAGMA synchronous, as in bench_peers
            conn.execute("PRAGMA wal_autocheckpoint = 0")  # the WAL keeps every frame

    common.remove_sqlite(path)
    channels = {m["channel"] for m in [*seed, *timed]}
    sessions = {c: Session(f"channel-{c}", path) for c in channels}
    try:
        for m in seed:
            await sessions[m["channel"]].add_items([{"role": m["role"], "content": m["content"]}])
        with sqlite3.connect(path) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        items = [
            (sessions[m["channel"]], {"role": m["role"], "content": m["content"]}) for m in timed
        ]
        started = time.perf_counter()
        for session, item in items:
            await session.add_items([item])
        elapsed = time.perf_counter() - started
        return wal_frames(path) / len(timed), len(timed) / elapsed
    finally:
        for session in sessions.values():
            session.close()


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--count", type=int, default=2000, help="timed appends per contender")
    p.add_argument("--seed", type=int, default=4000, help="untimed appends first")
    p.add_argument("--channels", type=int, default=1000)
    p.add_argument("--synchronous", default="normal,full")
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args()
    messages = bench_append.workload(args.seed + args.count, args.channels)
    seed, timed = messages[: args.seed], messages[args.seed :]
    contenders = ["convostore statements", *(f"without {i}" for i in SECONDARY_INDEXES)]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(dir=common.RESULTS.parent) as tmp:
        for level in common.synchronous_levels(args.synchronous):
            runs: dict[str, list[tuple[float, float]]] = {}
            for run in range(args.runs):
                runs.setdefault("openai SQLiteSession", []).append(
                    await run_sdk(Path(tmp, f"sdk-{run}.db"), seed, timed, level)
                )
                for name in contenders:
                    drop = name.removeprefix("without ") if name.startswith("without") else ""
                    runs.setdefault(name, []).append(
                        run_raw(Path(tmp, f"raw-{run}.db"), seed, timed, level, drop)
                    )
            sdk_rate = statistics.median(rate for _, rate in runs["openai SQLiteSession"])
            for name, results in runs.items():
                rates = [rate for _, rate in results]
                rows.append(
                    {
                        "synchronous": level,
                        "contender": name,
                        "wal_pages_per_commit": statistics.median(f for f, _ in results),
                        "per_s": statistics.median(rates),
                        "runs_per_s": rates,
                        "ratio_to_sdk": statistics.median(rates) / sdk_rate,
                    }
                )
    headers = ["synchronous", "contender", "wal_pages_per_commit", "per_s", "ratio_to_sdk"]
    print(
        f"\nWAL pages per commit and appends/s, {args.count:,} timed appends over "
        f"{args.channels:,} conversations after {args.seed:,} untimed (median of {args.runs} runs;"
        " ratio_to_sdk: rate / the SDK's rate)"
    )
    print(common.table(headers, [[r[h] for h in headers] for r in rows]))
    common.write_results(
        "wal_pages",
        {"count": args.count, "seed": args.seed, "channels": args.channels, "rows": rows},
    )


if __name__ == "__main__":
    common.RESULTS.mkdir(parents=True, exist_ok=True)
    asyncio.run(main())
