"""``convostore doctor``: one line per check, what to do under each finding that needs it."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from rich.console import Console
from rich.markup import escape

from convostore.cli import selected_configs
from convostore.ops.doctor import DoctorReport, Status, diagnose

_STYLE = {Status.OK: "green", Status.WARN: "yellow", Status.FAIL: "bold red", Status.SKIP: "dim"}


def print_report(console: Console, report: DoctorReport) -> None:
    for database in report.databases:
        console.print(
            f"[bold]{escape(database.database)}[/] (bots: {', '.join(database.bots)})",
            soft_wrap=True,
        )
        for finding in database.findings:
            style = _STYLE[finding.status]
            console.print(
                f"  [{style}]{finding.status.value:<4}[/]  {escape(finding.check)}: "
                f"{escape(finding.detail)}",
                soft_wrap=True,
            )
            if finding.advice and finding.needs_attention:
                console.print(f"        -> {escape(finding.advice)}", soft_wrap=True)
        console.print(f"  checked in {database.seconds:.1f} s", style="dim")
    attention = sum(f.needs_attention for d in report.databases for f in d.findings)
    if attention:
        console.print(f"[yellow]{attention} finding(s) need attention[/]")
    else:
        console.print("[green]all checks passed[/]")


def cmd_doctor(args: argparse.Namespace) -> int:
    console = Console()
    configs = {c.name: c for c in selected_configs(args, enabled_only=False)}
    full = True if args.full else (False if args.quick else None)
    with console.status("checking the databases ..."):
        report = asyncio.run(diagnose(configs.values(), full_integrity=full))
    print_report(console, report)
    return 1 if report.needs_attention else 0


def register(subparsers: Any) -> None:
    doctor = subparsers.add_parser(
        "doctor",
        help="check each database (pragmas, schema, integrity, index use, legacy files, backups)",
        description="Check each configured database; exit 1 when a finding needs attention.",
    )
    depth = doctor.add_mutually_exclusive_group()
    depth.add_argument(
        "--full", action="store_true", help="PRAGMA integrity_check whatever the file size"
    )
    depth.add_argument(
        "--quick", action="store_true", help="PRAGMA quick_check whatever the file size"
    )
    doctor.set_defaults(handler=cmd_doctor)
