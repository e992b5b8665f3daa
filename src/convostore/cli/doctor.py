"""``convostore doctor``: one line per check, what to do under each finding that needs it.

Exit codes, for monitoring: 0 every check passed, 1 at least one ``FAIL`` (or a handled error),
3 warnings only (``WARN`` findings, no ``FAIL``). 2 stays argparse's usage error.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from rich.console import Console
from rich.markup import escape

from convostore.cli import _ui, selected_configs
from convostore.ops.doctor import DoctorReport, Status, diagnose

EXIT_OK = 0
EXIT_FAIL = 1
EXIT_WARNINGS = 3

_STYLE = {Status.OK: "green", Status.WARN: "yellow", Status.FAIL: "bold red", Status.SKIP: "dim"}


def exit_code(report: DoctorReport) -> int:
    statuses = {f.status for d in report.databases for f in d.findings}
    if Status.FAIL in statuses:
        return EXIT_FAIL
    return EXIT_WARNINGS if Status.WARN in statuses else EXIT_OK


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


def report_json(report: DoctorReport) -> dict[str, Any]:
    code = exit_code(report)
    return {
        "status": {EXIT_OK: "ok", EXIT_FAIL: "fail", EXIT_WARNINGS: "warn"}[code],
        "exit_code": code,
        "databases": [
            {
                "database": d.database,
                "bots": list(d.bots),
                "seconds": round(d.seconds, 3),
                "findings": [
                    {
                        "check": f.check,
                        "status": f.status.value,
                        "detail": f.detail,
                        "advice": f.advice,
                    }
                    for f in d.findings
                ],
            }
            for d in report.databases
        ],
    }


def cmd_doctor(args: argparse.Namespace) -> int:
    configs = {c.name: c for c in selected_configs(args, enabled_only=False)}
    full = True if args.full else (False if args.quick else None)
    with _ui.progress("checking the databases"):
        report = asyncio.run(diagnose(configs.values(), full_integrity=full))
    if args.json:
        _ui.emit_json(report_json(report))
    else:
        print_report(_ui.console(), report)
    return exit_code(report)


def register(subparsers: Any) -> None:
    doctor = subparsers.add_parser(
        "doctor",
        help="check each database (pragmas, schema, integrity, index use, legacy files, backups)",
        description="Check each configured database; exit 0 all OK, 1 a failure, 3 warnings only.",
        epilog="Example:\n  convostore doctor --quick --json",
    )
    depth = doctor.add_mutually_exclusive_group()
    depth.add_argument(
        "--full", action="store_true", help="PRAGMA integrity_check whatever the file size"
    )
    depth.add_argument(
        "--quick", action="store_true", help="PRAGMA quick_check whatever the file size"
    )
    _ui.add_json_option(doctor)
    doctor.set_defaults(handler=cmd_doctor)
