"""``convostore migrate-legacy``: import the legacy JSON tree, with progress and a full report."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from convostore.cli import _ui
from convostore.config import load_configs
from convostore.errors import OperationError
from convostore.legacy.reader import Problem
from convostore.legacy.report import SHARED, ImportReport
from convostore.legacy.run import migrate_legacy

_PROBLEMS_SHOWN = 200


class _Bars:
    """A rich progress bar per phase (files read, messages written)."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, int] = {}

    def start(self, phase: str, total: int) -> None:
        self.tasks[phase] = int(self.progress.add_task(phase, total=total))

    def advance(self, phase: str, amount: int = 1) -> None:
        self.progress.advance(self.tasks[phase], amount)  # type: ignore[arg-type]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "migrate-legacy",
        help="import the legacy JSON conversation files",
        description="Import the legacy JSON tree (multi_bot_conversations/ and the older <bot>/ "
        "folders) into each bot's database; safe to run again, the files are only read.",
        epilog="Examples:\n  convostore migrate-legacy --dry-run --report import-report.json\n"
        "  convostore migrate-legacy --data-dir /srv/bots/data --legacy-tz Europe/Berlin",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="the legacy data directory (default: legacy.dir of the bot configs)",
    )
    parser.add_argument(
        "--legacy-tz",
        default=None,
        help="IANA time zone of naive legacy timestamps (default: legacy.timezone)",
    )
    parser.add_argument("--dry-run", action="store_true", help="read and count; write nothing")
    parser.add_argument("--report", type=Path, default=None, help="write the full report as JSON")
    parser.set_defaults(handler=cmd_migrate_legacy)


def cmd_migrate_legacy(args: argparse.Namespace) -> int:
    configs = load_configs(args.config_dir)
    if args.bot is not None and args.bot not in configs:
        raise OperationError(f"no bot named {args.bot!r} in the configuration")
    if args.data_dir is not None and not args.data_dir.is_dir():
        raise OperationError(f"--data-dir {args.data_dir}: not a directory")
    if args.report is not None and not args.report.parent.is_dir():
        raise OperationError(f"--report {args.report}: its directory does not exist")
    console = _ui.console()
    with Progress(
        TextColumn("{task.description:<17}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        report = migrate_legacy(
            configs,
            data_dirs=[args.data_dir] if args.data_dir else None,
            legacy_tz=args.legacy_tz,
            dry_run=args.dry_run,
            only_bot=args.bot,
            progress=_Bars(progress),
        )
    _print_report(console, report)
    if args.report is not None:
        try:
            report.write(args.report)
        except OSError as exc:
            raise OperationError(f"--report {args.report}: cannot write: {exc.strerror}") from None
        console.print(f"report written to {args.report}")
    return 0


_ROWS = (
    ("files imported", "files", "imported"),
    ("files unreadable", "files", "unreadable"),
    ("files ignored", "files", "ignored"),
    ("messages imported", "records", "imported"),
    ("duplicates", "records", "duplicate"),
    ("already in database", "records", "already_present"),
    ("unattributable", "records", "unattributable"),
    ("invalid records", "records", "invalid"),
)


def _print_report(console: Console, report: ImportReport) -> None:
    title = "dry run: nothing was written" if report.dry_run else "legacy import"
    bots = sorted(report.bots.items(), key=lambda item: (item[0] == SHARED, item[0]))
    table = _ui.table("", title=title)
    for name, bot in bots:
        configured = bot.configured or name == SHARED
        table.add_column(
            name if configured else f"{name} (no config)", justify="right", no_wrap=True
        )
    for label, group, key in _ROWS:
        table.add_row(label, *(str(getattr(bot, group)[key]) for _, bot in bots))
    table.add_row("sessions", *(str(bot.sessions) for _, bot in bots))
    console.print(table)
    for name, bot in bots:
        if bot.database:
            console.print(f"{name}: {bot.database}", markup=False, soft_wrap=True)
    for note in report.notes:
        console.print(f"note: {note}")
    _print_problems(console, "unreadable files and records not imported", report.problems)
    _print_problems(console, "warnings", report.warnings)


def _print_problems(console: Console, title: str, problems: list[Problem]) -> None:
    if not problems:
        return
    console.print(f"[bold]{title} ({len(problems)}):[/]")
    for problem in problems[:_PROBLEMS_SHOWN]:
        at = f" [record {problem.index}]" if problem.index is not None else ""
        line = f"  {problem.path}{at}: {problem.kind}: {problem.detail}"
        console.print(line, markup=False, soft_wrap=True)
    if len(problems) > _PROBLEMS_SHOWN:
        console.print(f"(first {_PROBLEMS_SHOWN} shown; --report FILE.json lists all)")
