"""Backfill: ``BotStore.add_messages`` against one ``add_message`` per message, same run.

A bot that joins a channel backfills its history: ``channel.history()`` yields newest first, older
than the few messages the channel already holds. The backfill stores ``--count`` messages (default
100,000) in one ``add_messages`` call (one transaction per 5,000) into a channel that already holds
100 newer live messages, in the order ``history()`` yields them. The baseline stores a sample of
the same messages (``--sample``, default 5,000) with one ``add_message`` call each, in time order
(the cheapest order for it), into a fresh database. Both rates are messages per second; the ratio
is backfill / baseline.

Batch writes against the OpenAI Agents SDK ``SQLiteSession`` (``--peers``, needs the ``bench``
extra; skipped with a message if the SDK is not installed): the same ``--peer-count`` messages
(default 100,000) in ``--peer-conversations`` conversations (default 1,000, so 100 messages per
call, a page of ``channel.history()``), one ``add_messages(channel, list)`` per conversation
against one ``add_items(list)`` per conversation (one session per conversation), each on its own
empty SQLite file, both at the same ``PRAGMA synchronous`` (``--synchronous normal,full``: once
per level). Every object and connection is made before the timer (an untimed batch first), and the
items the SDK stores (``{"role", "content"}``) are built before it too. The ratio is convostore's
messages per second / the SDK's.

The floor (``floor_per_s``, both workloads): the rows the store wrote in that run (its sessions,
then its messages in the order it inserted them), read back and inserted again by the bare driver
into a fresh database at the head revision, as many messages per transaction as the store's
transactions held (5,000 in the backfill; one conversation, 100, in the batch workload), with the
store's pragmas (SQLite: WAL, the same ``synchronous``, foreign keys on; PostgreSQL: asyncpg
``COPY``, the fastest way in). It is the database's own share of the work: no checks, no session
arithmetic, no records, no search index on SQLite. No store with this schema can write these
rows faster; ``needed_per_s`` is the rate the target would take (20 times ``single_per_s``; the
SDK's rate for the batch workload). ``clustered_floor_per_s``: the same floor on SQLite into
another schema, the one a store could move to: the messages in a ``WITHOUT ROWID`` table keyed by
(channel, bot, time, id), which makes the covering history index and the channel-time index
unneeded, with a unique index on ``id`` (what the search index, revisions and cursors refer to)
and the other indexes as they are.

    .venv/bin/python benchmarks/bench_backfill.py [--count 100000] [--sample 5000]
        [--backends sqlite,postgresql] [--peers] [--peer-count 100000]
        [--peer-conversations 1000] [--synchronous normal,full]
"""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import _common as common

BASE_TIME = datetime(2025, 1, 1, tzinfo=UTC)


def workload(count: int) -> list[dict[str, Any]]:
    """Messages 20 s apart (sessions cut by the timeout and by nightly gaps), oldest first."""
    return [
        {
            "user_id": 1000 + i % 37,
            "username": f"user{i % 37}",
            "role": "user" if i % 3 else "assistant",
            "content": f"message {i}: " + "lorem ipsum dolor sit amet " * 4,
            "message_id": 10**15 + i,
            "timestamp": BASE_TIME + timedelta(seconds=20 * i + (i // 500) * 7200),
            "author_is_bot": i % 3 == 0,
        }
        for i in range(count)
    ]


async def backfill(url: str, messages: list[dict[str, Any]]) -> tuple[float, int]:
    from convostore import BotStore, ChannelInfo

    channel = ChannelInfo.channel(1, "general")
    end = messages[-1]["timestamp"]
    async with BotStore.open(common.bot_config(url)) as store:
        for i in range(100):  # the channel's live messages, newer than the whole backfill
            await store.add_message(
                channel,
                user_id=1,
                username="live",
                role="user",
                content="live",
                message_id=10**16 + i,
                timestamp=end + timedelta(days=1, seconds=i),
            )
        newest_first = messages[::-1]
        started = time.perf_counter()
        stored = await store.add_messages(channel, newest_first)
        elapsed = time.perf_counter() - started
        assert len(stored) == len(messages)
        sessions = await store.sessions(channel)
        assert sum(s.message_count for s in sessions) == len(messages) + 100
        return elapsed, len(sessions)


async def one_by_one(url: str, messages: list[dict[str, Any]]) -> float:
    from convostore import BotStore, ChannelInfo

    channel = ChannelInfo.channel(1, "general")
    async with BotStore.open(common.bot_config(url)) as store:
        started = time.perf_counter()
        for message in messages:
            await store.add_message(channel, **message)
        return time.perf_counter() - started


def _groups(messages: list[tuple[Any, ...]], per_transaction: int | None) -> list[list[Any]]:
    """The messages cut as the store's transactions held them: ``per_transaction`` rows each, or
    (``None``) one channel each; a message row's second value is its channel."""
    if per_transaction is not None:
        return [messages[i : i + per_transaction] for i in range(0, len(messages), per_transaction)]
    by_channel: dict[str, list[Any]] = {}
    for row in messages:
        by_channel.setdefault(row[1], []).append(row)
    return list(by_channel.values())


def _session_groups(
    sessions: list[tuple[Any, ...]], groups: list[list[Any]]
) -> list[list[tuple[Any, ...]]]:
    """For each group of messages, the sessions it needs that no earlier group wrote (a session
    row's second value is its channel, as a message row's)."""
    pending: dict[str, list[tuple[Any, ...]]] = {}
    for row in sessions:
        pending.setdefault(row[1], []).append(row)
    return [
        [s for channel in dict.fromkeys(r[1] for r in group) for s in pending.pop(channel, [])]
        for group in groups
    ]


# The floor's other SQLite schema (``clustered``): the messages in a ``WITHOUT ROWID`` table keyed
# by channel and time, as a history read wants them, so neither the covering index nor the
# channel-time index is needed; ``id`` stays unique (its own index: the search index, revisions
# and cursors refer to it) and the other indexes stay.
_CLUSTERED = (
    "DROP TABLE conversations",
    "{table} PRIMARY KEY (channel_id, bot_name, timestamp, id)) WITHOUT ROWID",
    "CREATE UNIQUE INDEX uq_conversations_id ON conversations (id)",
    "CREATE INDEX idx_conversations_session ON conversations (session_id)",
    "CREATE INDEX idx_conversations_bot_user_time"
    " ON conversations (bot_name, user_id, timestamp, id)",
)


def _cluster(db: sqlite3.Connection) -> None:
    """Rebuild the empty ``conversations`` table of ``db`` as ``_CLUSTERED`` says."""
    (table,) = db.execute("SELECT sql FROM sqlite_master WHERE name = 'conversations'").fetchone()
    table = table.replace("PRIMARY KEY AUTOINCREMENT", "").rstrip().removesuffix(")") + ", "
    db.execute("PRAGMA foreign_keys = OFF")
    for statement in _CLUSTERED:
        db.execute(statement.format(table=table))


def sqlite_floor(
    source: Path,
    target: Path,
    per_transaction: int | None,
    synchronous: str,
    *,
    clustered: bool = False,
) -> tuple[float, int]:
    """The rows the store wrote to ``source``, inserted again by plain ``sqlite3`` into a fresh
    database at ``target`` (see the module's docstring): (seconds, messages). ``clustered``: into
    the other schema of ``_CLUSTERED``, ids given (a ``WITHOUT ROWID`` table has no rowid)."""
    common.sqlite_database(target)
    src = sqlite3.connect(source)
    tables = {}
    for table in ("sessions", "conversations"):
        columns = [r[1] for r in src.execute(f"PRAGMA table_info({table})") if r[1] != "id"]
        if clustered and table == "conversations":
            columns.append("id")  # last: a row's second value stays its channel (``_groups``)
        rows = src.execute(f"SELECT {', '.join(columns)} FROM {table} ORDER BY id").fetchall()
        marks = ", ".join("?" * len(columns))
        tables[table] = (f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)
    src.close()
    (insert_sessions, sessions), (insert_messages, messages) = tables.values()
    groups = _groups(messages, per_transaction)
    db = sqlite3.connect(target, isolation_level=None)
    if clustered:
        _cluster(db)
    for pragma in common.sqlite_pragmas(synchronous):
        db.execute(pragma)
    started = time.perf_counter()
    for group, its_sessions in zip(groups, _session_groups(sessions, groups), strict=True):
        db.execute("BEGIN IMMEDIATE")
        db.executemany(insert_sessions, its_sessions)
        db.executemany(insert_messages, group)
        db.execute("COMMIT")
    elapsed = time.perf_counter() - started
    db.close()
    return elapsed, len(messages)


async def postgres_floor(source: str, target: str) -> tuple[float, int]:
    """PostgreSQL: the rows the store wrote to database ``source`` (a libpq URL), copied again
    into the fresh database ``target`` with asyncpg's ``COPY``, 5,000 messages per transaction:
    (seconds, messages). Generated columns (the search column) are computed by the server."""
    import asyncpg

    src = await asyncpg.connect(source)
    tables = {}
    for table in ("sessions", "conversations"):
        columns = [
            r[0]
            for r in await src.fetch(
                "SELECT column_name FROM information_schema.columns WHERE table_name = $1"
                " AND column_name <> 'id' AND is_generated = 'NEVER' ORDER BY ordinal_position",
                table,
            )
        ]
        rows = await src.fetch(f"SELECT {', '.join(columns)} FROM {table} ORDER BY id")
        tables[table] = (columns, [tuple(r) for r in rows])
    await src.close()
    (session_columns, sessions), (message_columns, messages) = tables.values()
    groups = _groups(messages, 5_000)
    db = await asyncpg.connect(target)
    try:
        started = time.perf_counter()
        for group, its_sessions in zip(groups, _session_groups(sessions, groups), strict=True):
            async with db.transaction():
                if its_sessions:
                    await db.copy_records_to_table(
                        "sessions", records=its_sessions, columns=session_columns
                    )
                await db.copy_records_to_table(
                    "conversations", records=group, columns=message_columns
                )
        elapsed = time.perf_counter() - started
    finally:
        await db.close()
    return elapsed, len(messages)


async def batch_convostore(
    path: Path, conversations: list[list[dict[str, Any]]], synchronous: str
) -> float:
    from convostore import BotStore, ChannelInfo

    channels = [ChannelInfo.channel(10 + c, f"c{c}") for c in range(len(conversations))]
    config = common.bot_config(common.sqlite_database(path), synchronous=synchronous)
    async with BotStore.open(config) as store:
        warm = {**conversations[0][0], "message_id": 1, "timestamp": BASE_TIME}
        await store.add_messages(ChannelInfo.channel(1, "warm"), [warm])  # untimed
        started = time.perf_counter()
        for channel, messages in zip(channels, conversations, strict=True):
            await store.add_messages(channel, messages)
        return time.perf_counter() - started


async def batch_openai(
    path: Path, conversations: list[list[dict[str, Any]]], synchronous: str
) -> float:
    import bench_peers

    session_class = bench_peers.openai_session_class(synchronous)
    sessions = [session_class(f"channel-{c}", path) for c in range(len(conversations))]
    items = [[bench_peers.item(m) for m in messages] for messages in conversations]
    warm = session_class("warm", path)
    await warm.add_items([items[0][0]])  # untimed: the connection and the tables
    await warm.get_items(limit=1)
    started = time.perf_counter()
    for session, batch in zip(sessions, items, strict=True):
        await session.add_items(batch)
    elapsed = time.perf_counter() - started
    for session in [*sessions, warm]:
        session.close()
    return elapsed


async def peers(args: Any, tmp: Path) -> list[dict[str, Any]]:
    try:
        import agents  # noqa: F401
    except ImportError:
        print("--peers: the OpenAI Agents SDK is not installed (the bench extra); skipped")
        return []
    messages = workload(args.peer_count)
    size = max(1, len(messages) // args.peer_conversations)
    conversations = [messages[i : i + size] for i in range(0, len(messages), size)]
    rows = []
    for level in common.synchronous_levels(args.synchronous):
        ours = await batch_convostore(tmp / f"batch-{level}.db", conversations, level)
        theirs = await batch_openai(tmp / f"openai-{level}.db", conversations, level)
        floor_s, floor_rows = sqlite_floor(
            tmp / f"batch-{level}.db", tmp / f"floor-{level}.db", None, level
        )
        clustered_s, _ = sqlite_floor(
            tmp / f"batch-{level}.db", tmp / f"clustered-{level}.db", None, level, clustered=True
        )
        rows.append(
            {
                "synchronous": level,
                "messages": len(messages),
                "per_call": size,
                "convostore_per_s": len(messages) / ours,
                "openai_per_s": len(messages) / theirs,
                "ratio": theirs / ours,
                "floor_per_s": floor_rows / floor_s,
                "floor_vs_openai": (floor_rows / floor_s) / (len(messages) / theirs),
                "clustered_floor_per_s": floor_rows / clustered_s,
                "clustered_vs_openai": (floor_rows / clustered_s) / (len(messages) / theirs),
            }
        )
    return rows


async def main() -> None:
    p = common.parser(__doc__ or "")
    p.add_argument("--count", type=int, default=100_000, help="messages backfilled")
    p.add_argument("--sample", type=int, default=5_000, help="messages of the baseline")
    p.add_argument("--peers", action="store_true", help="batch writes vs the OpenAI SDK too")
    p.add_argument("--peer-count", type=int, default=100_000, help="messages of --peers")
    p.add_argument("--peer-conversations", type=int, default=1_000, help="conversations of --peers")
    p.add_argument("--synchronous", default="normal,full", help="levels of --peers")
    args = p.parse_args()
    messages = workload(args.count)
    sample = messages[: args.sample]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(dir=common.RESULTS.parent) as tmp:
        for backend in common.backends(args):
            if backend == "sqlite":
                single = await one_by_one(common.sqlite_database(Path(tmp) / "one.db"), sample)
                bulk, sessions = await backfill(
                    common.sqlite_database(Path(tmp) / "bulk.db"), messages
                )
                floor_s, floor_rows = sqlite_floor(
                    Path(tmp) / "bulk.db", Path(tmp) / "floor.db", 5_000, "normal"
                )
                clustered_s, _ = sqlite_floor(
                    Path(tmp) / "bulk.db",
                    Path(tmp) / "clustered.db",
                    5_000,
                    "normal",
                    clustered=True,
                )
            else:
                with common.postgres_database("backfill_one") as (url, _):
                    single = await one_by_one(url, sample)
                with common.postgres_database("backfill_bulk") as (url, plain):
                    bulk, sessions = await backfill(url, messages)
                    with common.postgres_database("backfill_floor") as (_, floor_url):
                        floor_s, floor_rows = await postgres_floor(plain, floor_url)
                clustered_s = float("nan")
            single_rate = len(sample) / single
            bulk_rate = len(messages) / bulk
            rows.append(
                {
                    "backend": backend,
                    "messages": len(messages),
                    "sessions": sessions,
                    "backfill_s": bulk,
                    "backfill_per_s": bulk_rate,
                    "single_sample": len(sample),
                    "single_per_s": single_rate,
                    "ratio": bulk_rate / single_rate,
                    "floor_per_s": floor_rows / floor_s,
                    "needed_per_s": 20 * single_rate,
                    "backfill_vs_floor": bulk_rate / (floor_rows / floor_s),
                    "clustered_floor_per_s": floor_rows / clustered_s,
                }
            )
        peer_rows = await peers(args, Path(tmp)) if args.peers else []
    headers = list(rows[0]) if rows else []
    print(f"\nbackfill of {args.count:,} messages (newest first, older than the channel)")
    print(common.table(headers, [[r[h] for h in headers] for r in rows]))
    results: dict[str, Any] = {"count": args.count, "sample": args.sample, "rows": rows}
    if peer_rows:
        headers = list(peer_rows[0])
        print(
            f"\nbatch writes, {args.peer_count:,} messages in {args.peer_conversations:,} "
            "conversations: add_messages vs the OpenAI SDK's add_items (ratio: convostore / SDK)"
        )
        print(common.table(headers, [[r[h] for h in headers] for r in peer_rows]))
        results["peers"] = peer_rows
    common.write_results("backfill", results)


if __name__ == "__main__":
    common.RESULTS.mkdir(parents=True, exist_ok=True)
    asyncio.run(main())
