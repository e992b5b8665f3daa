"""Page times of ``convostore serve`` at 1M messages (SQLite, and PostgreSQL with --backends).

Each page is requested ``--requests`` times through the ASGI app in process (Starlette's test
client: no network, the full middleware, query and template path); the table gives the median and
p95 per page. Baseline, same run: ``/favicon.ico``, an empty response through the same stack, so
the ratio shows what the page's queries and rendering add. Target: every page under 100 ms.

Run: ``.venv/bin/python benchmarks/bench_viewer.py`` (builds the 1M-message file once).
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
    rows = []
    with TestClient(create_app([config]), follow_redirects=False) as client:
        for label, path in _pages():
            response = client.get(path)
            assert response.status_code in (200, 204, 303), (path, response.status_code)
            times = []
            for _ in range(requests):
                started = time.perf_counter()
                client.get(path)
                times.append(time.perf_counter() - started)
            rows.append(
                {
                    "page": label,
                    "path": path,
                    "p50": common.percentile(times, 0.5) * 1000,
                    "p95": common.percentile(times, 0.95) * 1000,
                }
            )
    return rows


def main() -> None:
    p = common.parser(__doc__ or "")
    p.set_defaults(backends="sqlite")
    p.add_argument("--requests", type=int, default=30)
    args = p.parse_args()
    source = data.sqlite_file()
    results: dict[str, Any] = {
        "messages": data.CHANNELS * data.SESSIONS_PER_CHANNEL * data.PER_SESSION
    }
    for backend in common.backends(args):
        if backend == "sqlite":
            results[backend] = _measure(f"sqlite+aiosqlite:///{source}", args.requests)
        else:
            import asyncio

            from convostore.ops.copy import copy_bots

            with common.postgres_database("viewer") as (url, _plain):
                asyncio.run(copy_bots(f"sqlite:///{source}", url, [data.BOT]))
                results[backend] = _measure(url, args.requests)
        base = results[backend][0]["p50"]
        print(f"\n{backend}, {results['messages']:,} messages, {args.requests} requests per page")
        print(
            common.table(
                ["page", "p50 ms", "p95 ms", "p50 / baseline"],
                [
                    [r["page"], f"{r['p50']:.1f}", f"{r['p95']:.1f}", f"{r['p50'] / base:.1f}"]
                    for r in results[backend]
                ],
            )
        )
    common.write_results("viewer", results)


if __name__ == "__main__":
    main()
