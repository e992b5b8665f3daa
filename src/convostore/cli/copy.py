"""``convostore copy``: move bots' storage to another database in one command."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from rich.markup import escape

from convostore.cli import _ui
from convostore.config import load_configs, redact_url
from convostore.errors import OperationError


def _jobs(args: argparse.Namespace) -> list[tuple[str, str, list[str]]]:
    """(source URL, target URL, bots) per copy to run; ``{bot_name}`` in --to is per bot."""
    from convostore.ops.copy import source_bots

    pairs: list[tuple[str, str]] = []
    if args.source is not None:
        bots = args.bots or asyncio.run(source_bots(args.source))
        if not bots:
            raise OperationError(f"{redact_url(args.source)}: no bot has rows there")
        pairs = [(args.source, bot) for bot in bots]
    else:
        configs = load_configs(args.config_dir)
        for name in args.bots or []:
            if name not in configs:
                raise OperationError(f"no bot named {name!r} in the configuration")
        chosen = [
            c for c in configs.values() if (c.name in args.bots if args.bots else c.storage.enabled)
        ]
        if not chosen:
            raise OperationError("no bot configuration with storage enabled found")
        pairs = [(c.database_url, c.name) for c in chosen]
    jobs: dict[tuple[str, str], list[str]] = {}
    for source, bot in pairs:
        target = args.to.replace("{bot_name}", bot)
        jobs.setdefault((source, target), []).append(bot)
    return [(source, target, bots) for (source, target), bots in jobs.items()]


def cmd_copy(args: argparse.Namespace) -> int:
    from convostore.ops.copy import BotCopy, copy_bots

    console = _ui.console()
    results: list[BotCopy] = []
    for source, target, bots in _jobs(args):
        label = f"copying {', '.join(bots)} to {redact_url(target)}"
        with _ui.progress(label) as bar:
            totals: list[int] = []

            def total(rows: int, bar: _ui.Bar = bar, totals: list[int] = totals) -> None:
                totals.append(rows)
                bar.update(total=sum(totals))

            done = asyncio.run(
                copy_bots(
                    source,
                    target,
                    bots,
                    dry_run=args.dry_run,
                    progress=bar.advance,
                    totals=total,
                )
            )
        results.extend(done)
        if not args.json:
            for result in done:
                _print(console, result, args.dry_run)
    failed = [r for r in results if not r.ok and not args.dry_run]
    if args.json:
        _ui.emit_json(
            {
                "dry_run": args.dry_run,
                "ok": not failed,
                "bots": [
                    {
                        "bot": r.bot,
                        "source": r.source,
                        "target": r.target,
                        "ok": r.ok,
                        "tables": {
                            name: {"source": c.source, "target": c.target}
                            for name, c in r.tables.items()
                        },
                    }
                    for r in results
                ],
            }
        )
    if failed:
        details = "; ".join(f"{r.bot}: {', '.join(r.mismatches)}" for r in failed)
        raise OperationError(f"counts differ after the copy ({details}); run the copy again")
    return 0


def _print(console: Any, result: Any, dry_run: bool) -> None:
    figures = ", ".join(
        f"{name} {count.source:,}" + ("" if count.matches else f" (target has {count.target:,})")
        for name, count in result.tables.items()
    )
    if dry_run:
        figures = ", ".join(f"{name} {c.source:,}" for name, c in result.tables.items())
        already = ", ".join(f"{name} {c.target:,}" for name, c in result.tables.items())
        console.print(
            f"{escape(result.bot)}: would copy {figures} from {escape(result.source)} to "
            f"{escape(result.target)} (already there: {already}; dry run, nothing written)",
            soft_wrap=True,
        )
        return
    state = "counts match" if result.ok else "COUNTS DIFFER"
    console.print(
        f"{escape(result.bot)}: {figures} copied from {escape(result.source)} to "
        f"{escape(result.target)} ({state})",
        soft_wrap=True,
    )


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "copy",
        help="copy bots' conversations to another database (SQLite <-> PostgreSQL, split a file)",
        description="Copy the selected bots' rows of every table into another database, creating "
        "or upgrading its schema first; safe to rerun after an interruption.",
        epilog="Examples:\n"
        "  convostore copy --to postgresql://bots@db.internal/bots\n"
        "  convostore copy --from sqlite:///data/conversations.db --to "
        "'sqlite:///data/{bot_name}.db'\n"
        "  convostore copy --bot sage --to sqlite:///data/sage.db --dry-run --json",
    )
    parser.add_argument(
        "--to",
        required=True,
        metavar="URL",
        help="target database URL; {bot_name} makes one database per bot",
    )
    parser.add_argument(
        "--from",
        dest="source",
        default=None,
        metavar="URL",
        help="source database URL (default: each bot's configured database)",
    )
    parser.add_argument(
        "--bot",
        dest="bots",
        action="append",
        default=None,
        metavar="NAME",
        help="copy this bot (repeatable; default: every bot of the source or configuration)",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="count what would be copied; write nothing"
    )
    _ui.add_json_option(parser)
    parser.set_defaults(handler=cmd_copy)
