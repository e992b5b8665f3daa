"""The import's staging file: a private SQLite file that phase 1 fills and phase 2 reads.

It holds every routed, converted row (:class:`convostore.legacy.rules.LegacyRow`, times as UTC
text, metadata as JSON text) and the names the tree gives, so memory stays bounded whatever the
size of the tree, and gives each bot's rows back per channel in time order.
"""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from convostore.legacy.rules import LegacyNames, channel_placeholder, user_placeholder

_SCHEMA = """
CREATE TABLE stage (
    bot TEXT NOT NULL, message_id TEXT NOT NULL, channel_id TEXT NOT NULL, user_id TEXT NOT NULL,
    role TEXT NOT NULL, content TEXT NOT NULL, ts TEXT NOT NULL, metadata TEXT,
    seq INTEGER NOT NULL
);
CREATE TABLE channel_names (channel_id TEXT PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE usernames (user_id TEXT PRIMARY KEY, name TEXT NOT NULL);
"""
_ROW = "INSERT INTO stage VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"

StagedRow = tuple[str, str, str, str, str, str | None]
"""``(user_id, message_id, role, content, ts, metadata)`` of one staged row of a channel."""


class Stage:
    """The staging file of one import, removed by :meth:`close`."""

    def __init__(self) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="convostore-import-")
        self._db = sqlite3.connect(Path(self._tmp.name) / "stage.db", isolation_level=None)
        self._db.executescript(
            "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA temp_store=FILE;"
            "PRAGMA cache_size=-16384;" + _SCHEMA
        )
        self._users: dict[str, str] = {}

    def close(self) -> None:
        self._db.close()
        self._tmp.cleanup()

    def add(self, rows: Sequence[tuple[Any, ...]], names: LegacyNames) -> None:
        """Stage one file's rows (the ``stage`` columns, ``seq`` last) and the names it gives.

        A name already staged stays: the first file that names a channel or user wins.
        """
        self._db.execute("BEGIN")
        self._db.executemany(_ROW, rows)
        self._db.executemany(
            "INSERT OR IGNORE INTO channel_names VALUES (?, ?)", names.channels.items()
        )
        self._db.executemany("INSERT OR IGNORE INTO usernames VALUES (?, ?)", names.users.items())
        self._db.execute("COMMIT")

    def index(self) -> None:
        """Once every file is staged: the index that gives rows back in time order."""
        # Rule 7 happens on the way out: each channel's rows come back in time order, so the first
        # copy of a message id is the earliest.
        self._db.execute("CREATE INDEX stage_order ON stage (bot, channel_id, ts, seq)")

    def bots(self) -> list[str]:
        return [row[0] for row in self._db.execute("SELECT DISTINCT bot FROM stage ORDER BY bot")]

    def count(self, bots: Sequence[str]) -> int:
        if not bots:
            return 0
        marks = ",".join("?" * len(bots))
        row = self._db.execute(f"SELECT count(*) FROM stage WHERE bot IN ({marks})", bots)
        return int(row.fetchone()[0])

    def rows(self, bot: str) -> Iterable[tuple[str, str, str, str, str, str, str | None]]:
        """``(channel_id, *StagedRow)`` of the bot, by channel, then time, then staging order."""
        return self._db.execute(
            "SELECT channel_id, user_id, message_id, role, content, ts, metadata FROM stage "
            "WHERE bot = ? ORDER BY channel_id, ts, seq",
            (bot,),
        )

    def channel_name(self, channel_id: str) -> str:
        row = self._db.execute(
            "SELECT name FROM channel_names WHERE channel_id = ?", (channel_id,)
        ).fetchone()
        return str(row[0]) if row else channel_placeholder(channel_id)

    def username(self, user_id: str) -> str:
        name = self._users.get(user_id)
        if name is None:
            row = self._db.execute(
                "SELECT name FROM usernames WHERE user_id = ?", (user_id,)
            ).fetchone()
            name = self._users[user_id] = str(row[0]) if row else user_placeholder(user_id)
        return name
