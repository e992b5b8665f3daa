"""Erase time: ``BotStore.forget_user`` for a user with 10,000 messages in a 1M-message database.

The database holds ``--rows`` messages (default 1,000,000) of one bot over 1,000 channels, written
round-robin in time order by 100 users, so each user has ``rows / 100`` messages (10,000) spread
over every channel; the sessions' counts are exact. ``forget_user`` finds the user's rows (index
``idx_conversations_bot_user_time``), deletes them with their revisions and fixes the counts of the
1,000 sessions they were in, in one transaction. Baseline, same run, on a fresh copy: one raw
``DELETE FROM conversations WHERE bot_name = ? AND user_id = ?`` (no revisions, no session
counts, no DM channels), through the driver.

    .venv/bin/python benchmarks/bench_forget.py [--rows 1000000] [--backends sqlite,postgresql]
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import _common as common

BOT = "bench"
USERS = 100
CHANNELS = 1000
TARGET = str(1000 + 7)
BASE_TIME = datetime(2025, 1, 1, tzinfo=UTC)
CONTENT = "benchmark message with a typical length for a chat line, about eighty characters"


def _rows(start: int, stop: int) -> Iterator[tuple[object, ...]]:
    for i in range(start, stop):
        c = i % CHANNELS
        yield (
            BOT,
            str(900_000_000_000 + c),
            f"channel-{c}",
            "channel",
            str(1000 + i % USERS),
            f"user{i % USERS}",
            "s",
            str(10**15 + i),
            "user",
            CONTENT,
            (BASE_TIME + timedelta(seconds=i)).replace(tzinfo=None).isoformat(" ", "microseconds"),
        )


def sqlite_file(rows: int) -> Path:
    path = common.RESULTS / "cache" / f"forget_{rows}.db"
    if path.exists():
        return path
    building = path.with_name(path.stem + ".building.db")
    common.sqlite_database(building)
    started = time.perf_counter()
    conn = sqlite3.connect(building, isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("PRAGMA cache_size = -1000000")
        at = BASE_TIME.replace(tzinfo=None).isoformat(" ", "microseconds")
        per_channel = rows // CHANNELS
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO sessions (bot_name, channel_id, session_id, started_at, last_activity,"
            " message_count, is_active) VALUES (?, ?, 's', ?, ?, ?, 1)",
            [(BOT, str(900_000_000_000 + c), at, at, per_channel) for c in range(CHANNELS)],
        )
        sql = (
            "INSERT INTO conversations (bot_name, channel_id, channel_name, channel_type, user_id,"
            " username, session_id, message_id, role, content, timestamp)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
        for start in range(0, rows, 50_000):
            conn.executemany(sql, _rows(start, min(rows, start + 50_000)))
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    os.replace(building, path)
    common.remove_sqlite(building)
    print(f"  built {path.name}: {rows:,} rows in {time.perf_counter() - started:.0f} s")
    return path


def fill_postgres(plain_url: str, rows: int) -> None:
    import psycopg

    with psycopg.connect(plain_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO sessions (bot_name, channel_id, session_id, started_at, last_activity,"
            " message_count, is_active) SELECT %s, (900000000000 + c)::text, 's', %s, %s, %s, true"
            " FROM generate_series(0, %s) AS c",
            (BOT, BASE_TIME, BASE_TIME, rows // CHANNELS, CHANNELS - 1),
        )
        conn.execute(
            "INSERT INTO conversations (bot_name, channel_id, channel_name, channel_type,"
            " user_id, username, session_id, message_id, role, content, timestamp)"
            " SELECT %(bot)s, (900000000000 + i %% %(ch)s)::text, 'channel-' || (i %% %(ch)s),"
            " 'channel', (1000 + i %% %(users)s)::text, 'user' || (i %% %(users)s), 's',"
            " (1000000000000000 + i)::text, 'user', %(content)s,"
            " %(base)s::timestamptz + i * interval '1 second'"
            " FROM generate_series(0, %(stop)s::bigint) AS i",
            {
                "bot": BOT,
                "ch": CHANNELS,
                "users": USERS,
                "content": CONTENT,
                "base": BASE_TIME,
                "stop": rows - 1,
            },
        )
        conn.execute("VACUUM ANALYZE conversations")
        conn.execute("ANALYZE sessions")


async def erase(url: str) -> tuple[float, int]:
    from convostore import BotStore

    async with BotStore.open(common.bot_config(url, BOT)) as store:
        started = time.perf_counter()
        erased = await store.forget_user(TARGET)
        return time.perf_counter() - started, erased


def raw_delete_sqlite(path: Path) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        for pragma in common.SQLITE_PRAGMAS:
            conn.execute(pragma)
        started = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("DELETE FROM conversations WHERE bot_name = ? AND user_id = ?", (BOT, TARGET))
        conn.execute("COMMIT")
        return time.perf_counter() - started
    finally:
        conn.close()


def raw_delete_postgres(plain_url: str) -> float:
    import psycopg

    with psycopg.connect(plain_url) as conn:
        started = time.perf_counter()
        conn.execute(
            "DELETE FROM conversations WHERE bot_name = %s AND user_id = %s", (BOT, TARGET)
        )
        conn.commit()
        return time.perf_counter() - started


async def main() -> None:
    p = common.parser(__doc__ or "")
    p.add_argument("--rows", type=int, default=1_000_000)
    args = p.parse_args()
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(dir=common.RESULTS.parent) as tmp:
        for backend in common.backends(args):
            if backend == "sqlite":
                source = sqlite_file(args.rows)
                ours_path, raw_path = Path(tmp) / "ours.db", Path(tmp) / "raw.db"
                shutil.copyfile(source, ours_path)
                shutil.copyfile(source, raw_path)
                seconds, erased = await erase(f"sqlite+aiosqlite:///{ours_path}")
                raw = raw_delete_sqlite(raw_path)
                common.remove_sqlite(ours_path)
                common.remove_sqlite(raw_path)
            else:
                with common.postgres_database("forget") as (url, plain):
                    fill_postgres(plain, args.rows)
                    seconds, erased = await erase(url)
                with common.postgres_database("forget_raw") as (url, plain):
                    fill_postgres(plain, args.rows)
                    raw = raw_delete_postgres(plain)
            results.append(
                {
                    "backend": backend,
                    "rows": args.rows,
                    "user_messages": erased,
                    "forget_user_s": seconds,
                    "raw_delete_s": raw,
                    "ratio_vs_raw": seconds / raw,
                }
            )
    headers = list(results[0])
    print(f"\nforget_user: one user's {args.rows // USERS:,} messages in {args.rows:,}")
    print(common.table(headers, [[r[h] for h in headers] for r in results]))
    common.write_results("forget", {"rows": args.rows, "results": results})


if __name__ == "__main__":
    common.RESULTS.mkdir(parents=True, exist_ok=True)
    asyncio.run(main())
