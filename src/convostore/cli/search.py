"""``convostore search``: full-text search of the configured bots' messages."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
from typing import Any

from rich.markup import escape

from convostore.cli import _ui, selected_configs
from convostore.config import BotConfig
from convostore.records import SearchHit

_EPILOG = """\
Words must all appear (any case); "quoted phrases" must appear as written. Other characters are
text, never search operators.

Example:
  convostore search '"release date" beta' --bot sage --channel 1184467351234 --json
"""


async def _search(
    configs: list[BotConfig], query: str, channel: str | None, limit: int
) -> list[tuple[str, SearchHit]]:
    from convostore.store import BotStore

    found: list[tuple[str, SearchHit]] = []
    for config in configs:
        async with BotStore.open(config) as store:
            hits = await store.search(query, channel=channel, limit=limit)
        found.extend((config.name, hit) for hit in hits)
    return found


def _document(query: str, found: list[tuple[str, SearchHit]]) -> dict[str, Any]:
    return {
        "query": query,
        "hits": [
            {
                "bot": bot,
                "rank": hit.rank,
                "snippet": hit.snippet,
                "message": dataclasses.asdict(hit.message),
            }
            for bot, hit in found
        ],
    }


def cmd_search(args: argparse.Namespace) -> int:
    configs = selected_configs(args)
    found = asyncio.run(_search(configs, args.query, args.channel, args.limit))
    if args.json:
        _ui.emit_json(_document(args.query, found))
        return 0
    console = _ui.console()
    if not found:
        console.print("no messages found")
        return 0
    table = _ui.table("bot", "when (UTC)", "channel", "user", "message")
    for bot, hit in found:
        message = hit.message
        table.add_row(
            escape(bot),
            message.timestamp.strftime("%Y-%m-%d %H:%M"),
            escape(f"#{message.channel_name} ({message.channel_id})"),
            escape(message.username if message.role == "user" else message.role),
            escape(hit.snippet),
        )
    console.print(table)
    return 0


def register(subparsers: Any) -> None:
    search = subparsers.add_parser(
        "search",
        help="full-text search of stored messages (words and quoted phrases)",
        description="Find stored messages containing every word and quoted phrase of QUERY.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    search.add_argument("query", metavar="QUERY", help='words and "quoted phrases"')
    search.add_argument("--channel", metavar="ID", default=None, help="only this channel id")
    search.add_argument(
        "--limit", type=int, default=20, help="at most this many messages per bot (default 20)"
    )
    _ui.add_json_option(search)
    search.set_defaults(handler=cmd_search)
