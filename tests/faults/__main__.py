"""``python -m tests.faults [--quick] [--json FILE]``: every experiment, one table.

Runs on this machine's PostgreSQL (``$CONVOSTORE_TEST_PG``) in a database of its own, dropped at
the end, and on SQLite files under a temporary directory; needs root for the mounts.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from tests.conftest import PostgresDatabases, _truncate, upgrade
from tests.faults import disk, kill, pgterm, places, race, restore_live
from tests.faults.report import Outcome, markdown_table

FULL = {
    "race_rounds": 200,
    "append_kills": 60,
    "migrate_kills": 13,
    "migrate_messages": 20_000,
    "db_sizes_kb": [256, 512, 1024, 2048],
    "import_sizes_kb": [256, 1536, 8192, 24576, 49152],
    "backup_sizes_kb": [16, 64, 128, 256, 512, 768, 1024, 1280],
    "restore_fills": [1_000, 50_000, 200_000, 600_000, 1_500_000],
    "restores": 10,
    "pg_seconds": 40.0,
}
QUICK = {
    "race_rounds": 50,
    "append_kills": 6,
    "migrate_kills": 2,
    "migrate_messages": 3_000,
    "db_sizes_kb": [256],
    "import_sizes_kb": [256, 1536],
    "backup_sizes_kb": [64, 512],
    "restore_fills": [1_000, 200_000],
    "restores": 2,
    "pg_seconds": 3.0,
}


EXPERIMENTS = ("race", "appends", "migrate", "pgterm", "restore", "disk", "readonly", "corrupt")


def run_all(
    sizes: dict[str, object], work: Path, only: tuple[str, ...] = EXPERIMENTS
) -> list[Outcome]:
    template = work / "template.db"
    upgrade(f"sqlite+aiosqlite:///{template}")
    pg = PostgresDatabases()
    pg_url = pg.create()
    upgrade(pg_url)
    outcomes: list[Outcome] = []

    def sqlite_copy(name: str) -> tuple[Path, str]:
        path = work / f"{name}.db"
        shutil.copyfile(template, path)
        return path, f"sqlite+aiosqlite:///{path}"

    def step(outcome: Outcome) -> None:
        outcomes.append(outcome)
        print(markdown_table([outcome]).splitlines()[-1], flush=True)

    try:
        for backend in ("sqlite", "postgresql") if "race" in only else ():
            for offset in (0, 1):
                url = sqlite_copy(f"race-{offset}")[1] if backend == "sqlite" else pg_url
                if backend == "postgresql":
                    _truncate(pg_url)
                rounds = int(sizes["race_rounds"])  # type: ignore[call-overload]
                step(race.run(url, backend, rounds=rounds, offset_ms=offset))
        for backend in ("sqlite", "postgresql") if "appends" in only else ():
            url = sqlite_copy("appends")[1] if backend == "sqlite" else pg_url
            if backend == "postgresql":
                _truncate(pg_url)
            directory = work / f"appends-{backend}"
            directory.mkdir()
            step(kill.appends(url, backend, directory, kills=int(sizes["append_kills"])))  # type: ignore[call-overload]
        if "migrate" in only:
            step(
                kill.migrate_legacy(
                    template,
                    work,
                    kills=int(sizes["migrate_kills"]),  # type: ignore[call-overload]
                    messages=int(sizes["migrate_messages"]),  # type: ignore[call-overload]
                )
            )
        if "pgterm" in only:
            _truncate(pg_url)
            step(pgterm.run(pg_url, work, seconds=float(sizes["pg_seconds"])))  # type: ignore[arg-type]
        if "restore" in only:
            live, _ = sqlite_copy("restore-live")
            directory = work / "restore-live"
            directory.mkdir()
            step(restore_live.run(live, directory, restores=int(sizes["restores"])))  # type: ignore[call-overload]
        if "disk" in only:
            step(disk.under_database(template, work, sizes_kb=sizes["db_sizes_kb"]))  # type: ignore[arg-type]
            step(
                disk.under_import(
                    template,
                    work,
                    messages=int(sizes["migrate_messages"]),  # type: ignore[call-overload]
                    sizes_kb=sizes["import_sizes_kb"],  # type: ignore[arg-type]
                )
            )
            step(disk.under_backup(template, work, sizes_kb=sizes["backup_sizes_kb"]))  # type: ignore[arg-type]
            step(disk.under_restore(template, work, fills=sizes["restore_fills"]))  # type: ignore[arg-type]
        if "readonly" in only:
            step(places.read_only(template, work))
        if "corrupt" in only:
            step(places.corrupt(template, work))
    finally:
        pg.drop_all()
    return outcomes


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.faults", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="the small sizes CI runs")
    parser.add_argument("--json", type=Path, help="also write the outcomes here")
    parser.add_argument(
        "--only",
        default=",".join(EXPERIMENTS),
        help=f"comma-separated experiments to run (default all: {','.join(EXPERIMENTS)})",
    )
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="convostore-faults-") as tmp:
        only = tuple(name.strip() for name in args.only.split(",") if name.strip())
        unknown = sorted(set(only) - set(EXPERIMENTS))
        if unknown:
            parser.error(f"unknown experiment(s): {', '.join(unknown)}")
        outcomes = run_all(sizes, Path(tmp), only)
    took = time.monotonic() - started
    print()
    print(markdown_table(outcomes))
    print()
    for outcome in outcomes:
        for note in outcome.notes:
            print(f"- {outcome.experiment} ({outcome.backend}): {note}")
    machine = f"{platform.node()}, {platform.machine()}, Python {platform.python_version()}"
    print(f"\n{'quick' if args.quick else 'full'} run in {took:.0f} s on {machine}")
    if args.json:
        args.json.write_text(
            json.dumps(
                [{**asdict(o), "seen": dict(o.seen)} for o in outcomes], indent=2, default=str
            ),
            encoding="utf-8",
        )
    lost = sum(o.lost for o in outcomes)
    failures = sum(o.failures for o in outcomes)
    raise SystemExit(1 if lost or failures else 0)


if __name__ == "__main__":
    main()
