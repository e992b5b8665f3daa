"""Rows for tests: messages through a store, raw SQLite rows, and plain SQL reads."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from convostore import BotStore, ChannelInfo
from tests.conftest import ConfigFactory

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
GENERAL = ChannelInfo.channel(100, "general")
DM = ChannelInfo.dm(200, 42, "alice")


async def add(
    store: BotStore,
    channel: ChannelInfo,
    minutes: float,
    content: str = "hello",
    *,
    role: str = "user",
    username: str = "alice",
    metadata: dict[str, Any] | None = None,
) -> None:
    await store.add_message(
        channel,
        user_id=42,
        username=username,
        role=role,
        content=content,
        timestamp=T0 + timedelta(minutes=minutes),
        metadata=metadata,
    )


async def fill(config_factory: ConfigFactory, bot: str = "sage") -> None:
    """Two channel sessions (a 2-hour silence splits them) and one DM session."""
    async with BotStore.open(config_factory(bot)) as store:
        for minute in (0, 1, 2):
            await add(store, GENERAL, minute, f"{bot} general {minute}")
        for minute in (180, 181):
            await add(store, GENERAL, minute, f"{bot} later {minute}")
        await add(store, DM, 5, f"{bot} dm hello")
        await add(store, DM, 6, f"{bot} dm reply", role="assistant", username="")


def add_rows(path: Path, bot: str, count: int, start: int = 0) -> None:
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            "INSERT OR IGNORE INTO sessions (bot_name, channel_id, session_id, started_at,"
            " last_activity, message_count, is_active) VALUES (?, 'c1', 's1',"
            " '2026-11-24 10:00:00.000000', '2026-11-24 10:00:00.000000', 0, 1)",
            (bot,),
        )
        conn.executemany(
            "INSERT INTO conversations (bot_name, channel_id, channel_name, channel_type, user_id,"
            " username, session_id, message_id, role, content, timestamp) VALUES"
            " (?, 'c1', 'general', 'channel', 'u1', 'alice', 's1', ?, 'user', 'hi',"
            " '2026-11-24 10:00:00.000000')",
            [(bot, f"m{start + i}") for i in range(count)],
        )
        conn.execute("COMMIT")
    finally:
        conn.close()


def count(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("SELECT count(*) FROM conversations").fetchone()[0])
    finally:
        conn.close()


def sync_url(url: str) -> str:
    parsed = make_url(url)
    driver = "sqlite" if parsed.get_backend_name() == "sqlite" else "postgresql+psycopg"
    return parsed.set(drivername=driver).render_as_string(hide_password=False)


def plain_url(url: str) -> str:
    """A PostgreSQL test URL as libpq takes it (for psycopg.connect)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def query(url: str, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    engine = create_engine(sync_url(url))
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(sql), params)]
    finally:
        engine.dispose()
