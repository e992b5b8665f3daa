"""``convostore export``, ``browse`` and ``stats``: thin wrappers over ``convostore.ops``."""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from convostore.cli import selected_configs
from convostore.errors import OperationError
from convostore.ops.browse import (
    BotStats,
    ChannelSummary,
    bot_stats,
    human_age,
    human_size,
    list_channels,
    list_sessions,
    session_transcript,
)
from convostore.ops.export import FORMATS, author, export_bot, parse_since, visible

# Long names would otherwise stretch or wrap the tables; the full name is in the export.
_NAME_WIDTH = 24


def _when(at: datetime | None) -> str:
    return "-" if at is None else f"{at:%Y-%m-%d %H:%M}"


def _span(first: datetime | None, last: datetime | None) -> str:
    if first is None or last is None:
        return "-"
    end = f"{last:%H:%M}" if first.date() == last.date() else _when(last)
    return f"{_when(first)} → {end}"


def _short(text: str) -> str:
    flat = " ".join(visible(text).split()) or "(no name)"
    return escape(flat if len(flat) <= _NAME_WIDTH else flat[: _NAME_WIDTH - 1] + "…")


class _DelayedProgress:
    """A progress bar that appears only once the work has taken more than a second."""

    def __init__(self, console: Console, label: str) -> None:
        self.console = console
        self.label = label
        self.started = time.monotonic()
        self.progress: Progress | None = None
        self.task: Any = None

    def __call__(self, sessions: int, messages: int, total: int) -> None:
        if self.progress is None:
            if not self.console.is_terminal or time.monotonic() - self.started < 1.0:
                return
            self.progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("sessions, {task.fields[messages]:,} messages"),
                TimeElapsedColumn(),
                console=self.console,
                transient=True,
            )
            self.progress.start()
            self.task = self.progress.add_task(self.label, total=total, messages=0)
        self.progress.update(self.task, completed=sessions, messages=messages)

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()


def cmd_export(args: argparse.Namespace) -> int:
    console = Console(emoji=False)
    since = parse_since(args.since) if args.since else None
    for config in selected_configs(args):
        bar = _DelayedProgress(console, f"{config.name}: exporting")
        started = time.perf_counter()
        try:
            result = asyncio.run(
                export_bot(config, args.out, fmt=args.format, since=since, progress=bar)
            )
        finally:
            bar.stop()
        console.print(
            f"{config.name}: {result.files:,} session files in {result.channels:,} channels "
            f"({result.sessions_written:,} written, {result.sessions_unchanged:,} unchanged), "
            f"{result.messages:,} messages in {time.perf_counter() - started:.1f} s "
            f"-> {escape(str(result.directory))}",
            soft_wrap=True,
        )
    return 0


def _days(first: datetime | None, last: datetime | None) -> str:
    """A compact span: the day and hours when both ends fall on one day, else the two days."""
    if first is None or last is None:
        return "-"
    if first.date() == last.date():
        return f"{first:%Y-%m-%d %H:%M}-{last:%H:%M}"
    return f"{first:%Y-%m-%d} → {last:%Y-%m-%d}"


def _print_channels(console: Console, bot: str, channels: list[ChannelSummary]) -> None:
    if not channels:
        console.print(f"[bold]{escape(bot)}[/]: no conversations stored")
        return
    for kind, title in (("channel", "channels"), ("dm", "DMs")):
        chosen = [c for c in channels if c.type == kind]
        if not chosen:
            continue
        console.print(f"[bold]{escape(bot)}[/] {title} ({len(chosen)})")
        table = Table(show_edge=False)
        table.add_column("name", max_width=_NAME_WIDTH, overflow="ellipsis", no_wrap=True)
        table.add_column("id", no_wrap=True)
        table.add_column("sessions", justify="right")
        table.add_column("messages", justify="right")
        table.add_column("active (UTC)", no_wrap=True)
        for c in chosen:
            table.add_row(
                _short(c.name),
                c.channel_id,
                f"{c.sessions:,}",
                f"{c.messages:,}",
                _days(c.first_message, c.last_message),
            )
        console.print(table)


def cmd_browse(args: argparse.Namespace) -> int:
    console = Console(emoji=False)
    configs = selected_configs(args)
    if args.session is not None:
        if len(configs) > 1:
            raise OperationError("--session needs --bot when several bots are configured")
        transcript = asyncio.run(session_transcript(configs[0], args.session, args.channel))
        channel, session = transcript.channel, transcript.session
        state = "open" if session.is_active else "closed"
        console.print(
            f"[bold]{escape(configs[0].name)}[/] {channel.type} {_short(channel.name)} "
            f"({channel.channel_id}), session {escape(session.session_id)}: "
            f"{session.messages} messages, {_span(session.first_message, session.last_message)}"
            f" UTC, {state}",
            soft_wrap=True,
        )
        for message in transcript.messages:
            who = author(
                {"username": message.username, "role": message.role, "user_id": message.user_id},
                configs[0].name,
            )
            console.print(
                f"[dim]{message.timestamp:%Y-%m-%d %H:%M:%S}[/] [bold]{_short(who)}[/] "
                f"[dim]({message.role})[/]"
            )
            console.print(visible(message.content), markup=False, highlight=False)
        return 0
    for config in configs:
        if args.channel is None:
            _print_channels(console, config.name, asyncio.run(list_channels(config)))
            continue
        channel, sessions = asyncio.run(list_sessions(config, args.channel))
        console.print(
            f"[bold]{escape(config.name)}[/] {channel.type} {_short(channel.name)} "
            f"({channel.channel_id}, folder {escape(channel.safe_name)})"
        )
        table = Table(show_edge=False)
        for column in ("session", "state", "messages", "first → last message (UTC)"):
            table.add_column(column, justify="right" if column == "messages" else "left")
        for s in sessions:
            table.add_row(
                escape(s.session_id),
                "open" if s.is_active else "closed",
                f"{s.messages:,}",
                _span(s.first_message, s.last_message),
            )
        console.print(table)
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    console = Console(emoji=False)
    everything = [asyncio.run(bot_stats(config)) for config in selected_configs(args)]
    # One column per bot: a handful of bots fit in 80 columns, the long dates do not fit in rows.
    table = Table(show_edge=False)
    table.add_column("")
    for stats in everything:
        table.add_column(escape(stats.bot_name), justify="right", no_wrap=True)

    def row(label: str, values: list[str]) -> None:
        table.add_row(label, *values)

    row("messages", [f"{s.messages:,}" for s in everything])
    row("channels", [f"{s.channels:,}" for s in everything])
    row("DMs", [f"{s.dms:,}" for s in everything])
    row("open sessions", [f"{s.sessions_active:,}" for s in everything])
    row("closed sessions", [f"{s.sessions_closed:,}" for s in everything])
    row("first activity (UTC)", [_when(s.first_activity) for s in everything])
    row("last activity (UTC)", [_when(s.last_activity) for s in everything])
    console.print(table)

    databases: dict[str, list[BotStats]] = {}
    for stats in everything:
        databases.setdefault(stats.database.url, []).append(stats)
    for url, sharing in databases.items():
        db = sharing[0].database
        size = human_size(db.size_bytes)
        if db.backend == "sqlite":
            size += f", WAL {human_size(db.wal_bytes)}"
        else:
            size += " (" + ", ".join(f"{t} {human_size(n)}" for t, n in db.tables.items()) + ")"
        bots = ", ".join(s.bot_name for s in sharing)
        console.print(f"[bold]database[/] {escape(url)} ({escape(bots)}): {size}", soft_wrap=True)
        backup = sharing[0].backup
        if backup is None:
            console.print("  [yellow]no backup found[/]")
        else:
            kind = "verified backup" if backup.verified else "backup (not verified)"
            console.print(
                f"  newest {kind}: {human_age(backup.age)} old, {escape(str(backup.path))}",
                soft_wrap=True,
            )
    return 0


def register(subparsers: Any) -> None:
    export = subparsers.add_parser(
        "export",
        help="write conversations to DIR/{bot}/channels|dms/{channel}/{session}.json or .md",
    )
    export.add_argument("--out", type=Path, required=True, metavar="DIR", help="export directory")
    export.add_argument(
        "--format", choices=FORMATS, default="json", help="json (default) or markdown transcripts"
    )
    export.add_argument(
        "--since",
        default=None,
        metavar="DATE",
        help="only sessions active on or after DATE (ISO date or datetime, UTC)",
    )
    export.set_defaults(handler=cmd_export)
    browse = subparsers.add_parser(
        "browse", help="list channels and DMs, a channel's sessions, or a session's transcript"
    )
    browse.add_argument("--channel", default=None, help="channel name, folder name or id")
    browse.add_argument("--session", default=None, metavar="ID", help="print this transcript")
    browse.set_defaults(handler=cmd_browse)
    stats = subparsers.add_parser(
        "stats", help="messages, channels, sessions, activity, database size, last backup"
    )
    stats.set_defaults(handler=cmd_stats)
