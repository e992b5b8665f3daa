"""The import's staging files: private SQLite files that phase 1 fills and phase 2 reads.

They hold every routed, converted row (:class:`convostore.legacy.rules.LegacyRow`, times as UTC
text, metadata as JSON text) and the names the tree gives, so memory stays bounded whatever the
size of the tree, and give each bot's rows back per channel in time order.

A tree read in this process is staged in one file. When worker processes read it
(:mod:`convostore.legacy.workers`), each stages its rows in a part of its own
(:class:`StagePart`, indexed by the worker) while the names stay in the main file, which the
import's process fills in the tree's order (the first file that names a channel or user wins);
the parts' rows are merged back in order as they are read.
"""

from __future__ import annotations

import heapq
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from operator import itemgetter
from pathlib import Path
from typing import Any

from convostore.legacy.rules import LegacyNames, channel_placeholder, user_placeholder

_ROWS_TABLE = """
CREATE TABLE stage (
    bot TEXT NOT NULL, message_id TEXT NOT NULL, channel_id TEXT NOT NULL, user_id TEXT NOT NULL,
    role TEXT NOT NULL, content TEXT NOT NULL, ts TEXT NOT NULL, metadata TEXT,
    seq INTEGER NOT NULL
);
"""
_NAMES_TABLES = """
CREATE TABLE channel_names (channel_id TEXT PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE usernames (user_id TEXT PRIMARY KEY, name TEXT NOT NULL);
"""
_PRAGMAS = "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA temp_store=FILE;"
_ROW = "INSERT INTO stage VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
# Rule 7 happens on the way out: each channel's rows come back in time order, so the first copy
# of a message id is the earliest.
_ORDER_INDEX = "CREATE INDEX stage_order ON stage (bot, channel_id, ts, seq)"
_COLUMNS = "channel_id, user_id, message_id, role, content, ts, metadata"
_ROWS_OF_BOT = f"SELECT {_COLUMNS}{{seq}} FROM {{table}} WHERE bot = ? ORDER BY channel_id, ts, seq"
_ORDER_KEY = itemgetter(0, 5, 7)

StagedRow = tuple[str, str, str, str, str, str | None]
"""``(user_id, message_id, role, content, ts, metadata)`` of one staged row of a channel."""


def _connect(path: Path, cache_kib: int, schema: str) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None)
    db.executescript(f"{_PRAGMAS} PRAGMA cache_size=-{cache_kib};{schema}")
    return db


class StagePart:
    """The rows one worker process stages: a file of the main stage's folder, indexed by
    :meth:`finish` before the import's process reads it."""

    def __init__(self, path: Path) -> None:
        self._db = _connect(path, 4_096, _ROWS_TABLE)

    def add(self, rows: Sequence[tuple[Any, ...]]) -> None:
        self._db.execute("BEGIN")
        self._db.executemany(_ROW, rows)
        self._db.execute("COMMIT")

    def finish(self) -> None:
        self._db.execute(_ORDER_INDEX)
        self._db.close()


class Stage:
    """The staging file of one import, removed by :meth:`close`."""

    def __init__(self) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="convostore-import-")
        self._db = _connect(Path(self._tmp.name) / "stage.db", 16_384, _ROWS_TABLE + _NAMES_TABLES)
        # The tables holding rows: this file's, then each worker's part (attached).
        self._tables = ["main.stage"]
        self._users: dict[str, str] = {}

    def close(self) -> None:
        self._db.close()
        self._tmp.cleanup()

    def part_path(self, number: int) -> Path:
        """Where worker ``number`` stages its rows (a :class:`StagePart`)."""
        return Path(self._tmp.name) / f"part-{number}.db"

    def add_parts(self, paths: Iterable[Path]) -> None:
        """Read the rows of these finished parts too."""
        for path in paths:
            name = f"part{len(self._tables) - 1}"
            self._db.execute(f"ATTACH DATABASE ? AS {name}", (str(path),))
            self._db.execute(f"PRAGMA {name}.cache_size=-4096")
            self._tables.append(f"{name}.stage")

    def first_copies(self, bot: str) -> dict[str, tuple[str, str]]:
        """Rule 7 across channels: each message id the bot has in more than one channel, with
        the ``(channel_id, ts)`` of its earliest copy (the first staged among equal times).

        Within a channel the rows come back in time order and the first copy wins on the way;
        this is for the rare id found in several channels (hand-edited files), which the
        database would otherwise keep in whichever channel is written first.
        """
        rows = " UNION ALL ".join(
            f"SELECT message_id, channel_id, ts, seq FROM {table} WHERE bot = :bot"
            for table in self._tables
        )
        found: dict[str, tuple[str, str, int]] = {}
        for message_id, channel_id, ts, seq in self._db.execute(
            f"WITH copies AS ({rows}) SELECT * FROM copies WHERE message_id IN (SELECT message_id"
            " FROM copies GROUP BY message_id HAVING min(channel_id) <> max(channel_id))",
            {"bot": bot},
        ):
            known = found.get(message_id)
            if known is None or (ts, seq) < known[1:]:
                found[message_id] = (channel_id, ts, seq)
        return {message_id: first[:2] for message_id, first in found.items()}

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
        self._db.execute(_ORDER_INDEX)

    def bots(self) -> list[str]:
        found: set[str] = set()
        for table in self._tables:
            found.update(row[0] for row in self._db.execute(f"SELECT DISTINCT bot FROM {table}"))
        return sorted(found)

    def count(self, bots: Sequence[str]) -> int:
        if not bots:
            return 0
        marks = ",".join("?" * len(bots))
        return sum(
            self._db.execute(
                f"SELECT count(*) FROM {table} WHERE bot IN ({marks})", bots
            ).fetchone()[0]
            for table in self._tables
        )

    def rows(self, bot: str) -> Iterator[tuple[str, str, str, str, str, str, str | None]]:
        """``(channel_id, *StagedRow)`` of the bot, by channel, then time, then staging order."""
        if len(self._tables) == 1:
            return iter(self._db.execute(_ROWS_OF_BOT.format(seq="", table="stage"), (bot,)))
        parts = [
            self._db.execute(_ROWS_OF_BOT.format(seq=", seq", table=table), (bot,))
            for table in self._tables
        ]
        return (row[:7] for row in heapq.merge(*parts, key=_ORDER_KEY))

    def message_ids(self, bot: str, channel_id: str) -> Iterator[str]:
        """The message id of each staged row of one channel of the bot."""
        for table in self._tables:
            query = f"SELECT message_id FROM {table} WHERE bot = ? AND channel_id = ?"
            yield from (row[0] for row in self._db.execute(query, (bot, channel_id)))

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
