"""Two writer processes racing on one channel, at the same instant or 1 ms apart.

Each round both processes wait at a barrier, then store one message each in the same channel,
timestamped the round's instant (plus ``offset_ms`` for the second process). Rounds are 1,000 s
apart, more than the session gap, so every round is exactly one session: the later timestamp
often commits first, and the earlier message must still join that session.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.faults._db import scalar
from tests.faults.report import Outcome

T0 = datetime(2024, 1, 8, 14, 30, 0, tzinfo=UTC)
ROUND = timedelta(seconds=1000)


def _writer(
    db_url: str, worker: int, rounds: int, offset_ms: int, barrier: Any, results: Any
) -> None:
    from convostore import BotConfig, BotStore, ChannelInfo

    config = BotConfig.model_validate(
        {"name": "racer", "storage": {"url": db_url, "type": db_url.split("+")[0].split(":")[0]}},
        strict=False,
    )
    channel = ChannelInfo.channel(channel_id=1, name="race")

    async def main() -> tuple[int, list[str]]:
        acknowledged, errors = 0, []
        async with BotStore.open(config) as store:
            for i in range(rounds):
                at = T0 + i * ROUND + timedelta(milliseconds=offset_ms * worker)
                await asyncio.to_thread(barrier.wait, 60)
                try:
                    await store.add_message(
                        channel,
                        user_id=worker + 1,
                        username=f"w{worker}",
                        role="user",
                        content=f"{worker}:{i}",
                        message_id=worker * 1_000_000 + i + 1,
                        timestamp=at,
                    )
                    acknowledged += 1
                except Exception as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")
        return acknowledged, errors

    results.put((worker, *asyncio.run(main())))


def run(db_url: str, backend: str, *, rounds: int, offset_ms: int) -> Outcome:
    """Race two processes for ``rounds`` rounds; a wrong session count is a failure."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    results = context.Queue()
    outcome = Outcome(f"session race, {offset_ms} ms apart", backend, attempts=rounds)
    procs = [
        context.Process(target=_writer, args=(db_url, worker, rounds, offset_ms, barrier, results))
        for worker in range(2)
    ]
    for proc in procs:
        proc.start()
    reports = [results.get(timeout=300) for _ in procs]
    for proc in procs:
        proc.join(60)
    for _worker, acknowledged, errors in reports:
        outcome.acknowledged += acknowledged
        for error in errors:
            outcome.saw(error.split(":")[0])
            outcome.failures += 1
    stored = scalar(db_url, "SELECT count(*) FROM conversations WHERE bot_name = 'racer'")
    counted = scalar(db_url, "SELECT sum(message_count) FROM sessions WHERE bot_name = 'racer'")
    sessions = scalar(db_url, "SELECT count(*) FROM sessions WHERE bot_name = 'racer'")
    outcome.lost = max(0, outcome.acknowledged - stored)
    outcome.failures += abs(sessions - rounds)
    outcome.notes.append(f"{sessions} sessions for {rounds} rounds, {stored} messages")
    outcome.saw(f"{sessions} sessions / {rounds} rounds")
    if counted != stored:
        outcome.failures += 1
        outcome.notes.append(f"sessions count {counted} messages, {stored} stored")
    return outcome
