"""Backfill: ``BotStore.add_messages`` against one ``add_message`` per message, same run.

A bot that joins a channel backfills its history: ``channel.history()`` yields newest first, older
than the few messages the channel already holds. The backfill stores ``--count`` messages (default
100,000) in one ``add_messages`` call (one transaction per 5,000) into a channel that already holds
100 newer live messages, in the order ``history()`` yields them. The baseline stores a sample of
the same messages (``--sample``, default 5,000) with one ``add_message`` call each, in time order
(the cheapest order for it), into a fresh database. Both rates are messages per second; the ratio
is backfill / baseline.

    .venv/bin/python benchmarks/bench_backfill.py [--count 100000] [--sample 5000]
        [--backends sqlite,postgresql]
"""

from __future__ import annotations

import asyncio
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


async def main() -> None:
    p = common.parser(__doc__ or "")
    p.add_argument("--count", type=int, default=100_000, help="messages backfilled")
    p.add_argument("--sample", type=int, default=5_000, help="messages of the baseline")
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
            else:
                with common.postgres_database("backfill_one") as (url, _):
                    single = await one_by_one(url, sample)
                with common.postgres_database("backfill_bulk") as (url, _):
                    bulk, sessions = await backfill(url, messages)
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
                }
            )
    headers = list(rows[0]) if rows else []
    print(f"\nbackfill of {args.count:,} messages (newest first, older than the channel)")
    print(common.table(headers, [[r[h] for h in headers] for r in rows]))
    common.write_results("backfill", {"count": args.count, "sample": args.sample, "rows": rows})


if __name__ == "__main__":
    common.RESULTS.mkdir(parents=True, exist_ok=True)
    asyncio.run(main())
