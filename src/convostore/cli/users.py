"""``convostore forget-user``: erase one user's data in every selected bot."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from convostore.cli import _ui, selected_configs
from convostore.ops.user_data import decimal_user_id, forget_user


def cmd_forget_user(args: argparse.Namespace) -> int:
    user = decimal_user_id(args.user_id)
    configs = selected_configs(args)
    if not args.dry_run:
        bots = ", ".join(c.name for c in configs)
        _ui.confirm(
            f"Erase everything bots {bots} store about user {user}"
            " (their messages, their DM channels, earlier versions)?",
            assume_yes=args.yes,
        )
    results = [asyncio.run(forget_user(c, user, dry_run=args.dry_run)) for c in configs]
    if args.json:
        _ui.emit_json(
            {
                "user_id": user,
                "dry_run": args.dry_run,
                "bots": [
                    {
                        "bot": r.bot,
                        "messages": r.messages,
                        "dm_channels": r.dm_channels,
                        "group_dms": r.group_dms,
                    }
                    for r in results
                ],
            }
        )
        return 0
    console = _ui.console()
    verb = "would erase" if args.dry_run else "erased"
    for r in results:
        console.print(
            f"{r.bot}: {verb} {r.messages:,} messages of user {user}"
            f" ({r.dm_channels:,} DM channels entirely;"
            f" {r.group_dms:,} group DMs keep the others' messages)",
            soft_wrap=True,
        )
    if not args.dry_run:
        console.print(
            "Backups taken earlier still hold this data until they rotate out; "
            "see docs/discord.md to purge them.",
            soft_wrap=True,
        )
    return 0


def register(subparsers: Any) -> None:
    forget = subparsers.add_parser(
        "forget-user",
        help="erase everything the bots store about one user",
        description="Erase one user's messages in every channel, their DM channels entirely "
        "(the bots' replies too) and earlier versions of those messages, per selected bot.",
        epilog="Examples:\n  convostore forget-user 123456789012345678 --dry-run\n"
        "  convostore forget-user 123456789012345678 --bot sage --yes",
    )
    forget.add_argument("user_id", metavar="USER_ID", help="the user's Discord id")
    forget.add_argument(
        "--dry-run", action="store_true", help="only count what would be erased, per bot"
    )
    _ui.add_yes_option(forget)
    _ui.add_json_option(forget)
    forget.set_defaults(handler=cmd_forget_user)
