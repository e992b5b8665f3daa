"""Large benchmark databases, built once with bulk inserts and cached under benchmarks/results/.

Rows are spread round-robin over ``channels(n)`` channels in time order, as live traffic would
write them, so one channel's newest 100 messages lie on 100 different table pages, not on one.
SQLite files are built with raw ``sqlite3.executemany`` into a copy of the migrated schema (its
indexes and triggers dropped for the insert and created again from their own definitions after it,
the search index rebuilt) and reused by later runs; PostgreSQL tables are filled server-side with
``generate_series``. Every row carries ``metadata`` and ``attachments`` as ``add_message`` stores
them for a message with neither (JSON's ``null`` and an empty list), so a history read decodes
what it would decode for a bot's own rows.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import _common as common

BOT = "bench"
BASE_TIME = datetime(2025, 1, 1, tzinfo=UTC)
CHUNK = 50_000
CONTENT = "benchmark message with a typical length for a chat line, about eighty characters"


def channels(rows: int) -> int:
    """About 1,000 messages per channel at every size, so limit=100 always finds 100 rows."""
    return max(10, rows // 1000)


def channel_id(index: int) -> str:
    return str(900_000_000_000 + index)


def _rows(start: int, stop: int, n_channels: int) -> Iterator[tuple[object, ...]]:
    for i in range(start, stop):
        c = i % n_channels
        at = BASE_TIME + timedelta(seconds=i)
        yield (
            BOT,
            channel_id(c),
            f"channel-{c}",
            "channel",
            str(1000 + i % 50),
            f"user{i % 50}",
            "s",
            str(10**15 + i),
            "user" if i % 2 == 0 else "assistant",
            CONTENT,
            at.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds"),
        )


def sqlite_file(rows: int) -> Path:
    """The cached SQLite file with ``rows`` messages of bot ``bench`` (built on first use)."""
    # "stored": rows with the JSON values add_message writes (files of earlier runs had SQL NULLs).
    path = common.SCHEMA_CACHE / f"history_stored_{rows}.db"
    if path.exists():
        return path
    building = path.with_name(path.stem + ".building.db")
    common.sqlite_database(building)
    n_channels = channels(rows)
    started = time.perf_counter()
    conn = sqlite3.connect(building, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("PRAGMA foreign_keys = OFF")
        conn.execute("PRAGMA cache_size = -4000000")
        at = BASE_TIME.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO sessions (bot_name, channel_id, session_id, started_at, last_activity,"
            " message_count, is_active) VALUES (?, ?, 's', ?, ?, 0, 1)",
            [(BOT, channel_id(c), at, at) for c in range(n_channels)],
        )
        conn.execute("COMMIT")
        # The table's indexes and triggers are dropped for the bulk insert and created again
        # after it from their own definitions, and the search index is rebuilt: one sort per
        # index instead of 10M inserts in random order (a 10M build: minutes, not half an hour).
        objects = conn.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE type IN ('index', 'trigger')"
            " AND tbl_name = 'conversations' AND sql IS NOT NULL"
        ).fetchall()
        for kind, name, _ in objects:
            conn.execute(f'DROP {kind.upper()} "{name}"')
        sql = (
            "INSERT INTO conversations (bot_name, channel_id, channel_name, channel_type, user_id,"
            " username, session_id, message_id, role, content, timestamp, metadata, attachments)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'null', '[]')"
        )
        for start in range(0, rows, CHUNK):
            conn.execute("BEGIN")
            conn.executemany(sql, _rows(start, min(rows, start + CHUNK), n_channels))
            conn.execute("COMMIT")
            if start and start % 1_000_000 == 0:
                print(f"  built {start:,} of {rows:,} rows", flush=True)
        for _, _, definition in objects:
            conn.execute(definition)
        if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'conversations_fts'").fetchone():
            conn.execute("INSERT INTO conversations_fts(conversations_fts) VALUES ('rebuild')")
        if conn.execute(
            "SELECT 1 FROM sqlite_master WHERE name = 'conversations_fts_state'"
        ).fetchone():
            # Every row is in the search index now: none is pending (revision 0006).
            conn.execute(
                "UPDATE conversations_fts_state"
                " SET indexed_through = (SELECT coalesce(max(id), 0) FROM conversations)"
            )
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    os.replace(building, path)
    common.remove_sqlite(building)
    print(f"  built {path.name}: {rows:,} rows in {time.perf_counter() - started:.0f} s")
    return path


def fill_postgres(plain_url: str, rows: int) -> None:
    """Fill an empty migrated PostgreSQL database with ``rows`` messages, server-side."""
    import psycopg

    n_channels = channels(rows)
    started = time.perf_counter()
    with psycopg.connect(plain_url, autocommit=True) as conn:
        count = conn.execute(
            "SELECT count(*) FROM conversations WHERE attachments IS NOT NULL"
        ).fetchone()
        if count and count[0] == rows:
            return
        conn.execute("TRUNCATE conversations, sessions CASCADE")
        conn.execute(
            "INSERT INTO sessions (bot_name, channel_id, session_id, started_at, last_activity,"
            " message_count, is_active) SELECT %s, (900000000000 + c)::text, 's', %s, %s, 0, true"
            " FROM generate_series(0, %s::int) AS c",
            (BOT, BASE_TIME, BASE_TIME, n_channels - 1),
        )
        for start in range(0, rows, 1_000_000):
            stop = min(rows, start + 1_000_000)
            conn.execute(
                "INSERT INTO conversations (bot_name, channel_id, channel_name, channel_type,"
                " user_id, username, session_id, message_id, role, content, timestamp, metadata,"
                " attachments)"
                " SELECT %(bot)s, (900000000000 + i %% %(ch)s)::text, 'channel-' || (i %% %(ch)s),"
                " 'channel', (1000 + i %% 50)::text, 'user' || (i %% 50), 's',"
                " (1000000000000000 + i)::text,"
                " CASE WHEN i %% 2 = 0 THEN 'user' ELSE 'assistant' END, %(content)s,"
                " %(base)s::timestamptz + i * interval '1 second', 'null'::json, '[]'::json"
                " FROM generate_series(%(start)s::bigint, %(stop)s::bigint) AS i",
                {
                    "bot": BOT,
                    "ch": n_channels,
                    "content": CONTENT,
                    "base": BASE_TIME,
                    "start": start,
                    "stop": stop - 1,
                },
            )
        conn.execute("VACUUM ANALYZE conversations")
        conn.execute("ANALYZE sessions")
    print(f"  filled PostgreSQL: {rows:,} rows in {time.perf_counter() - started:.0f} s")
