"""Operator commands; each calls one function of ``convostore.ops`` and prints the result."""

from __future__ import annotations

import argparse
import asyncio
import functools
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from convostore.cli import _ui, selected_configs
from convostore.config import BotConfig
from convostore.errors import ConvostoreError, OperationError
from convostore.ops.backup import (
    BackupResult,
    Verification,
    backup_bot,
    list_dump,
    newest_backup,
    verify_dump,
    verify_sqlite,
)
from convostore.ops.restore import restore_sqlite
from convostore.ops.retention import (
    CleanupResult,
    SpaceReclaimed,
    cleanup,
    close_sessions,
    doomed_sessions,
    parse_age,
)


def _by_database(configs: list[BotConfig]) -> dict[str, BotConfig]:
    """One config per distinct database: bots sharing a file are backed up once."""
    seen: dict[str, BotConfig] = {}
    for config in configs:
        if config.storage.enabled:
            seen.setdefault(config.database_url, config)
    return seen


def _print_verification(console: Console, result: Verification) -> None:
    console.print(f"[bold]{escape(str(result.path))}[/]", soft_wrap=True)
    table = _ui.table("bot", "messages", "sessions")
    for bot in sorted(set(result.messages_per_bot) | set(result.sessions_per_bot)):
        table.add_row(
            bot, str(result.messages_per_bot.get(bot, 0)), str(result.sessions_per_bot.get(bot, 0))
        )
    console.print(table)
    console.print(f"integrity: {escape(result.integrity)}   schema revision: {result.revision}")


def verification_json(result: Verification) -> dict[str, Any]:
    return {
        "path": result.path,
        "ok": result.ok,
        "integrity": result.integrity,
        "revision": result.revision,
        "messages_per_bot": result.messages_per_bot,
        "sessions_per_bot": result.sessions_per_bot,
        "problems": list(result.problems),
    }


def _backup_json(config: BotConfig, result: BackupResult) -> dict[str, Any]:
    return {
        "database": config.safe_database_url,
        "path": result.path,
        "manifest": result.manifest,
        "verification": None
        if result.verification is None
        else verification_json(result.verification),
        "removed": list(result.removed),
    }


def cmd_backup(args: argparse.Namespace) -> int:
    console = _ui.console()
    written: list[dict[str, Any]] = []
    for config in _by_database(selected_configs(args)).values():
        with _ui.progress(f"backing up {config.safe_database_url}") as bar:

            def copied(pages: int, total: int, bar: _ui.Bar = bar) -> None:
                if pages >= total:
                    bar.update(pages, total=total, description="verifying the copy")
                else:
                    bar.update(pages, total=total)

            result = backup_bot(config, progress=copied)
        if args.json:
            written.append(_backup_json(config, result))
            continue
        console.print(f"[green]backup written[/]: {escape(str(result.path))}", soft_wrap=True)
        if result.verification is not None:
            _print_verification(console, result.verification)
        for old in result.removed:
            console.print(f"rotated out: {escape(str(old))}", soft_wrap=True)
    if args.json:
        _ui.emit_json({"backups": written})
    return 0


def _is_dump(path: Path) -> bool:
    try:
        with path.open("rb") as file:
            return file.read(5) == b"PGDMP"
    except OSError:
        return False


def _verify_file(path: Path, args: argparse.Namespace) -> Verification:
    if not _is_dump(path):
        return verify_sqlite(path)
    try:
        configs = selected_configs(args)
    except ConvostoreError:
        configs = []  # no configuration at all: said below
    servers = [c for c in _by_database(configs).values() if c.sqlite_path is None]
    if not servers:
        entries = list_dump(path)
        raise OperationError(
            f"{path}: pg_restore --list read {len(entries)} entries, but the dump was NOT "
            "verified: no PostgreSQL bot is configured to restore it into (use --bot)"
        )
    return verify_dump(path, servers[0].database_url)


def cmd_verify(args: argparse.Namespace) -> int:
    console = _ui.console()
    skipped: list[dict[str, str]] = []
    jobs: list[tuple[str, Callable[[], Verification]]] = []
    if args.file is not None:
        jobs.append((f"verifying {args.file}", functools.partial(_verify_file, args.file, args)))
    else:
        for config in _by_database(selected_configs(args)).values():
            path = config.sqlite_path
            if path is not None:
                jobs.append(
                    (f"verifying {path} (integrity_check)", functools.partial(verify_sqlite, path))
                )
                continue
            # A PostgreSQL server checks its own pages; what needs verifying is its newest dump.
            dump = newest_backup(config, verified_first=False)
            if dump is None:
                raise OperationError(
                    f"{config.safe_database_url}: NOT verified: no dump of it in "
                    f"{config.storage.backups.dir}; run `convostore backup` first"
                )
            jobs.append(
                (
                    f"verifying {dump.path} (restore into a scratch database)",
                    functools.partial(verify_dump, dump.path, config.database_url),
                )
            )
    results: list[Verification] = []
    for description, job in jobs:
        with _ui.progress(description):
            result = job()
        results.append(result)
        if not args.json:
            _print_verification(console, result)
            for problem in result.problems:
                console.print(f"[red]problem[/]: {escape(problem)}", soft_wrap=True)
    failed = any(not r.ok or r.problems for r in results)
    if args.json:
        _ui.emit_json(
            {
                "ok": not failed,
                "files": [verification_json(r) for r in results],
                "skipped": skipped,
            }
        )
    if failed:
        raise OperationError("verification failed")
    if not args.json:
        console.print("[green]verified[/]")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    console = _ui.console()
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
    source = args.file
    if source is None:
        config = next(c for c in targets if str(c.sqlite_path) == paths[0])
        newest = newest_backup(config)
        if newest is None:
            raise OperationError(
                f"{database}: no backup of it in {config.storage.backups.dir}; name the FILE"
            )
        source = newest.path
    _ui.confirm(f"replace {database} (every bot using it) with {source}?", assume_yes=args.yes)
    safety = restore_sqlite(source, database)
    if safety is not None and ".corrupt-" in safety.name:
        console.print(
            f"the damaged database was kept aside as {escape(str(safety))}", soft_wrap=True
        )
    elif safety is not None:
        console.print(
            f"safety copy of the previous database: {escape(str(safety))}", soft_wrap=True
        )
    console.print(
        f"[green]restored[/] {escape(str(database))} from {escape(str(source))}", soft_wrap=True
    )
    return 0


def _cutoffs(result: CleanupResult) -> str:
    return ", ".join(
        f"{kind} before {at:%Y-%m-%d %H:%M} UTC" if at else f"{kind} kept"
        for kind, at in result.cutoffs.items()
    )


def _cleanup_json(result: CleanupResult) -> dict[str, Any]:
    return {
        "bot": result.bot_name,
        "dry_run": result.dry_run,
        "cutoffs": result.cutoffs,
        "sessions": result.sessions,
        "messages": result.messages,
        "doomed": [
            {
                "channel_type": d.channel_type,
                "channel_id": d.channel_id,
                "session_id": d.session_id,
                "last_activity": d.last_activity,
                "messages": d.message_count,
            }
            for d in result.doomed
        ],
        "space": None
        if result.space is None
        else {
            "method": result.space.method,
            "bytes_before": result.space.bytes_before,
            "bytes_after": result.space.bytes_after,
        },
    }


def cmd_cleanup(args: argparse.Namespace) -> int:
    console = _ui.console()
    older_than = parse_age(args.older_than) if args.older_than else None
    configs = [c for c in selected_configs(args) if c.storage.enabled]
    now = datetime.now(UTC)
    planned: dict[str, int] = {}
    if not args.dry_run:
        # One count per bot: the question says what will go, and the bar knows its total.
        planned = {
            c.name: asyncio.run(doomed_sessions(c, older_than=older_than, now=now)) for c in configs
        }
        age = f"older than {args.older_than}" if args.older_than else "past their retention"
        doomed = ", ".join(f"{name}: {n:,} sessions" for name, n in planned.items())
        extra = ", then VACUUM (stop the bots first)" if args.vacuum else ""
        _ui.confirm(
            f"delete the sessions {age} with their messages ({doomed}){extra}?",
            assume_yes=args.yes,
        )
    results: list[CleanupResult] = []
    for config in configs:
        with _ui.progress(f"{config.name}: deleting sessions", planned.get(config.name)) as bar:
            result = asyncio.run(
                cleanup(
                    config,
                    older_than=older_than,
                    dry_run=args.dry_run,
                    now=now,
                    progress=bar.advance,
                    vacuum=args.vacuum,
                )
            )
        results.append(result)
        if not args.json:
            _print_cleanup(console, result)
    if args.json:
        _ui.emit_json({"dry_run": args.dry_run, "bots": [_cleanup_json(r) for r in results]})
    return 0


def _print_cleanup(console: Console, result: CleanupResult) -> None:
    bot = escape(result.bot_name)
    if result.dry_run:
        console.print(f"[bold]{bot}[/]: would delete ({_cutoffs(result)})", soft_wrap=True)
        table = _ui.table("type", "channel", "session", "last activity", "messages")
        for d in result.doomed:
            table.add_row(
                d.channel_type,
                escape(d.channel_id),
                escape(d.session_id),
                f"{d.last_activity:%Y-%m-%d %H:%M}",
                str(d.message_count),
            )
        console.print(table)
        console.print(
            f"{bot}: would delete {result.sessions} sessions, "
            f"{result.messages} messages (dry run, nothing deleted)"
        )
        return
    console.print(
        f"{bot}: deleted {result.sessions} sessions, {result.messages} messages "
        f"({_cutoffs(result)})",
        soft_wrap=True,
    )
    if result.space is not None:
        _print_space(console, bot, result.space)


def _print_space(console: Console, bot: str, space: SpaceReclaimed) -> None:
    if space.bytes_before is None or space.bytes_after is None:
        console.print(f"{bot}: {space.method} done")
        return
    sizes = f"{space.bytes_before / 1e6:.1f} MB -> {space.bytes_after / 1e6:.1f} MB"
    if space.method == "none":
        console.print(
            f"{bot}: database file {sizes}: the file was created without auto_vacuum, so it "
            "keeps its size (freed pages are reused); stop the bots and run "
            "`convostore cleanup --vacuum` once to shrink it",
            soft_wrap=True,
        )
    else:
        console.print(f"{bot}: database file {sizes} ({space.method})", soft_wrap=True)


def cmd_close_sessions(args: argparse.Namespace) -> int:
    console = _ui.console()
    closed: list[dict[str, Any]] = []
    for config in selected_configs(args):
        if config.storage.enabled:
            count = asyncio.run(close_sessions(config))
            closed.append({"bot": config.name, "closed": count})
            if not args.json:
                console.print(f"{escape(config.name)}: closed {count} expired sessions")
    if args.json:
        _ui.emit_json({"bots": closed})
    return 0


def register(subparsers: Any) -> None:
    backup = subparsers.add_parser(
        "backup",
        help="verified backup of each bot's database",
        description="Copy each configured database once into storage.backups.dir, verify, rotate.",
        epilog="Example:\n  convostore backup --bot sage --json",
    )
    _ui.add_json_option(backup)
    backup.set_defaults(handler=cmd_backup)
    verify = subparsers.add_parser(
        "verify",
        help="check a backup file, the live SQLite databases, or the newest PostgreSQL dump",
        description="Check a backup file, each SQLite database, or each PostgreSQL database's "
        "newest dump (restored into a scratch database); exit 1 if one fails.",
        epilog="Examples:\n  convostore verify data/backups/conversations_2026-11-24.db\n"
        "  convostore verify --json",
    )
    verify.add_argument("file", nargs="?", type=Path, default=None, help="backup file")
    _ui.add_json_option(verify)
    verify.set_defaults(handler=cmd_verify)
    restore = subparsers.add_parser(
        "restore",
        help="replace a SQLite database with a verified backup (stop the bots first)",
        description="Replace the bot's SQLite database with a verified backup, keeping a safety "
        "copy of the old file; asks first (--yes when not on a terminal).",
        epilog="Example:\n  convostore restore data/backups/conversations_2026-11-24.db --bot sage",
    )
    restore.add_argument(
        "file",
        nargs="?",
        type=Path,
        default=None,
        help="backup file to restore (default: the newest backup of the database)",
    )
    _ui.add_yes_option(restore)
    restore.set_defaults(handler=cmd_restore)
    clean = subparsers.add_parser(
        "cleanup",
        help="delete sessions older than --older-than, or the YAML retention",
        description="Delete each bot's sessions (and their messages) older than --older-than or "
        "the configured retention; asks first (--yes when not on a terminal).",
        epilog="Examples:\n  convostore cleanup --older-than 90d --dry-run\n"
        "  convostore cleanup --older-than 90d --bot sage --yes --json",
    )
    clean.add_argument("--older-than", default=None, metavar="AGE", help="e.g. 90d, 12h, 2w")
    clean.add_argument("--dry-run", action="store_true", help="list what would go, delete nothing")
    clean.add_argument(
        "--vacuum",
        action="store_true",
        help="then rewrite the SQLite file with VACUUM (stop the bots; needs free disk space "
        "the size of the file); PostgreSQL: VACUUM ANALYZE",
    )
    _ui.add_yes_option(clean)
    _ui.add_json_option(clean)
    clean.set_defaults(handler=cmd_cleanup)
    close = subparsers.add_parser(
        "close-sessions",
        help="close sessions past their gap/timeout",
        description="Close each bot's open sessions past session_gap / session_timeout.",
        epilog="Example:\n  convostore close-sessions --json",
    )
    _ui.add_json_option(close)
    close.set_defaults(handler=cmd_close_sessions)
