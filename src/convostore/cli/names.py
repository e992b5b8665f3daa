"""``convostore resolve-names``: Discord's names for the placeholders of imported legacy rows."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from convostore.cli import _ui, selected_configs
from convostore.config import BotConfig
from convostore.legacy.names import (
    NameResolution,
    NamesClient,
    discord_client,
    discord_token,
    resolve_names,
)

ClientFactory = Callable[[str, str], AbstractAsyncContextManager[NamesClient]]


def _real_client(token: str, token_env: str) -> AbstractAsyncContextManager[NamesClient]:
    return discord_client(token, token_env=token_env)


client_factory: ClientFactory = _real_client
"""Opens the Discord client from ``(token, name of its variable)``; tests put a stand-in here."""

_REASONS = {"not_found": "not found", "forbidden": "forbidden", "failed": "failed"}


def _shown(name: str) -> Text:
    # Names come from Discord users: no rich markup, and invisible or control characters
    # (right-to-left overrides, zero-width spaces) shown as escapes rather than acted upon.
    return Text("".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in name), no_wrap=False)


async def _resolve(
    config: BotConfig, token: str, dry_run: bool, progress: Callable[[int, int], None]
) -> NameResolution:
    async with client_factory(token, config.legacy.token_env) as client:
        return await resolve_names(config, client, dry_run=dry_run, progress=progress)


def _print_changes(console: Console, result: NameResolution) -> None:
    table = _ui.table(
        "kind", "id", "new name", "type", "rows", title=f"{result.bot_name}: would change"
    )
    table.columns[4].justify = "right"
    for change in result.changes:
        table.add_row(
            change.kind,
            change.id,
            _shown(change.name),
            change.channel_type or "",
            str(change.rows),
        )
    console.print(table)


def _print_summary(console: Console, results: list[NameResolution]) -> None:
    table = _ui.table("", *(result.bot_name for result in results))
    for column in table.columns[1:]:
        column.justify = "right"
    lines: list[tuple[str, Callable[[NameResolution], int]]] = [
        ("channels renamed", lambda r: r.channels_renamed),
        ("DMs found", lambda r: r.dms_found),
        ("users renamed", lambda r: r.users_renamed),
        ("rows changed", lambda r: r.rows_changed),
        ("not found", lambda r: r.not_found),
        ("forbidden", lambda r: r.forbidden),
        ("failed", lambda r: r.failed),
        ("Discord lookups", lambda r: r.lookups),
        ("rate-limit waits", lambda r: r.rate_limit_waits),
    ]
    for label, value in lines:
        table.add_row(label, *(str(value(r)) for r in results))
    console.print(table)


def cmd_resolve_names(args: argparse.Namespace) -> int:
    console = _ui.console()
    configs = selected_configs(args)
    # Every token is checked before the first lookup, so a missing one changes nothing.
    tokens = {config.name: discord_token(config) for config in configs}
    results: list[NameResolution] = []
    for config in configs:
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as progress:
            task = progress.add_task(f"{config.name}: asking Discord", total=None)

            def advance(done: int, total: int, task: Any = task, bar: Progress = progress) -> None:
                bar.update(task, completed=done, total=total)

            result = asyncio.run(_resolve(config, tokens[config.name], args.dry_run, advance))
        results.append(result)
        if args.dry_run and result.changes:
            _print_changes(console, result)
        for unresolved in result.unresolved:
            console.print(
                f"{config.name}: {unresolved.kind} {unresolved.id} keeps its placeholder: "
                f"{_REASONS[unresolved.reason]} ({unresolved.detail})",
                markup=False,
                highlight=False,
            )
    _print_summary(console, results)
    if args.dry_run:
        console.print("dry run: nothing was written")
    return 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "resolve-names",
        help="replace placeholder channel names and usernames of imported rows, from Discord",
        description="Replace the placeholder names (channel-<id>, user-<id>) of imported rows "
        "with Discord's names; the bot token comes from the variable named by legacy.token_env.",
        epilog="Example:\n  DISCORD_TOKEN=... convostore resolve-names --bot sage --dry-run",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="ask Discord and show what would change; write nothing",
    )
    parser.set_defaults(handler=cmd_resolve_names)
