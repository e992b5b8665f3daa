"""Full-text search at scale: ``BotStore.search`` vs a ``LIKE '%word%'`` scan of the same rows.

The data: ``--rows`` messages (default 1,000,000) of bot ``bench`` over 1,000 channels, each 6-24
words drawn from a 30,000-word synthetic vocabulary with a Zipf distribution (exponent 1.07, as in
natural language), seeded, so every run builds the same bytes. SQLite files are built once with
``sqlite3.executemany`` into a migrated copy of the schema (the FTS5 triggers index as rows go in)
and cached under ``benchmarks/results/cache/``; PostgreSQL is filled with ``COPY`` and the GIN
index built afterwards (dropped when the run ends).

The queries: ``--queries`` (default 1,200) drawn with a fixed seed: 70% one word, 20% two words,
10% a quoted two-word phrase copied from a stored message. Words are drawn uniformly from the
vocabulary's ranks 100-30,000: topic words, as in "what did we say about X", not the hundred
commonest words that appear in a large share of all messages.

Search: ``await store.search(q)`` (best 20 by rank) for every query, after 50 warm-up queries;
p50 and p99 by nearest rank. Baseline: the same result size by the raw driver, ``SELECT … WHERE
bot_name = ? AND content LIKE '%w%' [AND content LIKE '%w2%'] ORDER BY timestamp DESC LIMIT 20``
(``ILIKE`` on PostgreSQL), for the first ``--like-queries`` queries (default 60; each is a scan of
every row), and search's p50 on the same queries beside it.

Append: ``--appends`` ``add_message`` calls (default 4,000), one transaction each, into a fresh
database with the index and one without it (the search objects dropped), alternating blocks of
250 so that both see the same machine load; rate with / rate without.

    .venv/bin/python benchmarks/bench_search.py [--rows 1000000] [--queries 1200] [--backends …]
"""

from __future__ import annotations

import asyncio
import itertools
import random
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import _common as common

BOT = "bench"
BASE_TIME = datetime(2025, 1, 1, tzinfo=UTC)
CHANNELS = 1_000
VOCABULARY = 30_000
ZIPF = 1.07
CHUNK = 50_000
WARMUP = 50
SYLLABLES = [c + v for c in "bcdfghjklmnprstvwz" for v in "aeiou"] + ["an", "er", "in", "on"]


def vocabulary() -> list[str]:
    rng = random.Random(15)
    words: list[str] = []
    seen: set[str] = set()
    while len(words) < VOCABULARY:
        word = "".join(rng.choices(SYLLABLES, k=rng.choice((1, 2, 2, 3, 3, 4))))
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


def contents(rows: int, words: list[str]) -> Iterator[str]:
    """The ``rows`` message texts, in chunks of the same seeded stream."""
    rng = random.Random(1507)
    weights = list(itertools.accumulate(1 / (r + 1) ** ZIPF for r in range(len(words))))
    for start in range(0, rows, CHUNK):
        n = min(CHUNK, rows - start)
        lengths = [rng.randint(6, 24) for _ in range(n)]
        drawn = rng.choices(words, cum_weights=weights, k=sum(lengths))
        at = 0
        for length in lengths:
            yield " ".join(drawn[at : at + length])
            at += length


def row(i: int, content: str) -> tuple[Any, ...]:
    c = i % CHANNELS
    at = (BASE_TIME + timedelta(seconds=i)).replace(tzinfo=None)
    return (
        BOT,
        str(900_000_000_000 + c),
        f"channel-{c}",
        "channel",
        str(1000 + i % 50),
        f"user{i % 50}",
        "s",
        str(10**15 + i),
        "user" if i % 2 == 0 else "assistant",
        content,
        at,
    )


def sqlite_row(i: int, content: str) -> tuple[Any, ...]:
    *values, at = row(i, content)
    return (*values, at.isoformat(sep=" ", timespec="microseconds"))


COLUMNS = (
    "bot_name, channel_id, channel_name, channel_type, user_id, username, session_id,"
    " message_id, role, content, timestamp"
)


def sqlite_file(rows: int, words: list[str]) -> Path:
    path = common.SCHEMA_CACHE / f"search_{rows}.db"
    if path.exists():
        return path
    building = path.with_name(path.stem + ".building.db")
    common.sqlite_database(building)
    started = time.perf_counter()
    conn = sqlite3.connect(building, isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("PRAGMA foreign_keys = OFF")
        conn.execute("PRAGMA cache_size = -1000000")
        stamp = BASE_TIME.replace(tzinfo=None).isoformat(sep=" ")
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO sessions (bot_name, channel_id, session_id, started_at, last_activity,"
            " message_count, is_active) VALUES (?, ?, 's', ?, ?, 0, 1)",
            [(BOT, str(900_000_000_000 + c), stamp, stamp) for c in range(CHANNELS)],
        )
        conn.execute("COMMIT")
        sql = f"INSERT INTO conversations ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        stream = contents(rows, words)
        for start in range(0, rows, CHUNK):
            batch = [
                sqlite_row(i, text)
                for i, text in zip(range(start, min(rows, start + CHUNK)), stream, strict=False)
            ]
            conn.execute("BEGIN")
            conn.executemany(sql, batch)
            conn.execute("COMMIT")
        # The index takes the rows in one batch, as an import's does (revision 0005).
        conn.execute(
            "INSERT INTO conversations_fts(rowid, content) SELECT id, content FROM conversations"
        )
        conn.execute(
            "UPDATE conversations_fts_state"
            " SET indexed_through = (SELECT max(id) FROM conversations)"
        )
        conn.execute("INSERT INTO conversations_fts(conversations_fts) VALUES ('optimize')")
        conn.execute("ANALYZE")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    building.replace(path)
    common.remove_sqlite(building)
    print(f"  built {path.name}: {rows:,} rows in {time.perf_counter() - started:.0f} s")
    return path


def fill_postgres(plain_url: str, rows: int, words: list[str]) -> None:
    import psycopg

    started = time.perf_counter()
    with psycopg.connect(plain_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO sessions (bot_name, channel_id, session_id, started_at, last_activity,"
            " message_count, is_active) SELECT %s, (900000000000 + c)::text, 's', %s, %s, 0, true"
            " FROM generate_series(0, %s::int) AS c",
            (BOT, BASE_TIME, BASE_TIME, CHANNELS - 1),
        )
        conn.execute("DROP INDEX idx_conversations_search")
        with (
            conn.cursor() as cursor,
            cursor.copy(f"COPY conversations ({COLUMNS}) FROM STDIN") as copy,
        ):
            for i, text in enumerate(contents(rows, words)):
                values = row(i, text)
                copy.write_row((*values[:-1], values[-1].replace(tzinfo=UTC)))
        conn.execute(
            "CREATE INDEX idx_conversations_search ON conversations USING gin (search_vector)"
        )
        conn.execute("VACUUM ANALYZE conversations")
    print(f"  filled PostgreSQL: {rows:,} rows in {time.perf_counter() - started:.0f} s")


def queries(count: int, words: list[str], rows: int) -> list[tuple[str, list[str]]]:
    """(query text, the words a LIKE baseline must find) for ``count`` queries."""
    rng = random.Random(4242)
    sample = list(itertools.islice(contents(min(rows, CHUNK), words), CHUNK))
    topical = words[100:]
    made: list[tuple[str, list[str]]] = []
    for _ in range(count):
        kind = rng.random()
        if kind < 0.7:
            word = rng.choice(topical)
            made.append((word, [word]))
        elif kind < 0.9:
            pair = [rng.choice(topical), rng.choice(topical)]
            made.append((" ".join(pair), pair))
        else:
            text = rng.choice(sample).split()
            at = rng.randrange(len(text) - 1)
            phrase = f"{text[at]} {text[at + 1]}"
            made.append((f'"{phrase}"', [phrase]))
    return made


async def time_search(url: str, made: list[tuple[str, list[str]]]) -> tuple[list[float], int]:
    from convostore import BotStore

    latencies: list[float] = []
    found = 0
    async with BotStore.open(common.bot_config(url, BOT)) as store:
        for text, _ in made[:WARMUP]:
            await store.search(text)
        for text, _ in made:
            start = time.perf_counter()
            hits = await store.search(text)
            latencies.append(time.perf_counter() - start)
            found += bool(hits)
    return latencies, found


def time_like_sqlite(path: Path, made: list[tuple[str, list[str]]]) -> list[float]:
    conn = sqlite3.connect(path)
    latencies = []
    try:
        for text_words in made:
            words = text_words[1]
            where = " AND ".join("content LIKE ?" for _ in words)
            sql = (
                f"SELECT {COLUMNS} FROM conversations WHERE bot_name = ? AND {where}"
                " ORDER BY timestamp DESC, id DESC LIMIT 20"
            )
            start = time.perf_counter()
            conn.execute(sql, (BOT, *(f"%{w}%" for w in words))).fetchall()
            latencies.append(time.perf_counter() - start)
    finally:
        conn.close()
    return latencies


def time_like_postgres(plain_url: str, made: list[tuple[str, list[str]]]) -> list[float]:
    import psycopg

    latencies = []
    with psycopg.connect(plain_url, autocommit=True) as conn:
        for _, words in made:
            where = " AND ".join("content ILIKE %s" for _ in words)
            sql = (
                f"SELECT {COLUMNS} FROM conversations WHERE bot_name = %s AND {where}"
                " ORDER BY timestamp DESC, id DESC LIMIT 20"
            )
            start = time.perf_counter()
            conn.execute(sql, (BOT, *(f"%{w}%" for w in words))).fetchall()
            latencies.append(time.perf_counter() - start)
    return latencies


DROP_SEARCH = {
    "sqlite": (
        "DROP TRIGGER IF EXISTS conversations_fts_update",
        "DROP TRIGGER IF EXISTS conversations_fts_delete",
        "DROP TRIGGER IF EXISTS conversations_fts_insert",
        "DROP TABLE IF EXISTS conversations_fts_state",
        "DROP TABLE conversations_fts",
    ),
    "postgresql": (
        "DROP INDEX idx_conversations_search",
        "ALTER TABLE conversations DROP COLUMN search_vector",
    ),
}


async def time_appends(with_url: str, without_url: str, count: int) -> dict[str, float]:
    from bench_append import workload

    from convostore import BotStore, ChannelInfo

    messages = workload(count, 20)
    channels = {
        m["channel"]: ChannelInfo.channel(channel_id=m["channel"] + 1, name="c") for m in messages
    }
    elapsed = {"with": 0.0, "without": 0.0}
    async with (
        BotStore.open(common.bot_config(with_url)) as indexed,
        BotStore.open(common.bot_config(without_url)) as plain,
    ):
        for block in range(0, count, 250):
            for name, store in (("with", indexed), ("without", plain)):
                start = time.perf_counter()
                for m in messages[block : block + 250]:
                    await store.add_message(
                        channels[m["channel"]],
                        user_id=m["user_id"],
                        username=m["username"],
                        role=m["role"],
                        content=m["content"],
                        message_id=m["message_id"],
                        timestamp=m["timestamp"],
                    )
                elapsed[name] += time.perf_counter() - start
    return {
        "with_per_s": count / elapsed["with"],
        "without_per_s": count / elapsed["without"],
        "ratio": elapsed["without"] / elapsed["with"],
    }


def drop_search_sync(url: str, backend: str) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    driver = "sqlite" if backend == "sqlite" else "postgresql+psycopg"
    engine = create_engine(make_url(url).set(drivername=driver))
    with engine.begin() as conn:
        for statement in DROP_SEARCH[backend]:
            conn.execute(text(statement))
    engine.dispose()


def report(
    backend: str,
    rows: int,
    search: list[float],
    found: int,
    like: list[float],
    same: list[float],
    appends: dict[str, float],
) -> dict[str, Any]:
    s, l_, same_s = common.summary(search), common.summary(like), common.summary(same)
    result = {
        "backend": backend,
        "rows": rows,
        "queries": len(search),
        "queries_with_hits": found,
        "search": s,
        "like_queries": len(like),
        "like": l_,
        "search_same_queries": same_s,
        "p50_speedup": l_["p50_ms"] / same_s["p50_ms"],
        "append": appends,
    }
    print(
        common.table(
            ["backend", "rows", "what", "samples", "p50 ms", "p99 ms", "mean ms"],
            [
                [
                    backend,
                    rows,
                    "search (all queries)",
                    len(search),
                    s["p50_ms"],
                    s["p99_ms"],
                    s["mean_ms"],
                ],
                [
                    backend,
                    rows,
                    "search (LIKE's queries)",
                    len(same),
                    same_s["p50_ms"],
                    same_s["p99_ms"],
                    same_s["mean_ms"],
                ],
                [
                    backend,
                    rows,
                    "LIKE '%w%' scan",
                    len(like),
                    l_["p50_ms"],
                    l_["p99_ms"],
                    l_["mean_ms"],
                ],
            ],
        )
    )
    print(
        f"{backend}: search is {result['p50_speedup']:.0f}x faster than LIKE at p50 (target 50x); "
        f"append {appends['with_per_s']:.0f}/s with the index vs {appends['without_per_s']:.0f}/s "
        f"without: {appends['ratio']:.2f}x (target >= 0.8x)"
    )
    return result


async def main() -> None:
    p = common.parser(__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--queries", type=int, default=1_200)
    p.add_argument("--like-queries", type=int, default=60)
    p.add_argument("--appends", type=int, default=4_000)
    p.add_argument("--results", default="search")
    args = p.parse_args()
    words = vocabulary()
    made = queries(args.queries, words, args.rows)
    like_made = made[: args.like_queries]
    results = []
    for backend in common.backends(args):
        print(f"\n{backend}: {args.rows:,} messages, {len(made):,} queries")
        if backend == "sqlite":
            path = sqlite_file(args.rows, words)
            url = f"sqlite+aiosqlite:///{path}"
            search, found = await time_search(url, made)
            like = await asyncio.to_thread(time_like_sqlite, path, like_made)
            with tempfile.TemporaryDirectory() as tmp:
                with_url = common.sqlite_database(Path(tmp) / "with.db")
                without_url = common.sqlite_database(Path(tmp) / "without.db")
                await asyncio.to_thread(drop_search_sync, without_url, backend)
                appends = await time_appends(with_url, without_url, args.appends)
        else:
            with common.postgres_database("search") as (url, plain):
                await asyncio.to_thread(fill_postgres, plain, args.rows, words)
                search, found = await time_search(url, made)
                like = await asyncio.to_thread(time_like_postgres, plain, like_made)
            with (
                common.postgres_database("append_with") as (with_url, _),
                common.postgres_database("append_without") as (without_url, _),
            ):
                await asyncio.to_thread(drop_search_sync, without_url, backend)
                appends = await time_appends(with_url, without_url, args.appends)
        same = search[: len(like)]
        results.append(report(backend, args.rows, search, found, like, same, appends))
    common.write_results(args.results, {"results": results})


if __name__ == "__main__":
    asyncio.run(main())
