"""History: ``BotStore.history(channel, limit=100)`` latency at several database sizes.

Baseline, same run, same database file: the equivalent hand-written SQL (same columns, same
ORDER BY ... LIMIT) through raw aiosqlite, and through raw asyncpg on PostgreSQL. Every contender
reads the same random sequence of channels; p50/p99 over ``--queries`` reads, after one untimed
pass over the whole sequence, so every contender reads with the same (warm) page cache.
The table also prints SQLite's query plan, which must be one index range scan.

    .venv/bin/python benchmarks/bench_history.py [--sizes 10000,100000,1000000] [--queries 2000]
    .venv/bin/python benchmarks/bench_history.py --sizes 10000,100000,1000000,10000000
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import time
from pathlib import Path
from typing import Any

import _common as common
import _data as data

# Every column of a StoredMessage, as history() returns them (the Discord columns of revision 0003
# included: earlier versions of this script selected the first 13 only).
SQL = (
    "SELECT id, bot_name, channel_id, channel_name, channel_type, user_id, username, session_id,"
    " message_id, role, content, timestamp, metadata, parent_id, reply_to_message_id,"
    " attachments, edited_at, author_is_bot FROM conversations"
    " WHERE bot_name = {} AND channel_id = {} ORDER BY timestamp DESC, id DESC LIMIT {}"
)
WARMUP = 200


def sequence(rows: int, queries: int) -> list[str]:
    rng = random.Random(rows)
    n = data.channels(rows)
    return [data.channel_id(rng.randrange(n)) for _ in range(WARMUP + queries)]


async def run_convostore(url: str, channel_ids: list[str]) -> list[float]:
    from convostore import BotStore, ChannelInfo

    async with BotStore.open(common.bot_config(url, data.BOT)) as store:
        latencies = []
        for cid in channel_ids:
            channel = ChannelInfo.channel(channel_id=cid, name="c")
            start = time.perf_counter()
            rows = await store.history(channel, limit=100)
            latencies.append(time.perf_counter() - start)
            assert len(rows) == 100, len(rows)
    return latencies[WARMUP:]


async def run_aiosqlite(path: Path, channel_ids: list[str]) -> list[float]:
    import aiosqlite

    sql = SQL.format("?", "?", "?")
    async with aiosqlite.connect(path, isolation_level=None) as db:
        for pragma in common.SQLITE_PRAGMAS:
            await db.execute(pragma)
        latencies = []
        for cid in channel_ids:
            start = time.perf_counter()
            rows = list(await db.execute_fetchall(sql, (data.BOT, cid, 100)))
            rows.reverse()
            latencies.append(time.perf_counter() - start)
            assert len(rows) == 100
    return latencies[WARMUP:]


async def run_asyncpg(plain_url: str, channel_ids: list[str]) -> list[float]:
    import asyncpg

    sql = SQL.format("$1", "$2", "$3")
    conn = await asyncpg.connect(plain_url)
    try:
        latencies = []
        for cid in channel_ids:
            start = time.perf_counter()
            rows = await conn.fetch(sql, data.BOT, cid, 100)
            rows.reverse()
            latencies.append(time.perf_counter() - start)
            assert len(rows) == 100
    finally:
        await conn.close()
    return latencies[WARMUP:]


def sqlite_plan(path: Path) -> str:
    with sqlite3.connect(path) as conn:
        plan = conn.execute("EXPLAIN QUERY PLAN " + SQL.format("?", "?", "?"), ("b", "c", 100))
        return "; ".join(str(row[3]) for row in plan)


def sqlite_layout(path: Path, rows: int, channel_ids: list[str]) -> dict[str, float]:
    """What one read covers: rows per channel, and over how many rows of the table (by id) a
    channel's newest 100 are spread, the mean over the channels read."""
    with sqlite3.connect(path) as conn:
        per_channel, spread = [], []
        for cid in sorted(set(channel_ids))[:50]:
            count = conn.execute(
                "SELECT count(*) FROM conversations WHERE bot_name = ? AND channel_id = ?",
                (data.BOT, cid),
            ).fetchone()[0]
            ids = [
                r[0]
                for r in conn.execute(
                    "SELECT id FROM conversations WHERE bot_name = ? AND channel_id = ?"
                    " ORDER BY timestamp DESC, id DESC LIMIT 100",
                    (data.BOT, cid),
                )
            ]
            per_channel.append(count)
            spread.append(max(ids) - min(ids) + 1)
    return {
        "channels": data.channels(rows),
        "rows_per_channel": sum(per_channel) / len(per_channel),
        "newest_100_spread_over_rows": sum(spread) / len(spread),
    }


def postgres_plan(plain_url: str) -> str:
    import psycopg

    with psycopg.connect(plain_url) as conn:
        query = "EXPLAIN " + SQL.format("%s", "%s", "%s")
        plan = conn.execute(query, (data.BOT, data.channel_id(0), 100))  # type: ignore[arg-type]
        return " / ".join(str(row[0]).strip() for row in plan if "Scan" in str(row[0]))


def result(
    backend: str, rows: int, who: str, latencies: list[float], baseline: list[float]
) -> dict[str, Any]:
    ours = common.summary(latencies)
    raw = common.summary(baseline)
    return {
        "backend": backend,
        "rows": rows,
        "contender": who,
        "queries": len(latencies),
        **ours,
        # Speed relative to the raw driver: raw p50 / this p50 (1.0 = as fast as raw).
        "speed_vs_raw": raw["p50_ms"] / ours["p50_ms"],
    }


async def main() -> None:
    p = common.parser(__doc__ or "")
    p.add_argument("--sizes", default="10000,100000,1000000", help="rows in the database")
    p.add_argument("--queries", type=int, default=2000)
    p.add_argument(
        "--pg-max-rows",
        type=int,
        default=1_000_000,
        help="largest size also run on PostgreSQL (filling it takes minutes per 10M rows)",
    )
    p.add_argument("--results", default="history", help="name of the JSON file in results/")
    args = p.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    results: list[dict[str, Any]] = []
    plans: dict[str, str] = {}
    layouts: dict[str, dict[str, float]] = {}
    for rows in sizes:
        channel_ids = sequence(rows, args.queries)
        if "sqlite" in common.backends(args):
            path = data.sqlite_file(rows)
            plans[f"sqlite {rows}"] = sqlite_plan(path)
            layouts[f"sqlite {rows}"] = sqlite_layout(path, rows, channel_ids)
            await run_aiosqlite(path, channel_ids)  # warm pass: whoever runs first is not penalised
            raw = await run_aiosqlite(path, channel_ids)
            ours = await run_convostore(f"sqlite+aiosqlite:///{path}", channel_ids)
            results.append(result("sqlite", rows, "raw aiosqlite", raw, raw))
            results.append(result("sqlite", rows, "convostore", ours, raw))
        if "postgresql" in common.backends(args) and rows <= args.pg_max_rows:
            with common.postgres_database(f"history{rows}") as (url, plain):
                data.fill_postgres(plain, rows)
                plans[f"postgresql {rows}"] = postgres_plan(plain)
                await run_asyncpg(plain, channel_ids)  # warm pass
                raw = await run_asyncpg(plain, channel_ids)
                ours = await run_convostore(url, channel_ids)
            results.append(result("postgresql", rows, "raw asyncpg", raw, raw))
            results.append(result("postgresql", rows, "convostore", ours, raw))
        print(f"  done: {rows:,} rows", flush=True)
    # Growth: each contender's p50 at a size against its own p50 at the smallest size.
    smallest: dict[tuple[str, str], float] = {}
    for r in results:
        key = (r["backend"], r["contender"])
        smallest.setdefault(key, r["p50_ms"])
        r["p50_vs_smallest"] = r["p50_ms"] / smallest[key]
    headers = [
        "backend",
        "rows",
        "contender",
        "p50_ms",
        "p99_ms",
        "speed_vs_raw",
        "p50_vs_smallest",
    ]
    print(f"\nhistory(limit=100): {args.queries:,} reads of random channels per size")
    print(common.table(headers, [[r[h] for h in headers] for r in results]))
    print("\nquery plans:")
    for where, plan in plans.items():
        print(f"  {where}: {plan}")
    print("\nwhat a read covers (the same rows per channel at every size, interleaved in time):")
    for where, layout in layouts.items():
        print(
            f"  {where}: {layout['channels']:,} channels, {layout['rows_per_channel']:,.0f} rows"
            f" per channel, a channel's newest 100 spread over"
            f" {layout['newest_100_spread_over_rows']:,.0f} rows of the table"
        )
    common.write_results(
        args.results,
        {
            "queries": args.queries,
            "sizes": sizes,
            "rows": results,
            "plans": plans,
            "layouts": layouts,
        },
    )


if __name__ == "__main__":
    asyncio.run(main())
