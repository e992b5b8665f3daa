"""Operator commands; each calls one function of ``convostore.ops`` and prints the result."""

from __future__ import annotations

import argparse
import asyncio
import functools
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from convostore.cli import selected_configs
from convostore.config import BotConfig
from convostore.errors import OperationError
from convostore.ops.backup import Verification, backup_bot, restore_sqlite, verify_sqlite
from convostore.ops.retention import SpaceReclaimed, cleanup, close_sessions, parse_age


def _by_database(configs: list[BotConfig]) -> dict[str, BotConfig]:
    """One config per distinct database: bots sharing a file are backed up once."""
    seen: dict[str, BotConfig] = {}
    for config in configs:
        if config.storage.enabled:
            seen.setdefault(config.database_url, config)
    return seen


def _print_verification(console: Console, result: Verification) -> None:
    console.print(f"[bold]{result.path}[/]")
    table = Table(show_edge=False)
    table.add_column("bot")
    table.add_column("messages", justify="right")
    table.add_column("sessions", justify="right")
    for bot in sorted(set(result.messages_per_bot) | set(result.sessions_per_bot)):
        table.add_row(
            bot, str(result.messages_per_bot.get(bot, 0)), str(result.sessions_per_bot.get(bot, 0))
        )
    console.print(table)
    console.print(f"integrity: {result.integrity}   schema revision: {result.revision}")


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


def cmd_backup(args: argparse.Namespace) -> int:
    console = Console()
    for config in _by_database(selected_configs(args)).values():
        with _progress(console) as progress:
            task = progress.add_task(f"backing up {config.safe_database_url}", total=None)

            def copied(pages: int, total: int, task: TaskID = task) -> None:
                progress.update(task, completed=pages, total=total)
                if pages >= total:
                    progress.update(task, description="verifying the copy (integrity_check)")
                    progress.update(task, total=None)

            result = backup_bot(config, progress=copied)
        console.print(f"[green]backup written[/]: {result.path}")
        if result.verification is not None:
            _print_verification(console, result.verification)
        for old in result.removed:
            console.print(f"rotated out: {old}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    console = Console()
    if args.file is not None:
        paths = [args.file]
    else:
        paths = []
        for config in _by_database(selected_configs(args)).values():
            if config.sqlite_path is None:
                console.print(f"{config.safe_database_url}: PostgreSQL is checked by `doctor`")
            else:
                paths.append(config.sqlite_path)
    failed = False
    for path in paths:
        with _progress(console) as progress:
            progress.add_task(f"verifying {path} (integrity_check)", total=None)
            result = verify_sqlite(path)
        _print_verification(console, result)
        for problem in result.problems:
            console.print(f"[red]problem[/]: {problem}")
            failed = True
    if failed:
        raise OperationError("verification failed")
    console.print("[green]verified[/]")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    console = Console()
    targets = [
        c for c in _by_database(selected_configs(args)).values() if c.sqlite_path is not None
    ]
    paths = sorted({str(c.sqlite_path) for c in targets})
    if len(paths) != 1:
        raise OperationError(
            "restore needs exactly one SQLite database; choose it with --bot"
            if paths
            else "no SQLite database configured (restore a PostgreSQL dump with pg_restore)"
        )
    database = Path(paths[0])
    console.print("Stop every bot that uses this database before restoring.")
    safety = restore_sqlite(args.file, database)
    if safety is not None:
        console.print(f"safety copy of the previous database: {safety}")
    console.print(f"[green]restored[/] {database} from {args.file}")
    return 0


def cmd_cleanup(args: argparse.Namespace) -> int:
    console = Console()
    older_than = parse_age(args.older_than) if args.older_than else None
    for config in selected_configs(args):
        if not config.storage.enabled:
            continue
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task(f"{config.name}: deleting sessions", total=None)
            result = asyncio.run(
                cleanup(
                    config,
                    older_than=older_than,
                    dry_run=args.dry_run,
                    progress=functools.partial(progress.advance, task),
                    vacuum=args.vacuum,
                )
            )
        cutoffs = ", ".join(
            f"{kind} before {at:%Y-%m-%d %H:%M} UTC" if at else f"{kind} kept"
            for kind, at in result.cutoffs.items()
        )
        if args.dry_run:
            console.print(f"[bold]{config.name}[/]: would delete ({cutoffs})")
            table = Table(show_edge=False)
            for column in ("type", "channel", "session", "last activity", "messages"):
                table.add_column(column)
            for d in result.doomed:
                table.add_row(
                    d.channel_type,
                    d.channel_id,
                    d.session_id,
                    f"{d.last_activity:%Y-%m-%d %H:%M}",
                    str(d.message_count),
                )
            console.print(table)
            console.print(
                f"{config.name}: would delete {result.sessions} sessions, "
                f"{result.messages} messages (dry run, nothing deleted)"
            )
        else:
            console.print(
                f"{config.name}: deleted {result.sessions} sessions, "
                f"{result.messages} messages ({cutoffs})"
            )
            if result.space is not None:
                _print_space(console, config.name, result.space)
    return 0


def _print_space(console: Console, bot: str, space: SpaceReclaimed) -> None:
    if space.bytes_before is None or space.bytes_after is None:
        console.print(f"{bot}: {space.method} done")
        return
    sizes = f"{space.bytes_before / 1e6:.1f} MB -> {space.bytes_after / 1e6:.1f} MB"
    if space.method == "none":
        console.print(
            f"{bot}: database file {sizes}: the file was created without auto_vacuum, so it "
            "keeps its size (freed pages are reused); stop the bots and run "
            "`convostore cleanup --vacuum` once to shrink it"
        )
    else:
        console.print(f"{bot}: database file {sizes} ({space.method})")


def cmd_close_sessions(args: argparse.Namespace) -> int:
    console = Console()
    for config in selected_configs(args):
        if config.storage.enabled:
            closed = asyncio.run(close_sessions(config))
            console.print(f"{config.name}: closed {closed} expired sessions")
    return 0


def register(subparsers: Any) -> None:
    backup = subparsers.add_parser("backup", help="verified backup of each bot's database")
    backup.set_defaults(handler=cmd_backup)
    verify = subparsers.add_parser("verify", help="check a backup file or the live databases")
    verify.add_argument("file", nargs="?", type=Path, default=None, help="backup file")
    verify.set_defaults(handler=cmd_verify)
    restore = subparsers.add_parser(
        "restore", help="replace a SQLite database with a verified backup (stop the bots first)"
    )
    restore.add_argument("file", type=Path, help="backup file to restore")
    restore.set_defaults(handler=cmd_restore)
    clean = subparsers.add_parser(
        "cleanup", help="delete sessions older than --older-than, or the YAML retention"
    )
    clean.add_argument("--older-than", default=None, metavar="AGE", help="e.g. 90d, 12h, 2w")
    clean.add_argument("--dry-run", action="store_true", help="list what would go, delete nothing")
    clean.add_argument(
        "--vacuum",
        action="store_true",
        help="then rewrite the SQLite file with VACUUM (stop the bots; needs free disk space "
        "the size of the file); PostgreSQL: VACUUM ANALYZE",
    )
    clean.set_defaults(handler=cmd_cleanup)
    close = subparsers.add_parser("close-sessions", help="close sessions past their gap/timeout")
    close.set_defaults(handler=cmd_close_sessions)
