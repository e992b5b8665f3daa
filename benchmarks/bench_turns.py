"""Turns: an agent's whole turn stored by one ``add_items(list)`` call, adapter against the SDK.

An OpenAI Agents SDK ``Runner`` hands a session all the items of a turn at once (the input, the
tool calls and their outputs, the answer). ``--turns`` calls of ``--items`` items each, round-robin
over ``--channels`` conversations, into empty files: convostore's ``ConvostoreSession.add_items``
(one all-or-nothing ``add_messages`` write per call) against the SDK's ``SQLiteSession.add_items``
(one transaction per call), both at the same ``PRAGMA synchronous`` (``--synchronous normal,full``,
set for the SDK as ``bench_peers.py`` does). Connections are opened before the timer (an untimed
call first); the rate is items per second; ``adapter_x`` is the adapter's rate over the SDK's.
Afterwards every conversation is read back and must hold its items in order.

    .venv/bin/python benchmarks/bench_turns.py [--turns 1000] [--items 4] [--channels 100]
        [--synchronous normal,full]
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import _common as common
import bench_peers


def turns(count: int, items: int, channels: int) -> list[tuple[int, list[dict[str, Any]]]]:
    """``(conversation, items)`` per call: a user message, tool call and output pairs, an answer."""
    calls = []
    for t in range(count):
        turn: list[dict[str, Any]] = [{"role": "user", "content": f"question {t}: what now?"}]
        for n in range((items - 2) // 2):
            call_id = f"call_{t}_{n}"
            turn.append(
                {
                    "type": "function_call",
                    "call_id": call_id,
                    "name": "lookup",
                    "arguments": '{"q": "weather"}',
                    "id": f"fc_{t}_{n}",
                }
            )
            turn.append({"type": "function_call_output", "call_id": call_id, "output": "sunny"})
        while len(turn) < items:
            turn.append({"role": "assistant", "content": f"answer {t}: " + "lorem ipsum " * 8})
        calls.append((t % channels, turn[:items]))
    return calls


async def run_sdk(path: Path, calls: list[Any], synchronous: str) -> tuple[common.Timer, bool]:
    session_class = bench_peers.openai_session_class(synchronous)
    sessions = {c: session_class(f"channel-{c}", path) for c in {c for c, _ in calls}}
    warm = session_class("warm", path)
    await warm.add_items([{"role": "user", "content": "warm"}])  # untimed: opens the connection
    timer = await _timed_calls(sessions, calls)
    ok = await _all_stored(sessions, calls)
    for session in [*sessions.values(), warm]:
        session.close()
    return timer, ok


async def run_adapter(path: Path, calls: list[Any], synchronous: str) -> tuple[common.Timer, bool]:
    from convostore import BotStore, ChannelInfo
    from convostore.integrations.openai_agents import ConvostoreSession

    config = common.bot_config(common.sqlite_database(path), synchronous=synchronous)
    async with BotStore.open(config) as store:
        sessions = {
            c: ConvostoreSession(store, ChannelInfo.channel(channel_id=c + 2, name="c"))
            for c in {c for c, _ in calls}
        }
        warm = ConvostoreSession(store, ChannelInfo.channel(channel_id=1, name="warm"))
        await warm.add_items([{"role": "user", "content": "warm"}])  # untimed
        timer = await _timed_calls(sessions, calls)
        ok = await _all_stored(sessions, calls)
    return timer, ok


async def _timed_calls(sessions: dict[int, Any], calls: list[Any]) -> common.Timer:
    """One timed ``add_items`` per call, on the conversation's session."""
    timer = common.Timer()
    for channel, items in calls:
        start = time.perf_counter()
        await sessions[channel].add_items(items)
        timer.latencies.append(time.perf_counter() - start)
    timer.stop()
    return timer


async def _all_stored(sessions: dict[int, Any], calls: list[Any]) -> bool:
    expected: dict[int, list[dict[str, Any]]] = {c: [] for c in sessions}
    for channel, items in calls:
        expected[channel].extend(items)
    for channel, session in sessions.items():
        if await session.get_items() != expected[channel]:
            return False
    return True


async def main() -> None:
    p = common.parser(__doc__ or "")
    p.add_argument("--turns", type=int, default=1000, help="add_items calls")
    p.add_argument("--items", type=int, default=4, help="items per call (a turn)")
    p.add_argument("--channels", type=int, default=100, help="conversations")
    p.add_argument("--synchronous", default="normal,full")
    args = p.parse_args()
    missing = bench_peers.available()["openai SQLiteSession"]
    if missing is not None:
        print(f"openai SQLiteSession: {missing}: nothing to compare")
        return
    calls = turns(args.turns, args.items, args.channels)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(dir=common.RESULTS) as tmp:
        for level in common.synchronous_levels(args.synchronous):
            sdk, sdk_ok = await run_sdk(Path(tmp) / f"sdk-{level}.db", calls, level)
            ours, ours_ok = await run_adapter(Path(tmp) / f"ours-{level}.db", calls, level)
            for who, timer, ok in (
                ("convostore ConvostoreSession", ours, ours_ok),
                ("openai SQLiteSession", sdk, sdk_ok),
            ):
                rows.append(
                    {
                        "synchronous": level,
                        "contender": who,
                        "calls": len(timer.latencies),
                        "items_per_s": timer.rate * args.items,
                        **common.summary(timer.latencies),
                        "adapter_x": ours.rate / sdk.rate if who.startswith("convostore") else 1.0,
                        "all_stored_in_order": ok,
                    }
                )
            print(f"  done: {level}", flush=True)
    headers = ["synchronous", "contender", "calls", "items_per_s", "p50_ms", "p99_ms", "adapter_x"]
    headers.append("all_stored_in_order")
    print(
        f"\nadd_items of {args.items} items per call, {args.turns:,} calls over"
        f" {args.channels:,} conversations, SQLite"
    )
    print(common.table(headers, [[r[h] for h in headers] for r in rows]))
    common.write_results(
        "turns",
        {"turns": args.turns, "items": args.items, "channels": args.channels, "rows": rows},
    )


if __name__ == "__main__":
    common.RESULTS.mkdir(parents=True, exist_ok=True)
    asyncio.run(main())
