"""Append: N ``BotStore.add_message`` calls, one after another, against a raw-driver baseline.

Baseline, same run, same schema and pragmas, doing the same work per message: raw aiosqlite (and
raw asyncpg on PostgreSQL) runs ``BEGIN IMMEDIATE``, the ``UPDATE`` of the channel's open session
when the message fits it (gap and timeout in the ``WHERE``, as convostore's), else closing it and
inserting a new session, then ``INSERT … ON CONFLICT (bot_name, message_id) DO NOTHING RETURNING
id`` and ``COMMIT``. Every contender opens its connections before the timer (one untimed write each)
and stores the same messages. SQLite runs once per ``--synchronous`` level, both sides at that
level.

    .venv/bin/python benchmarks/bench_append.py [--count 20000] [--channels 50]
        [--synchronous normal,full] [--backends sqlite,postgresql]
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
GAP = 300  # convostore's default session_gap and session_timeout
TIMEOUT = 3600
INSERT = (
    "INSERT INTO conversations (bot_name, channel_id, channel_name, channel_type, user_id, "
    "username, session_id, message_id, role, content, timestamp, metadata) "
    "VALUES ({}) ON CONFLICT (bot_name, message_id) DO NOTHING RETURNING id"
)
EXTEND = (
    "UPDATE sessions SET message_count = message_count + 1,"
    " last_activity = CASE WHEN last_activity < {at} THEN {at} ELSE last_activity END"
    " WHERE bot_name = {bot} AND channel_id = {channel} AND is_active AND started_at <= {at}"
    " AND started_at >= {start} AND last_activity >= {last} RETURNING session_id"
)
CLOSE = "UPDATE sessions SET is_active = {false} WHERE bot_name = {bot} AND channel_id = {channel}"
START = (
    "INSERT INTO sessions (bot_name, channel_id, session_id, started_at, last_activity,"
    " message_count, is_active) VALUES ({}, {}, {}, {}, {}, 1, {})"
)


def workload(count: int, channels: int, step: float | None = None) -> list[dict[str, Any]]:
    """The messages every contender stores: round-robin over channels, ``step`` seconds apart.

    The default step lets a channel's next message come within the session gap (sessions
    continue, and roll over at the timeout, as in real traffic).
    """
    step = min(1.0, GAP * 0.8 / channels) if step is None else step
    return [
        {
            "channel": i % channels,
            "user_id": 1000 + i % 37,
            "username": f"user{i % 37}",
            "role": "user" if i % 2 == 0 else "assistant",
            "content": f"message {i}: " + "lorem ipsum dolor sit amet " * 7,
            "message_id": 10**15 + i,
            "timestamp": BASE_TIME + timedelta(seconds=i * step),
        }
        for i in range(count)
    ]


WARMUP_MESSAGE = {
    "channel": 10**6,
    "user_id": 1,
    "username": "warm",
    "role": "user",
    "content": "opens the connections before the timer",
    "message_id": 1,
    "timestamp": BASE_TIME - timedelta(days=1),
}


async def run_convostore(
    url: str, messages: list[dict[str, Any]], synchronous: str = "normal"
) -> common.Timer:
    from convostore import BotStore, ChannelInfo

    channels = {
        m["channel"]: ChannelInfo.channel(channel_id=m["channel"] + 1, name="c")
        for m in [WARMUP_MESSAGE, *messages]
    }

    async def add(store: BotStore, m: dict[str, Any]) -> None:
        await store.add_message(
            channels[m["channel"]],
            user_id=m["user_id"],
            username=m["username"],
            role=m["role"],
            content=m["content"],
            message_id=m["message_id"],
            timestamp=m["timestamp"],
        )

    async with BotStore.open(common.bot_config(url, synchronous=synchronous)) as store:
        await add(store, WARMUP_MESSAGE)  # untimed: opens the worker's connection
        timer = common.Timer()
        for m in messages:
            start = time.perf_counter()
            await add(store, m)
            timer.latencies.append(time.perf_counter() - start)
        timer.stop()
    return timer


def _sqlite_time(at: datetime) -> str:
    return at.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def extend_values(at: datetime, channel: str) -> tuple[str, ...]:
    """The values of the raw ``EXTEND`` statement (``?1``…``?5``) for a message at ``at``."""
    return (
        _sqlite_time(at),
        "raw",
        channel,
        _sqlite_time(at - timedelta(seconds=TIMEOUT)),
        _sqlite_time(at - timedelta(seconds=GAP)),
    )


# The raw baseline's statements with ``?`` parameters (also run by bench_inprocess and
# bench_wal_pages with plain sqlite3).
RAW_EXTEND = EXTEND.format(at="?1", bot="?2", channel="?3", start="?4", last="?5")
RAW_CLOSE = CLOSE.format(false="0", bot="?", channel="?") + " AND is_active"
RAW_START = START.format(*("?" * 5), "1")
RAW_INSERT = INSERT.format(", ".join("?" * 12))


def insert_values(m: dict[str, Any], channel: str, session: str, at: Any) -> tuple[Any, ...]:
    """The values of the raw insert for message ``m`` of the workload, its time given as ``at``
    (SQLite: its text, ``_sqlite_time``; asyncpg: the datetime)."""
    return (
        "raw",
        channel,
        "c",
        "channel",
        str(m["user_id"]),
        m["username"],
        session,
        str(m["message_id"]),
        m["role"],
        m["content"],
        at,
        None,
    )


async def run_aiosqlite(
    path: Path, messages: list[dict[str, Any]], synchronous: str = "normal"
) -> common.Timer:
    import aiosqlite

    async def store(db: aiosqlite.Connection, m: dict[str, Any]) -> None:
        at = m["timestamp"]
        channel = str(m["channel"] + 1)
        await db.execute("BEGIN IMMEDIATE")
        cursor = await db.execute(RAW_EXTEND, extend_values(at, channel))
        found = await cursor.fetchone()
        if found is None:
            session = f"s-{m['message_id']}"
            await db.execute(RAW_CLOSE, ("raw", channel))
            await db.execute(
                RAW_START, ("raw", channel, session, _sqlite_time(at), _sqlite_time(at))
            )
        else:
            session = found[0]
        cursor = await db.execute(RAW_INSERT, insert_values(m, channel, session, _sqlite_time(at)))
        await cursor.fetchone()
        await db.execute("COMMIT")

    async with aiosqlite.connect(path, isolation_level=None) as db:
        for pragma in common.sqlite_pragmas(synchronous):
            await db.execute(pragma)
        await store(db, WARMUP_MESSAGE)
        timer = common.Timer()
        for m in messages:
            started = time.perf_counter()
            await store(db, m)
            timer.latencies.append(time.perf_counter() - started)
        timer.stop()
    return timer


async def run_asyncpg(plain_url: str, messages: list[dict[str, Any]]) -> common.Timer:
    import asyncpg

    extend = EXTEND.format(at="$1", bot="$2", channel="$3", start="$4", last="$5")
    close = CLOSE.format(false="false", bot="$1", channel="$2") + " AND is_active"
    start_sql = START.format("$1", "$2", "$3", "$4", "$4", "true")
    insert = INSERT.format(", ".join(f"${i}" for i in range(1, 13)))

    async def store(conn: Any, m: dict[str, Any]) -> None:
        at = m["timestamp"]
        channel = str(m["channel"] + 1)
        async with conn.transaction():
            session = await conn.fetchval(
                extend,
                at,
                "raw",
                channel,
                at - timedelta(seconds=TIMEOUT),
                at - timedelta(seconds=GAP),
            )
            if session is None:
                session = f"s-{m['message_id']}"
                await conn.execute(close, "raw", channel)
                await conn.execute(start_sql, "raw", channel, session, at)
            await conn.fetchval(insert, *insert_values(m, channel, session, at))

    conn = await asyncpg.connect(plain_url)
    try:
        await store(conn, WARMUP_MESSAGE)
        timer = common.Timer()
        for m in messages:
            started = time.perf_counter()
            await store(conn, m)
            timer.latencies.append(time.perf_counter() - started)
        timer.stop()
    finally:
        await conn.close()
    return timer


def row(
    backend: str, synchronous: str, who: str, timer: common.Timer, baseline: common.Timer
) -> dict[str, Any]:
    return {
        "backend": backend,
        "synchronous": synchronous,
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
    p.add_argument("--synchronous", default="normal,full", help="SQLite levels to run, both sides")
    args = p.parse_args()
    messages = workload(args.count, args.channels)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(dir=common.RESULTS) as tmp:
        for backend in common.backends(args):
            if backend == "sqlite":
                for level in common.synchronous_levels(args.synchronous):
                    raw_path = Path(tmp) / f"raw-{level}.db"
                    common.sqlite_database(raw_path)
                    ours_url = common.sqlite_database(Path(tmp) / f"ours-{level}.db")
                    raw = await run_aiosqlite(raw_path, messages, level)
                    ours = await run_convostore(ours_url, messages, level)
                    rows += [
                        row(backend, level, "raw aiosqlite", raw, raw),
                        row(backend, level, "convostore", ours, raw),
                    ]
            else:
                with common.postgres_database("append") as (url, plain):
                    raw = await run_asyncpg(plain, messages)
                    ours = await run_convostore(url, messages)
                rows += [
                    row(backend, "server", "raw asyncpg", raw, raw),
                    row(backend, "server", "convostore", ours, raw),
                ]
    headers = [
        "backend",
        "synchronous",
        "contender",
        "messages",
        "per_s",
        "p50_ms",
        "p99_ms",
        "ratio_vs_raw",
    ]
    print(
        f"\nappend: {args.count:,} messages over {args.channels} channels, one transaction each"
        " (raw does the same session update and idempotent insert)"
    )
    print(common.table(headers, [[r[h] for h in headers] for r in rows]))
    common.write_results("append", {"count": args.count, "channels": args.channels, "rows": rows})


if __name__ == "__main__":
    common.RESULTS.mkdir(parents=True, exist_ok=True)
    asyncio.run(main())
