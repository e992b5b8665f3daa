"""Helpers shared by the benchmark scripts: databases, timing, tables, JSON results.

Every benchmark measures convostore and its baseline in the same run, on the same machine, and
reports the ratio between them; absolute numbers vary from machine to machine, ratios much less.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import sqlite3
import statistics
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
PG_ADMIN_URL = os.environ.get("CONVOSTORE_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")

# p99 is reported only from this many samples or more (below, one sample decides it).
P99_MIN_SAMPLES = 1000


def sqlite_pragmas(synchronous: str = "normal") -> tuple[str, ...]:
    """The pragmas of every convostore SQLite connection (convostore.db); raw baselines use them."""
    return (
        "PRAGMA busy_timeout = 30000",
        "PRAGMA journal_mode = WAL",
        f"PRAGMA synchronous = {synchronous.upper()}",
        "PRAGMA foreign_keys = ON",
    )


SQLITE_PRAGMAS = sqlite_pragmas("normal")


def synchronous_levels(text: str) -> list[str]:
    """``--synchronous normal,full`` as a list, each checked."""
    levels = [s.strip().lower() for s in text.split(",") if s.strip()]
    for level in levels:
        if level not in ("normal", "full"):
            raise SystemExit(f"--synchronous: {level!r} is not normal or full")
    return levels


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument(
        "--backends",
        default="sqlite,postgresql",
        help="comma-separated: sqlite, postgresql (default both)",
    )
    return p


def backends(args: argparse.Namespace) -> list[str]:
    return [b.strip() for b in str(args.backends).split(",") if b.strip()]


def migrate(url: str) -> None:
    """Bring the database at ``url`` to the head schema revision with Alembic."""
    from alembic import command
    from alembic.config import Config

    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.attributes["configure_logger"] = False
    cfg.cmd_opts = argparse.Namespace(x=[f"url={url}"])
    # Alembic's env.py runs its own event loop: keep it off the caller's (a benchmark's) loop.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(command.upgrade, cfg, "head").result()


def _schema_head() -> str:
    """The Alembic head revision: cached databases are kept per schema, rebuilt when it moves."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(Config(str(ROOT / "alembic.ini"))).get_current_head()
    return str(head)


SCHEMA_CACHE = RESULTS / "cache" / f"schema-{_schema_head()}"
_TEMPLATE = SCHEMA_CACHE / "template.db"


def sqlite_database(path: Path) -> str:
    """A fresh, migrated SQLite file at ``path`` (copied from a migrated template); its URL."""
    if not _TEMPLATE.exists():
        _TEMPLATE.parent.mkdir(parents=True, exist_ok=True)
        tmp = _TEMPLATE.with_suffix(".tmp.db")
        tmp.unlink(missing_ok=True)
        migrate(f"sqlite+aiosqlite:///{tmp}")
        with sqlite3.connect(tmp) as conn:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        os.replace(tmp, _TEMPLATE)
        remove_sqlite(tmp)
    remove_sqlite(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_TEMPLATE, path)
    return f"sqlite+aiosqlite:///{path}"


def remove_sqlite(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def _admin() -> Any:
    import psycopg

    return psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5)


@contextmanager
def postgres_database(tag: str, *, keep_name: str | None = None) -> Iterator[tuple[str, str]]:
    """A migrated PostgreSQL database made for this run: (SQLAlchemy URL, plain libpq URL).

    It is dropped on exit, unless ``keep_name`` names a cached database that is reused across runs.
    """
    from sqlalchemy.engine import make_url

    name = keep_name or f"convostore_bench_{tag}_{uuid.uuid4().hex[:8]}"
    base = make_url(PG_ADMIN_URL).set(database=name)
    plain = base.set(drivername="postgresql").render_as_string(hide_password=False)
    url = base.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
    with _admin() as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')
            migrate(url)
    try:
        yield url, plain
    finally:
        if keep_name is None:
            drop_postgres(name)


def drop_postgres(name: str) -> None:
    with _admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def bot_config(url: str, name: str = "bench", **storage: Any) -> Any:
    from convostore import BotConfig

    backend = "postgresql" if url.startswith("postgresql") else "sqlite"
    return BotConfig.model_validate(
        {"name": name, "storage": {"url": url, "type": backend, **storage}}, strict=False
    )


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values`` by the nearest-rank method: the smallest value
    with at least ``q`` of the values at or below it (rank ``ceil(q * n)``, 1-based)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, math.ceil(q * len(ordered) - 1e-9))
    return ordered[min(rank, len(ordered)) - 1]


def summary(latencies: Sequence[float]) -> dict[str, float]:
    """p50/p99/mean of latencies given in seconds, reported in milliseconds.

    p99 is NaN (printed "-") below ``P99_MIN_SAMPLES`` samples.
    """
    enough = len(latencies) >= P99_MIN_SAMPLES
    return {
        "samples": len(latencies),
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000 if enough else float("nan"),
        "mean_ms": statistics.fmean(latencies) * 1000 if latencies else float("nan"),
    }


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[_fmt(c) for c in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    lines = [
        "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
    ]
    for row in cells:
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if value != value:
            return "-"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        return f"{value:.3g}" if abs(value) < 1 else f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def environment() -> dict[str, Any]:
    import sqlalchemy

    import convostore

    return {
        # Which code was measured: this checkout's, or an earlier commit's (PYTHONPATH=…/src).
        "convostore_source": str(Path(convostore.__file__).resolve().parent.parent),
        "python": sys.version.split()[0],
        "sqlite": sqlite3.sqlite_version,
        "sqlalchemy": sqlalchemy.__version__,
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average_1m": load_average(),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def write_results(name: str, data: dict[str, Any]) -> Path:
    """Write ``data`` to a new ``results/<name>_<UTC date-time>.json``; never overwrites a file."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H%M%SZ")
    document = json.dumps(
        {"environment": environment(), "command": command_line(), **data}, indent=2, default=str
    )
    for attempt in range(1000):
        path = RESULTS / f"{name}_{stamp}{f'-{attempt}' if attempt else ''}.json"
        try:
            with path.open("x", encoding="utf-8") as out:  # "x": fails if the file exists
                out.write(document)
        except FileExistsError:
            continue
        # A name with a directory in it (an absolute one) writes there.
        shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
        print(f"\nresults written to {shown}")
        return path
    raise RuntimeError(f"no free results file name for {name}_{stamp}")


def command_line() -> str:
    """The command that produced a result, as it would be typed at the repository root."""
    script = Path(sys.argv[0])
    with suppress(ValueError):
        script = script.resolve().relative_to(ROOT)
    return " ".join([".venv/bin/python", str(script), *sys.argv[1:]])


def load_average() -> float:
    """The 1-minute load average (how busy the shared machine was), or NaN where unknown."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


class Timer:
    """Collects per-call latencies and the wall time of a loop."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.started = time.perf_counter()
        self.elapsed = 0.0

    def stop(self) -> None:
        self.elapsed = time.perf_counter() - self.started

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.elapsed if self.elapsed else float("nan")
