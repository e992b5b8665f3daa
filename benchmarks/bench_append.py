"""Append: N ``BotStore.add_message`` calls, one transaction each, against a raw-driver baseline.

Baseline, same run, same schema and pragmas: one ``INSERT`` per transaction through raw aiosqlite
(``BEGIN IMMEDIATE`` / ``INSERT`` / ``COMMIT``) and, on PostgreSQL, through raw asyncpg. The raw
baseline does no idempotency check and no session bookkeeping; convostore does both, so the ratio
is the price of those plus SQLAlchemy.

    .venv/bin/python benchmarks/bench_append.py [--count 20000] [--backends sqlite,postgresql]
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import _common as common

BASE_TIME = datetime(2026, 1, 1, tzinfo=UTC)
INSERT = (
    "INSERT INTO conversations (bot_name, channel_id, channel_name, channel_type, user_id, "
    "username, session_id, message_id, role, content, timestamp, metadata) "
    "VALUES ({})"
)
SESSION = (
    "INSERT INTO sessions (bot_name, channel_id, session_id, started_at, last_activity, "
    "message_count, is_active) VALUES ({})"
)


def workload(count: int, channels: int) -> list[dict[str, Any]]:
    """The messages every contender stores: round-robin over channels, one second apart."""
    return [
        {
            "channel": i % channels,
            "user_id": 1000 + i % 37,
            "username": f"user{i % 37}",
            "role": "user" if i % 2 == 0 else "assistant",
            "content": f"message {i}: " + "lorem ipsum dolor sit amet " * 4,
            "message_id": 10**15 + i,
            "timestamp": BASE_TIME + timedelta(seconds=i),
        }
        for i in range(count)
    ]


async def run_convostore(url: str, messages: list[dict[str, Any]]) -> common.Timer:
    from convostore import BotStore, ChannelInfo

    channels = {
        m["channel"]: ChannelInfo.channel(channel_id=m["channel"] + 1, name="c") for m in messages
    }
    async with BotStore.open(common.bot_config(url)) as store:
        timer = common.Timer()
        for m in messages:
            start = time.perf_counter()
            await store.add_message(
                channels[m["channel"]],
                user_id=m["user_id"],
                username=m["username"],
                role=m["role"],
                content=m["content"],
                message_id=m["message_id"],
                timestamp=m["timestamp"],
            )
            timer.latencies.append(time.perf_counter() - start)
        timer.stop()
    return timer


async def run_aiosqlite(path: Path, messages: list[dict[str, Any]]) -> common.Timer:
    import aiosqlite

    async with aiosqlite.connect(path, isolation_level=None) as db:
        for pragma in common.SQLITE_PRAGMAS:
            await db.execute(pragma)
        for channel in sorted({m["channel"] for m in messages}):
            await db.execute(
                SESSION.format(", ".join("?" * 7)),
                ("raw", str(channel + 1), "s", BASE_TIME.isoformat(), BASE_TIME.isoformat(), 0, 1),
            )
        sql = INSERT.format(", ".join("?" * 12))
        timer = common.Timer()
        for m in messages:
            start = time.perf_counter()
            await db.execute("BEGIN IMMEDIATE")
            await db.execute(
                sql,
                (
                    "raw",
                    str(m["channel"] + 1),
                    "c",
                    "channel",
                    str(m["user_id"]),
                    m["username"],
                    "s",
                    str(m["message_id"]),
                    m["role"],
                    m["content"],
                    m["timestamp"].replace(tzinfo=None).isoformat(sep=" "),
                    None,
                ),
            )
            await db.execute("COMMIT")
            timer.latencies.append(time.perf_counter() - start)
        timer.stop()
    return timer


async def run_asyncpg(plain_url: str, messages: list[dict[str, Any]]) -> common.Timer:
    import asyncpg

    conn = await asyncpg.connect(plain_url)
    try:
        for channel in sorted({m["channel"] for m in messages}):
            await conn.execute(
                SESSION.format(", ".join(f"${i}" for i in range(1, 8))),
                "raw",
                str(channel + 1),
                "s",
                BASE_TIME,
                BASE_TIME,
                0,
                True,
            )
        sql = INSERT.format(", ".join(f"${i}" for i in range(1, 13)))
        timer = common.Timer()
        for m in messages:
            start = time.perf_counter()
            async with conn.transaction():
                await conn.execute(
                    sql,
                    "raw",
                    str(m["channel"] + 1),
                    "c",
                    "channel",
                    str(m["user_id"]),
                    m["username"],
                    "s",
                    str(m["message_id"]),
                    m["role"],
                    m["content"],
                    m["timestamp"],
                    None,
                )
            timer.latencies.append(time.perf_counter() - start)
        timer.stop()
    finally:
        await conn.close()
    return timer


def row(backend: str, who: str, timer: common.Timer, baseline: common.Timer) -> dict[str, Any]:
    return {
        "backend": backend,
        "contender": who,
        "messages": len(timer.latencies),
        "per_s": timer.rate,
        **common.summary(timer.latencies),
        "ratio_vs_raw": timer.rate / baseline.rate,
    }


async def main() -> None:
    p = common.parser(__doc__ or "")
    p.add_argument("--count", type=int, default=20_000, help="messages per contender")
    p.add_argument("--channels", type=int, default=50)
    args = p.parse_args()
    messages = workload(args.count, args.channels)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(dir=common.RESULTS.parent) as tmp:
        for backend in common.backends(args):
            if backend == "sqlite":
                raw_path = Path(tmp) / "raw.db"
                common.sqlite_database(raw_path)
                ours_url = common.sqlite_database(Path(tmp) / "ours.db")
                raw = await run_aiosqlite(raw_path, messages)
                ours = await run_convostore(ours_url, messages)
                rows += [
                    row(backend, "raw aiosqlite", raw, raw),
                    row(backend, "convostore", ours, raw),
                ]
            else:
                with common.postgres_database("append") as (url, plain):
                    raw = await run_asyncpg(plain, messages)
                    ours = await run_convostore(url, messages)
                rows += [
                    row(backend, "raw asyncpg", raw, raw),
                    row(backend, "convostore", ours, raw),
                ]
    headers = ["backend", "contender", "messages", "per_s", "p50_ms", "p99_ms", "ratio_vs_raw"]
    print(f"\nappend: {args.count:,} messages over {args.channels} channels, one transaction each")
    print(common.table(headers, [[r[h] for h in headers] for r in rows]))
    common.write_results("append", {"count": args.count, "channels": args.channels, "rows": rows})


if __name__ == "__main__":
    common.RESULTS.mkdir(parents=True, exist_ok=True)
    asyncio.run(main())
