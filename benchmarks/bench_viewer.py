"""Page times of ``convostore serve`` at 1M messages, on SQLite and on PostgreSQL.

Each page is requested ``--requests`` times through the ASGI app in process (Starlette's test
client: no network, the full middleware, query and template path), the pages taken in turn (one
request of each page per round, so a change in the machine's load weighs on every page alike);
the table gives p50 and p99 per page (p99 from 1,000 requests or more). Baseline, same run:
``/favicon.ico``, an empty response through the same stack, so the ratio shows what the page's
queries and rendering add. Target: every page under 100 ms.

The PostgreSQL database is filled from the SQLite file by ``convostore copy`` (not timed here;
``bench_copy.py`` times it). ``--keep-postgres`` keeps it for the next run (it is reused when it
holds every message, and copied into again otherwise: the copy resumes).

Run: ``.venv/bin/python benchmarks/bench_viewer.py`` (builds the 1M-message file once; ~5 min for
SQLite, plus ~10 min for the copy into PostgreSQL).
"""

from __future__ import annotations

import time
from typing import Any

import _common as common
import _ops_data as data


def _pages() -> list[tuple[str, str]]:
    bot, busy = data.BOT, data.channel_id(data.CHANNELS - 1)
    dm = data.channel_id(0)
    session = data.session_id(data.CHANNELS - 1, 7)
    return [
        ("baseline: empty response", "/favicon.ico"),
        ("bots (index)", "/"),
        ("bot: channels and DMs, page 1", f"/bot?bot={bot}"),
        ("bot: channels and DMs, page 10", f"/bot?bot={bot}&page=10"),
        ("channel: sessions", f"/channel?bot={bot}&channel={busy}"),
        ("DM: sessions", f"/channel?bot={bot}&channel={dm}"),
        ("transcript, 100 messages", f"/session?bot={bot}&channel={busy}&session={session}"),
        ("user across channels, page 1", f"/user?bot={bot}&user=700007"),
        ("user across channels, page 20", f"/user?bot={bot}&user=700007&page=20"),
        ("message link (redirect)", f"/message?bot={bot}&id={10**15 + 5 * 100 + 42}"),
    ]


def _measure(url: str, requests: int) -> list[dict[str, Any]]:
    from starlette.testclient import TestClient

    from convostore.web import create_app

    config = common.bot_config(url, data.BOT)
    pages = _pages()
    times: list[list[float]] = [[] for _ in pages]
    with TestClient(create_app([config]), follow_redirects=False) as client:
        for _label, path in pages:  # untimed: opens the connections, fills the caches
            response = client.get(path)
            assert response.status_code in (200, 204, 303), (path, response.status_code)
        for _ in range(requests):
            for i, (_label, path) in enumerate(pages):
                started = time.perf_counter()
                client.get(path)
                times[i].append(time.perf_counter() - started)
    return [
        {"page": label, "path": path, **common.summary(t)}
        for (label, path), t in zip(pages, times, strict=True)
    ]


def _filled_postgres(source: str, url: str) -> None:
    """``url`` holds the file's messages: copied now, or by an earlier --keep-postgres run."""
    import asyncio

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from convostore.ops.copy import copy_bots

    engine = create_engine(make_url(url).set(drivername="postgresql+psycopg"))
    with engine.connect() as connection:
        stored = connection.execute(text("SELECT count(*) FROM conversations")).scalar_one()
    engine.dispose()
    if stored != data.CHANNELS * data.SESSIONS_PER_CHANNEL * data.PER_SESSION:
        started = time.perf_counter()
        asyncio.run(copy_bots(f"sqlite:///{source}", url, [data.BOT]))
        print(f"  copied into PostgreSQL in {time.perf_counter() - started:.0f} s", flush=True)
    engine = create_engine(make_url(url).set(drivername="postgresql+psycopg"))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE"))
    engine.dispose()


def main() -> None:
    p = common.parser(__doc__ or "")
    p.add_argument("--requests", type=int, default=1000, help="requests per page (default 1000)")
    p.add_argument(
        "--keep-postgres", action="store_true", help="keep the filled PostgreSQL database"
    )
    args = p.parse_args()
    source = data.sqlite_file()
    results: dict[str, Any] = {
        "messages": data.CHANNELS * data.SESSIONS_PER_CHANNEL * data.PER_SESSION,
        "requests_per_page": args.requests,
    }
    for backend in common.backends(args):
        if backend == "sqlite":
            results[backend] = _measure(f"sqlite+aiosqlite:///{source}", args.requests)
        else:
            keep = (
                f"convostore_bench_viewer_{common.SCHEMA_CACHE.name}"
                if args.keep_postgres
                else None
            )
            with common.postgres_database("viewer", keep_name=keep) as (url, _plain):
                _filled_postgres(source, url)
                results[backend] = _measure(url, args.requests)
        base = results[backend][0]["p50_ms"]
        load = common.load_average()
        print(
            f"\n{backend}, {results['messages']:,} messages, {args.requests} requests per page,"
            f" load average {load:.1f}"
        )
        print(
            common.table(
                ["page", "p50 ms", "p99 ms", "p50 / baseline"],
                [
                    [r["page"], r["p50_ms"], r["p99_ms"], r["p50_ms"] / base]
                    for r in results[backend]
                ],
            ),
            flush=True,
        )
    common.write_results("viewer", results)


if __name__ == "__main__":
    main()
