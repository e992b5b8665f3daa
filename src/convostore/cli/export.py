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

from convostore.cli import _ui, selected_configs
from convostore.config import BotConfig
from convostore.errors import OperationError
from convostore.ops.browse import (
    BotStats,
    ChannelSummary,
    SessionSummary,
    bot_stats,
    human_age,
    human_size,
    list_channels,
    list_sessions,
    session_transcript,
)
from convostore.ops.export import FORMATS, author, export_bot, parse_since, visible
from convostore.records import MESSAGE_FIELDS

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


def cmd_export(args: argparse.Namespace) -> int:
    console = _ui.console()
    if args.user is not None:
        from convostore.ops.user_data import export_user

        path, messages = asyncio.run(export_user(selected_configs(args), args.user, args.out))
        console.print(
            f"user {args.user}: {messages:,} messages -> {escape(str(path))}", soft_wrap=True
        )
        return 0
    since = parse_since(args.since) if args.since else None
    for config in selected_configs(args):
        started = time.perf_counter()
        with _ui.progress(f"{config.name}: exporting sessions") as bar:

            def exported(
                sessions: int, messages: int, total: int, bar: _ui.Bar = bar, bot: str = config.name
            ) -> None:
                bar.update(
                    sessions,
                    total=total,
                    description=f"{bot}: exporting sessions ({messages:,} messages)",
                )

            result = asyncio.run(
                export_bot(config, args.out, fmt=args.format, since=since, progress=exported)
            )
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
        table = _ui.table("name", "id", "sessions", "messages", "active (UTC)")
        for column in table.columns[2:4]:
            column.justify = "right"
        for c in chosen:
            table.add_row(
                _short(c.name),
                c.channel_id,
                f"{c.sessions:,}",
                f"{c.messages:,}",
                _days(c.first_message, c.last_message),
            )
        console.print(table)


def _channel_json(c: ChannelSummary) -> dict[str, Any]:
    return {
        "channel_id": c.channel_id,
        "name": c.name,
        "type": c.type,
        "safe_name": c.safe_name,
        "sessions": c.sessions,
        "messages": c.messages,
        "first_message": c.first_message,
        "last_message": c.last_message,
    }


def _session_json(s: SessionSummary) -> dict[str, Any]:
    return {
        "session_id": s.session_id,
        "channel_id": s.channel_id,
        "started_at": s.started_at,
        "last_activity": s.last_activity,
        "is_active": s.is_active,
        "messages": s.messages,
        "first_message": s.first_message,
        "last_message": s.last_message,
    }


def _browse_json(args: argparse.Namespace, configs: list[BotConfig]) -> None:
    if args.session is not None:
        transcript = asyncio.run(session_transcript(configs[0], args.session, args.channel))
        _ui.emit_json(
            {
                "bot": configs[0].name,
                "channel": _channel_json(transcript.channel),
                "session": _session_json(transcript.session),
                "messages": [
                    {f: getattr(m, f) for f in MESSAGE_FIELDS} for m in transcript.messages
                ],
            }
        )
        return
    bots: list[dict[str, Any]] = []
    for config in configs:
        if args.channel is None:
            channels = asyncio.run(list_channels(config))
            bots.append({"bot": config.name, "channels": [_channel_json(c) for c in channels]})
        else:
            channel, sessions = asyncio.run(list_sessions(config, args.channel))
            bots.append(
                {
                    "bot": config.name,
                    "channel": _channel_json(channel),
                    "sessions": [_session_json(s) for s in sessions],
                }
            )
    _ui.emit_json({"bots": bots})


def cmd_browse(args: argparse.Namespace) -> int:
    console = _ui.console()
    configs = selected_configs(args)
    if args.session is not None and len(configs) > 1:
        raise OperationError("--session needs --bot when several bots are configured")
    if args.json:
        _browse_json(args, configs)
        return 0
    if args.session is not None:
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
        table = _ui.table("session", "state", "messages", "first → last message (UTC)")
        table.columns[2].justify = "right"
        for s in sessions:
            table.add_row(
                escape(s.session_id),
                "open" if s.is_active else "closed",
                f"{s.messages:,}",
                _span(s.first_message, s.last_message),
            )
        console.print(table)
    return 0


def _stats_json(everything: list[BotStats]) -> dict[str, Any]:
    databases: dict[str, dict[str, Any]] = {}
    for s in everything:
        db = s.database
        entry = databases.setdefault(
            db.url,
            {
                "url": db.url,
                "backend": db.backend,
                "bots": [],
                "size_bytes": db.size_bytes,
                "wal_bytes": db.wal_bytes,
                "tables": db.tables,
                "backup": None
                if s.backup is None
                else {
                    "path": s.backup.path,
                    "created_at": s.backup.created_at,
                    "age_seconds": round(s.backup.age.total_seconds()),
                    "verified": s.backup.verified,
                },
            },
        )
        entry["bots"].append(s.bot_name)
    return {
        "bots": [
            {
                "bot": s.bot_name,
                "database": s.database.url,
                "messages": s.messages,
                "channels": s.channels,
                "dms": s.dms,
                "sessions_open": s.sessions_active,
                "sessions_closed": s.sessions_closed,
                "first_activity": s.first_activity,
                "last_activity": s.last_activity,
            }
            for s in everything
        ],
        "databases": list(databases.values()),
    }


def cmd_stats(args: argparse.Namespace) -> int:
    console = _ui.console()
    configs = selected_configs(args)
    with _ui.progress("reading statistics", len(configs)) as bar:
        everything = []
        for config in configs:
            everything.append(asyncio.run(bot_stats(config)))
            bar.advance()
    if args.json:
        _ui.emit_json(_stats_json(everything))
        return 0
    # One column per bot: a handful of bots fit in 80 columns, the long dates do not fit in rows.
    table = _ui.table("", *(escape(stats.bot_name) for stats in everything))
    for column in table.columns[1:]:
        column.justify = "right"

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
        description="Write each bot's sessions as one JSON or Markdown file per session, for "
        "people to read; a rerun rewrites only what changed.",
        epilog="Examples:\n  convostore export --out exports --format markdown --since 2026-01-01\n"
        "  convostore export --user 123456789012345678 --out requests",
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
    export.add_argument(
        "--user",
        default=None,
        metavar="USER_ID",
        help="instead: write DIR/user-USER_ID.json, everything stored about that user",
    )
    export.set_defaults(handler=cmd_export)
    browse = subparsers.add_parser(
        "browse",
        help="list channels and DMs, a channel's sessions, or a session's transcript",
        description="List a bot's channels and DMs, one channel's sessions (--channel), or one "
        "session's transcript (--session).",
        epilog="Examples:\n  convostore browse --bot sage\n"
        "  convostore browse --bot sage --channel general --json\n"
        "  convostore browse --bot sage --session s-20261124-0001",
    )
    browse.add_argument("--channel", default=None, help="channel name, folder name or id")
    browse.add_argument("--session", default=None, metavar="ID", help="print this transcript")
    _ui.add_json_option(browse)
    browse.set_defaults(handler=cmd_browse)
    stats = subparsers.add_parser(
        "stats",
        help="messages, channels, sessions, activity, database size, last backup",
        description="Per bot: messages, channels, DMs, sessions, activity; per database: size "
        "and newest backup.",
        epilog="Example:\n  convostore stats --json",
    )
    _ui.add_json_option(stats)
    stats.set_defaults(handler=cmd_stats)
