"""Peers: the append and history workloads through other conversation stores, on SQLite.

Contenders, each used as its documentation shows, each on its own SQLite file, every one opening
its connections before the timer (an untimed call first) and running at the same
``PRAGMA synchronous`` (``--synchronous normal,full`` runs the appends once per level; the SDK and
LangChain have no setting for it, so the PRAGMA is run on each connection they open):
- convostore ``BotStore`` (the baseline of the ratios: a peer's rate or speed / convostore's);
- OpenAI Agents SDK ``SQLiteSession`` (package ``openai-agents``): one session per channel,
  ``add_items([item])`` per message, ``get_items(limit=100)``;
- LangChain ``SQLChatMessageHistory`` (package ``langchain-community``) on an aiosqlite engine:
  one history per channel, ``aadd_message`` per message, ``aget_messages()`` (it has no limit, so
  it reads the whole channel and the last 100 are kept).
Both peers come with ``pip install -e ".[bench]"``; a peer that is not installed is skipped with a
message. Append: ``--count`` messages over ``--channels`` conversations (default 1,000) into empty
files, ``--append-runs`` times per contender and level (default 3), the contenders' order rotated
every run (at FULL one's flushes also wait for what the one before it left to the disk), and the
run with the median rate reported, all runs' rates in the results file. History: p50/p99 of
reads of one random sequence of channels, the same for every store, in
databases of ``--sizes`` rows (about 1,000 per channel), built once with bulk inserts and cached
under benchmarks/results/cache/; each store is set up (objects built, connections opened) and
reads the whole sequence once untimed before the timed pass, so all read with a warm page cache.
The contenders take turns: the sequence is cut into ``--rounds`` slices (default 10) and each
round every contender reads one slice, in an order rotated every round, so that a change of the
machine's load reaches all of them alike. ``PRAGMA synchronous`` does not change reads; history
runs once.

    .venv/bin/python benchmarks/bench_peers.py [--count 20000] [--channels 1000]
        [--synchronous normal,full] [--append-runs 3] [--sizes 10000,100000,1000000]
        [--queries 2000]
"""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
import tempfile
import time
import warnings
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import _common as common
import _data as data
import bench_append

warnings.filterwarnings("ignore", category=DeprecationWarning)


def available() -> dict[str, str | None]:
    """Each peer's import error, or None when it can run."""
    status: dict[str, str | None] = {}
    try:
        from agents import SQLiteSession  # noqa: F401
    except ImportError as exc:
        status["openai SQLiteSession"] = f"not installed ({exc}); pip install -e '.[bench]'"
    else:
        status["openai SQLiteSession"] = None
    try:
        from agents.extensions.memory import SQLAlchemySession  # noqa: F401
    except ImportError as exc:
        status["openai SQLAlchemySession"] = f"not installed ({exc}); pip install -e '.[bench]'"
    else:
        status["openai SQLAlchemySession"] = None
    try:
        from langchain_community.chat_message_histories import SQLChatMessageHistory  # noqa: F401
    except ImportError as exc:
        status["langchain SQLChatMessageHistory"] = (
            f"not installed ({exc}); pip install -e '.[bench]'"
        )
    else:
        status["langchain SQLChatMessageHistory"] = None
    return status


# --- append -------------------------------------------------------------------------------------

PRAGMA_NAME = {"normal": "NORMAL", "full": "FULL"}


def openai_session_class(synchronous: str) -> Any:
    """``SQLiteSession`` whose connections run ``PRAGMA synchronous`` at ``synchronous``.

    The SDK has no setting for it (it sets WAL and leaves SQLite's default, FULL), so the same
    PRAGMA convostore runs is added where it configures each new connection.
    """
    from agents import SQLiteSession

    pragma = PRAGMA_NAME[synchronous]

    class Session(SQLiteSession):  # type: ignore[misc]
        @staticmethod
        def _configure_connection(conn: sqlite3.Connection) -> None:
            SQLiteSession._configure_connection(conn)
            conn.execute(f"PRAGMA synchronous = {pragma}")

    return Session


def langchain_engine(path: Path, synchronous: str) -> Any:
    """LangChain's aiosqlite engine: its own journal mode, ``synchronous`` set per connection."""
    from sqlalchemy import event
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(f"sqlite+aiosqlite:///{path}")
    pragma = PRAGMA_NAME[synchronous]

    @event.listens_for(engine.sync_engine, "connect")
    def _synchronous(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA synchronous = {pragma}")
        cursor.close()

    return engine


def item(m: dict[str, Any]) -> dict[str, Any]:
    return {"role": m["role"], "content": m["content"]}


async def append_openai(
    path: Path, messages: list[dict[str, Any]], synchronous: str
) -> common.Timer:
    session_class = openai_session_class(synchronous)
    sessions = {c: session_class(f"channel-{c}", path) for c in {m["channel"] for m in messages}}
    # Untimed: opens the connection of the thread that runs the SDK's calls, creates the tables.
    warm = session_class("warm", path)
    await warm.add_items([item(bench_append.WARMUP_MESSAGE)])
    await warm.get_items(limit=1)
    timer = common.Timer()
    for m in messages:
        start = time.perf_counter()
        await sessions[m["channel"]].add_items([item(m)])
        timer.latencies.append(time.perf_counter() - start)
    timer.stop()
    for session in [*sessions.values(), warm]:
        session.close()
    return timer


async def append_langchain(
    path: Path, messages: list[dict[str, Any]], synchronous: str
) -> common.Timer:
    from langchain_community.chat_message_histories import SQLChatMessageHistory
    from langchain_core.messages import AIMessage, HumanMessage

    engine = langchain_engine(path, synchronous)
    histories = {
        c: SQLChatMessageHistory(session_id=f"channel-{c}", connection=engine)
        for c in {m["channel"] for m in messages}
    }
    # Untimed: creates the table and opens the pooled connection.
    warm = SQLChatMessageHistory(session_id="warm", connection=engine)
    await warm.aadd_message(HumanMessage("opens the connection"))
    timer = common.Timer()
    for m in messages:
        kind = HumanMessage if m["role"] == "user" else AIMessage
        start = time.perf_counter()
        await histories[m["channel"]].aadd_message(kind(m["content"]))
        timer.latencies.append(time.perf_counter() - start)
    timer.stop()
    await engine.dispose()
    return timer


async def append_sqlalchemy_session(
    path: Path, messages: list[dict[str, Any]], synchronous: str
) -> common.Timer:
    from agents.extensions.memory import SQLAlchemySession

    engine = langchain_engine(path, synchronous)
    channels = sorted({m["channel"] for m in messages})
    sessions = {
        c: SQLAlchemySession(f"channel-{c}", engine=engine, create_tables=True) for c in channels
    }
    # Untimed: creates the tables and opens the pooled connection.
    warm = SQLAlchemySession("warm", engine=engine, create_tables=True)
    await warm.add_items([item(bench_append.WARMUP_MESSAGE)])
    await warm.get_items(limit=1)
    timer = common.Timer()
    for m in messages:
        start = time.perf_counter()
        await sessions[m["channel"]].add_items([item(m)])
        timer.latencies.append(time.perf_counter() - start)
    timer.stop()
    await engine.dispose()
    return timer


async def append_adapter(
    kind: str, path: Path, messages: list[dict[str, Any]], synchronous: str
) -> common.Timer:
    """convostore's ``ConvostoreSession`` (``add_items``) or ``ConvostoreChatMessageHistory``."""
    from langchain_core.messages import AIMessage, HumanMessage

    from convostore import BotStore, ChannelInfo
    from convostore.integrations.langchain import ConvostoreChatMessageHistory
    from convostore.integrations.openai_agents import ConvostoreSession

    url = common.sqlite_database(path)
    config = common.bot_config(url, synchronous=synchronous)
    async with BotStore.open(config) as store:
        memories: dict[int, Any] = {}
        for c in sorted({m["channel"] for m in messages} | {-1}):
            channel = ChannelInfo.channel(channel_id=c + 2, name="c")
            memories[c] = (
                ConvostoreSession(store, channel)
                if kind == "session"
                else ConvostoreChatMessageHistory(store, channel)
            )

        async def add(m: dict[str, Any]) -> None:
            memory = memories[m["channel"]]
            if kind == "session":
                await memory.add_items([item(m)])
            else:
                message = HumanMessage if m["role"] == "user" else AIMessage
                await memory.aadd_messages([message(m["content"])])

        await add({**bench_append.WARMUP_MESSAGE, "channel": -1})  # untimed
        timer = common.Timer()
        for m in messages:
            start = time.perf_counter()
            await add(m)
            timer.latencies.append(time.perf_counter() - start)
        timer.stop()
    return timer


def _adapter_appender(
    kind: str, messages: list[dict[str, Any]], path: Path, level: str
) -> Awaitable[common.Timer]:
    return append_adapter(kind, path, messages, level)


def _peer_appender(
    append: Callable[[Path, list[dict[str, Any]], str], Awaitable[common.Timer]],
    messages: list[dict[str, Any]],
    path: Path,
    level: str,
) -> Awaitable[common.Timer]:
    return append(path, messages, level)


# --- history ------------------------------------------------------------------------------------


def openai_file(rows: int) -> Path:
    """A cached SQLiteSession database with the same row layout as convostore's history files."""
    from agents import SQLiteSession

    path = common.RESULTS / "cache" / f"openai_{rows}.db"
    if path.exists():
        return path
    building = path.with_name(path.stem + ".building.db")
    common.remove_sqlite(building)
    SQLiteSession("schema", building).close()
    n = data.channels(rows)
    item = json.dumps({"role": "user", "content": data.CONTENT})
    with sqlite3.connect(building, isolation_level=None) as conn:
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO agent_sessions (session_id) VALUES (?)",
            [(data.channel_id(c),) for c in range(n)],
        )
        for start in range(0, rows, data.CHUNK):
            stop = min(rows, start + data.CHUNK)
            conn.executemany(
                "INSERT INTO agent_messages (session_id, message_data) VALUES (?, ?)",
                ((data.channel_id(i % n), item) for i in range(start, stop)),
            )
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    building.replace(path)
    common.remove_sqlite(building)
    return path


def langchain_file(rows: int) -> Path:
    """A cached SQLChatMessageHistory database (table message_store) with the same row layout."""
    from langchain_community.chat_message_histories import SQLChatMessageHistory
    from langchain_core.messages import HumanMessage, message_to_dict

    path = common.RESULTS / "cache" / f"langchain_{rows}.db"
    if path.exists():
        return path
    building = path.with_name(path.stem + ".building.db")
    common.remove_sqlite(building)
    SQLChatMessageHistory(session_id="schema", connection=f"sqlite:///{building}")
    n = data.channels(rows)
    message = json.dumps(message_to_dict(HumanMessage(data.CONTENT)))
    with sqlite3.connect(building, isolation_level=None) as conn:
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("BEGIN")
        for start in range(0, rows, data.CHUNK):
            stop = min(rows, start + data.CHUNK)
            conn.executemany(
                "INSERT INTO message_store (session_id, message) VALUES (?, ?)",
                ((data.channel_id(i % n), message) for i in range(start, stop)),
            )
        conn.execute("COMMIT")
    building.replace(path)
    common.remove_sqlite(building)
    return path


def sqlalchemy_file(rows: int) -> Path:
    """A cached SQLAlchemySession database (its own tables) with the same row layout."""
    from agents.extensions.memory import SQLAlchemySession
    from sqlalchemy.ext.asyncio import create_async_engine

    path = common.RESULTS / "cache" / f"openai_sqlalchemy_{rows}.db"
    if path.exists():
        return path
    building = path.with_name(path.stem + ".building.db")
    common.remove_sqlite(building)

    async def schema() -> None:
        engine = create_async_engine(f"sqlite+aiosqlite:///{building}")
        await SQLAlchemySession("schema", engine=engine, create_tables=True).get_items()
        await engine.dispose()

    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, schema()).result()
    n = data.channels(rows)
    item = json.dumps({"role": "user", "content": data.CONTENT})
    with sqlite3.connect(building, isolation_level=None) as conn:
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO agent_sessions (session_id) VALUES (?)",
            [(data.channel_id(c),) for c in range(n)],
        )
        for start in range(0, rows, data.CHUNK):
            stop = min(rows, start + data.CHUNK)
            conn.executemany(
                "INSERT INTO agent_messages (session_id, message_data, created_at)"
                " VALUES (?, ?, datetime('2025-01-01', '+' || ? || ' seconds'))",
                ((data.channel_id(i % n), item, i) for i in range(start, stop)),
            )
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    building.replace(path)
    common.remove_sqlite(building)
    return path


Reader = Callable[[str], Awaitable[int]]


async def timed(read: Reader, channel_ids: list[str]) -> list[float]:
    """An untimed pass over the whole sequence (connections open, pages warm), then a timed one."""
    for cid in channel_ids:
        await read(cid)
    latencies = []
    for cid in channel_ids:
        start = time.perf_counter()
        got = await read(cid)
        latencies.append(time.perf_counter() - start)
        assert got == 100, got
    return latencies


async def history_convostore(rows: int, channel_ids: list[str]) -> list[float]:
    from convostore import BotStore, ChannelInfo

    url = f"sqlite+aiosqlite:///{data.sqlite_file(rows)}"
    channels = {cid: ChannelInfo.channel(channel_id=cid, name="c") for cid in set(channel_ids)}
    async with BotStore.open(common.bot_config(url, data.BOT)) as store:

        async def read(cid: str) -> int:
            return len(await store.history(channels[cid], limit=100))

        return await timed(read, channel_ids)


async def history_openai(rows: int, channel_ids: list[str]) -> list[float]:
    from agents import SQLiteSession

    path = openai_file(rows)
    # Built once, before any timing; the untimed pass opens each one's connection.
    sessions = {cid: SQLiteSession(cid, path) for cid in set(channel_ids)}

    async def read(cid: str) -> int:
        return len(await sessions[cid].get_items(limit=100))

    try:
        return await timed(read, channel_ids)
    finally:
        for session in sessions.values():
            session.close()


async def history_sqlalchemy_session(rows: int, channel_ids: list[str]) -> list[float]:
    from agents.extensions.memory import SQLAlchemySession
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(f"sqlite+aiosqlite:///{sqlalchemy_file(rows)}")
    sessions = {cid: SQLAlchemySession(cid, engine=engine) for cid in set(channel_ids)}

    async def read(cid: str) -> int:
        return len(await sessions[cid].get_items(limit=100))

    try:
        return await timed(read, channel_ids)
    finally:
        await engine.dispose()


async def history_adapter(kind: str, rows: int, channel_ids: list[str]) -> list[float]:
    """The adapters over convostore's own history file (rows as a Discord bot stores them)."""
    from convostore import BotStore, ChannelInfo
    from convostore.integrations.langchain import ConvostoreChatMessageHistory
    from convostore.integrations.openai_agents import ConvostoreSession

    url = f"sqlite+aiosqlite:///{data.sqlite_file(rows)}"
    async with BotStore.open(common.bot_config(url, data.BOT)) as store:
        channels = {cid: ChannelInfo.channel(channel_id=cid, name="c") for cid in set(channel_ids)}
        if kind == "session":
            sessions = {cid: ConvostoreSession(store, ch) for cid, ch in channels.items()}

            async def read(cid: str) -> int:
                return len(await sessions[cid].get_items(limit=100))

        else:
            histories = {
                cid: ConvostoreChatMessageHistory(store, ch) for cid, ch in channels.items()
            }

            async def read(cid: str) -> int:
                # BaseChatMessageHistory has no limit: the whole channel, the newest 100 kept,
                # as for SQLChatMessageHistory.
                return len((await histories[cid].aget_messages())[-100:])

        return await timed(read, channel_ids)


async def history_langchain(rows: int, channel_ids: list[str]) -> list[float]:
    from langchain_community.chat_message_histories import SQLChatMessageHistory
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(f"sqlite+aiosqlite:///{langchain_file(rows)}")
    histories = {
        cid: SQLChatMessageHistory(session_id=cid, connection=engine) for cid in set(channel_ids)
    }

    async def read(cid: str) -> int:
        # No limit in its API: it reads the whole channel; the newest 100 are kept.
        return len((await histories[cid].aget_messages())[-100:])

    try:
        return await timed(read, channel_ids)
    finally:
        await engine.dispose()


ADAPTERS = {
    "session": "convostore ConvostoreSession",
    "langchain": "convostore ConvostoreChatMessageHistory",
}
# Each adapter against the peers of its own framework.
PAIRS = (
    (ADAPTERS["session"], "openai SQLiteSession"),
    (ADAPTERS["session"], "openai SQLAlchemySession"),
    (ADAPTERS["langchain"], "langchain SQLChatMessageHistory"),
)
VERSUS_KEYS = ("measure", "adapter", "peer", "adapter_value", "peer_value", "adapter_x")


def adapters_versus_peers(
    append_rows: list[dict[str, Any]], history_rows: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Per pair: append rate (per second, higher is better) and history p50 (ms, lower)."""
    versus = []
    for adapter, peer in PAIRS:
        for level in sorted({r["synchronous"] for r in append_rows}):
            rate = {r["contender"]: r["per_s"] for r in append_rows if r["synchronous"] == level}
            if adapter in rate and peer in rate:
                versus.append(
                    {
                        "measure": f"append/s, synchronous={level}",
                        "adapter": adapter,
                        "peer": peer,
                        "adapter_value": rate[adapter],
                        "peer_value": rate[peer],
                        "adapter_x": rate[adapter] / rate[peer],
                    }
                )
        for rows in sorted({r["rows"] for r in history_rows}):
            p50 = {r["contender"]: r["p50_ms"] for r in history_rows if r["rows"] == rows}
            if adapter in p50 and peer in p50:
                versus.append(
                    {
                        "measure": f"history p50 ms, {rows:,} rows",
                        "adapter": adapter,
                        "peer": peer,
                        "adapter_value": p50[adapter],
                        "peer_value": p50[peer],
                        "adapter_x": p50[peer] / p50[adapter],
                    }
                )
    return versus


async def main() -> None:
    p = common.parser(__doc__ or "")
    p.add_argument("--count", type=int, default=20_000, help="messages appended per contender")
    p.add_argument("--channels", type=int, default=1000, help="conversations the appends go round")
    p.add_argument("--synchronous", default="normal,full", help="levels of the append runs")
    p.add_argument("--sizes", default="10000,100000,1000000", help="history database sizes")
    p.add_argument("--queries", type=int, default=2000, help="history reads per contender")
    p.add_argument(
        "--slow-queries",
        type=int,
        default=100,
        help="history reads for LangChain above 100k rows (each read scans the whole table)",
    )
    p.add_argument(
        "--append-runs",
        type=int,
        default=3,
        help="append runs per contender and level, in rotated order; the median run is reported",
    )
    p.add_argument("--skip-history", action="store_true")
    p.add_argument(
        "--rounds",
        type=int,
        default=10,
        help="history: the contenders take turns over this many slices of the sequence",
    )
    args = p.parse_args()
    status = available()
    for name, problem in status.items():
        if problem:
            print(f"SKIPPED {name}: {problem}")
    runnable = [name for name, problem in status.items() if problem is None]

    messages = bench_append.workload(args.count, args.channels)
    appenders: dict[str, Callable[[Path, str], Awaitable[common.Timer]]] = {
        "convostore": lambda path, level: bench_append.run_convostore(
            common.sqlite_database(path), messages, level
        ),
        **{name: partial(_adapter_appender, kind, messages) for kind, name in ADAPTERS.items()},
        "openai SQLAlchemySession": partial(_peer_appender, append_sqlalchemy_session, messages),
        "openai SQLiteSession": partial(_peer_appender, append_openai, messages),
        "langchain SQLChatMessageHistory": partial(_peer_appender, append_langchain, messages),
    }
    names = [n for n in appenders if n in ("convostore", *ADAPTERS.values()) or n in runnable]
    append_rows: list[dict[str, Any]] = []
    for level in common.synchronous_levels(args.synchronous):
        # Each contender appends --append-runs times, each time into a new file, the order of
        # the contenders rotated every run: at FULL a contender's flushes also wait for what the
        # one before it left to the disk, so a fixed order favours or handicaps the same ones.
        runs: dict[str, list[common.Timer]] = {name: [] for name in names}
        for run in range(args.append_runs):
            with tempfile.TemporaryDirectory(dir=common.RESULTS) as tmp:
                for name in names[run % len(names) :] + names[: run % len(names)]:
                    path = Path(tmp) / f"{name.replace(' ', '_')}.db"
                    runs[name].append(await appenders[name](path, level))
        # Per contender, the run with the median rate (the middle one of an odd number).
        timers = {
            name: sorted(timers, key=lambda t: t.rate)[len(timers) // 2]
            for name, timers in runs.items()
        }
        ours = timers["convostore"]
        for name, timer in timers.items():
            append_rows.append(
                {
                    "synchronous": level,
                    "contender": name,
                    "journal": "rollback (its default)"
                    if name.startswith("langchain") or "SQLAlchemy" in name
                    else "wal",
                    "messages": len(timer.latencies),
                    "per_s": timer.rate,
                    "runs_per_s": [t.rate for t in runs[name]],
                    **common.summary(timer.latencies),
                    "convostore_x": ours.rate / timer.rate,
                }
            )
        print(f"  done: append at {level}", flush=True)
    headers = [
        "synchronous",
        "contender",
        "journal",
        "messages",
        "per_s",
        "p50_ms",
        "p99_ms",
        "convostore_x",
    ]
    print(
        f"\nappend on SQLite: {args.count:,} messages over {args.channels:,} conversations,"
        " one call each, every store at the same PRAGMA synchronous"
    )
    print("(convostore_x: convostore's rate / this contender's rate)")
    print(common.table(headers, [[r[h] for h in headers] for r in append_rows]))

    history_rows: list[dict[str, Any]] = []
    readers = {
        "convostore": history_convostore,
        ADAPTERS["session"]: partial(history_adapter, "session"),
        ADAPTERS["langchain"]: partial(history_adapter, "langchain"),
        "openai SQLiteSession": history_openai,
        "openai SQLAlchemySession": history_sqlalchemy_session,
        "langchain SQLChatMessageHistory": history_langchain,
    }
    sizes = [] if args.skip_history else [int(s) for s in args.sizes.split(",")]
    for rows in sizes:
        # One sequence of channels per size, read by every contender (LangChain's slow runs read
        # its first --slow-queries entries).
        rng = random.Random(rows)
        sequence = [
            data.channel_id(rng.randrange(data.channels(rows))) for _ in range(args.queries)
        ]
        names = [
            name
            for name in readers
            if name in ("convostore", *ADAPTERS.values()) or name in runnable
        ]
        # The contenders take turns in rounds (each round a slice of the sequence, the order
        # rotated every round), so a change of the machine's load reaches all of them alike.
        latencies: dict[str, list[float]] = {name: [] for name in names}
        for turn in range(args.rounds):
            part = sequence[turn :: args.rounds]
            for name in names[turn % len(names) :] + names[: turn % len(names)]:
                # LangChain reads the whole channel with no limit: hundreds of ms a read from
                # 100k rows; it reads the first --slow-queries entries of the sequence.
                slow = name.startswith("langchain") and rows >= 100_000
                ids = sequence[: args.slow_queries][turn :: args.rounds] if slow else part
                latencies[name].extend(await readers[name](rows, ids))
        base: float | None = None
        for name in names:
            s = common.summary(latencies[name])
            base = base or s["p50_ms"]
            history_rows.append(
                {"rows": rows, "contender": name, **s, "convostore_x": s["p50_ms"] / base}
            )
        print(f"  done: history, {rows:,} rows, {args.rounds} rounds", flush=True)
    headers = ["rows", "contender", "samples", "p50_ms", "p99_ms", "convostore_x"]
    print(
        "\nhistory, newest 100 messages, the same sequence of channels for every store, on SQLite"
    )
    print("(convostore_x: this contender's p50 / convostore's p50; p99 only from 1,000+ samples)")
    print(common.table(headers, [[r[h] for h in headers] for r in history_rows]))
    versus = adapters_versus_peers(append_rows, history_rows)
    headers = ["measure", "adapter", "peer", "adapter value", "peer value", "adapter_x"]
    print(
        "\nconvostore's adapters against each peer of their framework, same run"
        " (adapter_x: how many times faster the adapter is; > 1 means ahead)"
    )
    print(common.table(headers, [[v[h] for h in VERSUS_KEYS] for v in versus]))
    common.write_results(
        "peers",
        {
            "adapters_versus_peers": versus,
            "count": args.count,
            "channels": args.channels,
            "skipped": status,
            "append": append_rows,
            "history": history_rows,
        },
    )


if __name__ == "__main__":
    common.RESULTS.mkdir(parents=True, exist_ok=True)
    asyncio.run(main())
