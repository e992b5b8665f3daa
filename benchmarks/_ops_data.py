"""A realistic 1M-message SQLite file for the operators' benchmarks (copy, web viewer).

Bot ``ops``: 500 channels (50 of them DMs), 20 sessions per channel of 100 messages each, 200
users; sessions carry their real counters and times, as the store writes them. Built once with
``sqlite3.executemany`` into a migrated copy of the schema and cached under
benchmarks/results/cache/.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import _common as common

BOT = "ops"
CHANNELS = 500
DMS = 50
SESSIONS_PER_CHANNEL = 20
PER_SESSION = 100
BASE = datetime(2026, 1, 1, tzinfo=UTC)


def _text(at: datetime) -> str:
    return at.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def channel_id(c: int) -> str:
    return str(800_000_000_000 + c)


def session_id(c: int, s: int) -> str:
    return f"2026-01-{1 + s:02d}_{c:04d}"


def _messages(c: int) -> Iterator[tuple[object, ...]]:
    dm = c < DMS
    name = f"user{c}_{900_000 + c}" if dm else f"channel-{c}"
    for s in range(SESSIONS_PER_CHANNEL):
        start = BASE + timedelta(days=s, seconds=c)
        for i in range(PER_SESSION):
            user = (c * 7 + i) % 200
            assistant = i % 2 == 1
            yield (
                BOT,
                channel_id(c),
                name,
                "dm" if dm else "channel",
                str(700_000 + user),
                "" if assistant else f"user{user}",
                session_id(c, s),
                str(10**15 + (c * SESSIONS_PER_CHANNEL + s) * PER_SESSION + i),
                "assistant" if assistant else "user",
                f"message {i} of session {s} in channel {c}, about as long as a chat line is",
                _text(start + timedelta(seconds=20 * i)),
            )


def messages(channels: int = CHANNELS) -> int:
    return channels * SESSIONS_PER_CHANNEL * PER_SESSION


def sqlite_file(channels: int = CHANNELS) -> Path:
    """The cached file (built on first use, about a minute for the default 500 channels).

    ``channels`` scales it down or up: 2,000 messages per channel (50 channels: 100,000).
    """
    name = "ops_1m.db" if channels == CHANNELS else f"ops_{messages(channels)}.db"
    path = common.SCHEMA_CACHE / name
    if path.exists():
        # A file built by an older checkout: bring it to this code's schema (in place, once).
        common.migrate(f"sqlite+aiosqlite:///{path}")
        return path
    building = path.with_name(f"{path.stem}.building.db")
    common.sqlite_database(building)
    started = time.perf_counter()
    conn = sqlite3.connect(building, isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("PRAGMA foreign_keys = OFF")
        conn.execute("BEGIN")
        sessions = []
        for c in range(channels):
            for s in range(SESSIONS_PER_CHANNEL):
                start = BASE + timedelta(days=s, seconds=c)
                last = start + timedelta(seconds=20 * (PER_SESSION - 1))
                active = s == SESSIONS_PER_CHANNEL - 1
                sessions.append(
                    (
                        BOT,
                        channel_id(c),
                        session_id(c, s),
                        _text(start),
                        _text(last),
                        PER_SESSION,
                        active,
                    )
                )
        conn.executemany(
            "INSERT INTO sessions (bot_name, channel_id, session_id, started_at, last_activity,"
            " message_count, is_active) VALUES (?, ?, ?, ?, ?, ?, ?)",
            sessions,
        )
        conn.execute("COMMIT")
        sql = (
            "INSERT INTO conversations (bot_name, channel_id, channel_name, channel_type, user_id,"
            " username, session_id, message_id, role, content, timestamp)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
        for c in range(channels):
            if c % 50 == 0:
                conn.execute("BEGIN")
            conn.executemany(sql, _messages(c))
            if c % 50 == 49 or c == channels - 1:
                conn.execute("COMMIT")
        conn.execute("ANALYZE")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    os.replace(building, path)
    common.remove_sqlite(building)
    rows = messages(channels)
    print(f"  built {path.name}: {rows:,} messages in {time.perf_counter() - started:.0f} s")
    return path
