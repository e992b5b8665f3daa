"""Legacy import: ``convostore migrate-legacy`` on a generated legacy tree vs a stdlib baseline.

For each scale, a realistic legacy tree is generated (``_legacy_tree.py``; not timed), then, on the
same tree in the same run:

- baseline: a separate process reads and parses every file with the standard ``json`` module and
  inserts one row per message record with ``sqlite3.executemany`` into a database migrated by the
  same ``alembic upgrade head`` (same table, same indexes) with the importer's own connection
  settings (WAL, ``synchronous=NORMAL``, ``foreign_keys=OFF``, a 64 MB page cache), committing
  every 200 files. It does none of the import rules: no routing or splitting of shared files, no
  dedupe, no time zone conversion (timestamps are stored as the file's text), no sessions beyond
  one placeholder per file. It runs before and after convostore and the ratio is taken against the
  mean of the two, so a change in the machine's load weighs on both sides;
- convostore: ``convostore migrate-legacy --report FILE`` as a subprocess on a fresh migrated
  database, then the same command again (an idempotent rerun, which must import nothing).

Both processes are timed from spawn to exit. Peak memory is the largest resident set size (RSS) of
the process and its children, polled with psutil every 50 ms, checked against the kernel's
``ru_maxrss`` of the process from ``os.wait4`` (which also counts the pages of this script that the
child held until its ``exec``: meaningful only while this script is the smaller, so ``--profile``
loads its profile after the last measurement). Throughput is the tree's message records per second
of wall time, so the ratio compares the same work on the same files; the rows convostore imported
(from its report) are shown beside it. With ``--backend postgresql`` convostore imports into a fresh
PostgreSQL database; the baseline stays the same stdlib ``sqlite3`` one.

    .venv/bin/python benchmarks/bench_import.py [--messages 1000000[,2000000…]] [--files N]
        [--backend sqlite|postgresql] [--keep] [--tree DIR] [--profile]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _common as common
import _legacy_tree as legacy_tree

VENV_BIN = Path(sys.executable).parent
COMMIT_EVERY_FILES = 200
POLL_SECONDS = 0.05
MEMORY_TARGET_MB = 300
RATIO_TARGET = 0.5


# --- measuring a child process -------------------------------------------------------------------


@dataclass
class Run:
    seconds: float
    peak_rss_mb: float  # polled with psutil every 50 ms, the process and its children
    maxrss_mb: float  # the kernel's high-water mark for the process (os.wait4)
    cpu_seconds: float  # user + system time of the process (os.wait4)
    peak_at_seconds: float  # when the polled peak was seen, from the start
    # ru_maxrss also counts the pages of this process that the child held between fork and exec,
    # so it is only meaningful while this process is smaller than the child.
    parent_rss_mb: float
    timeline: list[tuple[float, float]]  # (seconds from start, RSS MB), one sample a second
    returncode: int
    stdout: str
    stderr: str


def measure(cmd: list[str], *, cwd: Path, env: dict[str, str] | None = None) -> Run:
    """Run ``cmd`` to completion; its wall time and its peak memory, measured two ways."""
    import psutil  # type: ignore[import-untyped]

    out = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (read back below, closed by the GC)
    err = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115
    parent_rss = psutil.Process().memory_info().rss
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=err)
    peak = 0
    peak_at = 0.0
    timeline: list[tuple[float, float]] = []
    done = threading.Event()

    def poll() -> None:
        nonlocal peak, peak_at
        try:
            watched = psutil.Process(proc.pid)
            while not done.is_set():
                rss = watched.memory_info().rss
                for child in watched.children(recursive=True):
                    with contextlib.suppress(psutil.Error):  # a child that just ended
                        rss += child.memory_info().rss
                now = time.perf_counter() - started
                if rss > peak:
                    peak, peak_at = rss, now
                if not timeline or now - timeline[-1][0] >= 1.0:
                    timeline.append((round(now, 1), round(rss / 2**20, 1)))
                done.wait(POLL_SECONDS)
        except psutil.Error:
            pass  # the process is gone

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    done.set()
    poller.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    out.seek(0)
    err.seek(0)
    return Run(
        seconds=seconds,
        peak_rss_mb=peak / 2**20,
        maxrss_mb=usage.ru_maxrss / 1024,  # kilobytes on Linux
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        peak_at_seconds=peak_at,
        parent_rss_mb=parent_rss / 2**20,
        timeline=timeline,
        returncode=proc.returncode,
        stdout=out.read(),
        stderr=err.read(),
    )


NAN = float("nan")
# A contender that --skip-baseline leaves out: every figure NaN (printed "-").
NOT_RUN = Run(NAN, NAN, NAN, NAN, NAN, NAN, [], 0, "", "")


def check(run: Run, what: str) -> None:
    if run.returncode != 0:
        tail = "\n".join((run.stdout + run.stderr).splitlines()[-30:])
        raise SystemExit(f"{what} failed with exit code {run.returncode}:\n{tail}")


# --- databases -----------------------------------------------------------------------------------


def upgrade(url: str, config_dir: Path, cwd: Path) -> None:
    """``alembic upgrade head``; a missing legacy dir makes the data revision a no-op."""
    cmd = [
        str(VENV_BIN / "alembic"),
        "-c",
        str(common.ROOT / "alembic.ini"),
        "-x",
        f"url={url}",
        "-x",
        "legacy_dir=/nonexistent",
        "upgrade",
        "head",
    ]
    env = {**os.environ, "CONVOSTORE_CONFIG_DIR": str(config_dir)}
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"alembic upgrade head failed for {url}:\n{done.stderr[-3000:]}")


def write_configs(config_dir: Path, storage: dict[str, Any], tree: Path) -> None:
    """One YAML per bot of the tree, all three on the same database, as a typical install has."""
    config_dir.mkdir(parents=True, exist_ok=True)
    for bot in legacy_tree.BOTS:
        lines = [f"name: {bot}", "storage:"]
        lines += [f"  {key}: {json.dumps(value)}" for key, value in storage.items()]
        lines += ["legacy:", f"  dir: {json.dumps(str(tree))}", "  timezone: UTC"]
        (config_dir / f"{bot}.yaml").write_text("\n".join(lines) + "\n")


@dataclass
class Target:
    """A fresh database for one convostore import: its config dir and how to count its rows."""

    config_dir: Path
    url: str
    plain_url: str | None = None  # PostgreSQL, for psycopg

    def count(self) -> int:
        if self.plain_url is None:
            path = self.url.split(":///", 1)[1]
            with sqlite3.connect(path) as conn:
                return int(conn.execute("SELECT count(*) FROM conversations").fetchone()[0])
        import psycopg

        with psycopg.connect(self.plain_url) as conn:
            row = conn.execute("SELECT count(*) FROM conversations").fetchone()
            return int(row[0]) if row else 0


def _pg_admin() -> Any:
    import psycopg

    return psycopg.connect(common.PG_ADMIN_URL, autocommit=True, connect_timeout=5)


class Databases:
    """Fresh migrated databases for convostore's runs; PostgreSQL ones are dropped on close."""

    def __init__(self, backend: str, workdir: Path, tree: Path) -> None:
        self.backend = backend
        self.workdir = workdir
        self.tree = tree
        self.pg_names: list[str] = []

    def fresh(self, tag: str) -> Target:
        config_dir = self.workdir / f"config-{tag}"
        if self.backend == "sqlite":
            path = self.workdir / f"{tag}.db"
            common.remove_sqlite(path)
            url = f"sqlite+aiosqlite:///{path}"
            write_configs(config_dir, {"type": "sqlite", "path": str(path)}, self.tree)
            upgrade(url, config_dir, self.workdir)
            return Target(config_dir, url)
        from sqlalchemy.engine import make_url

        name = f"convostore_bench_import_{tag}_{uuid.uuid4().hex[:8]}"
        with _pg_admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.pg_names.append(name)
        base = make_url(common.PG_ADMIN_URL).set(database=name)
        url = base.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
        plain = base.set(drivername="postgresql").render_as_string(hide_password=False)
        write_configs(config_dir, {"type": "postgresql", "url": url}, self.tree)
        upgrade(url, config_dir, self.workdir)
        return Target(config_dir, url, plain)

    def close(self) -> None:
        for name in self.pg_names:
            common.drop_postgres(name)
        self.pg_names.clear()


# --- the baseline: json + sqlite3.executemany ----------------------------------------------------

BASELINE_INSERT = (
    "INSERT INTO conversations (bot_name, channel_id, channel_name, channel_type, user_id,"
    " username, session_id, message_id, role, content, timestamp, metadata)"
    " VALUES (?, ?, ?, 'channel', ?, ?, ?, ?, ?, ?, ?, ?)"
)
BASELINE_SESSION = (
    "INSERT INTO sessions (bot_name, channel_id, session_id, started_at, last_activity,"
    " message_count, is_active) VALUES (?, ?, ?, ?, ?, ?, 0)"
)


def _conversations(path: Path, value: Any) -> Iterator[tuple[str, str, str, list[Any]]]:
    """(bot, channel, user, records) of one parsed file, by its shape; no import rule applied."""
    stem = path.stem.split("_")
    owner = path.parent.name if path.parent.name != "multi_bot_conversations" else "shared"
    if isinstance(value, list):
        yield owner, stem[0], stem[-1], value
    elif "messages" in value:
        channel = value.get("channel_id", stem[0])
        user = value.get("user_id", stem[-1])
        yield owner, str(channel), str(user), value["messages"]
    else:
        for key, conversation in value.items():
            channel, _, user = key.partition("_")
            yield "shared", channel, user, conversation["messages"]


def baseline(tree: Path, db: Path) -> dict[str, int]:
    """Parse every file with ``json`` and insert one row per record with ``executemany``."""
    from convostore.legacy.run import IMPORT_CACHE_KIB

    conn = sqlite3.connect(db, isolation_level=None)
    # The pragmas the importer's connection runs with (convostore.legacy.run): foreign keys off,
    # its page cache; anything else would time the settings, not the work.
    for pragma in common.sqlite_pragmas("normal"):
        conn.execute(pragma.replace("foreign_keys = ON", "foreign_keys = OFF"))
    conn.execute(f"PRAGMA cache_size = -{IMPORT_CACHE_KIB}")
    files = unreadable = rows = conversations = 0
    sessions: list[tuple[Any, ...]] = []
    messages: list[tuple[Any, ...]] = []

    def flush() -> None:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(BASELINE_SESSION, sessions)
        conn.executemany(BASELINE_INSERT, messages)
        conn.execute("COMMIT")
        sessions.clear()
        messages.clear()

    for folder, dirs, names in os.walk(tree):
        dirs.sort()
        for name in sorted(names):
            if not name.endswith(".json"):
                continue
            path = Path(folder, name)
            try:
                value = json.loads(path.read_bytes().decode("utf-8"))
            except ValueError:  # UnicodeDecodeError and JSONDecodeError alike
                unreadable += 1
                continue
            files += 1
            for bot, channel, user, records in _conversations(path, value):
                conversations += 1
                session = f"legacy-{conversations}"
                first = records[0]["timestamp"] if records else ""
                sessions.append((bot, channel, session, first, first, len(records)))
                for i, record in enumerate(records):
                    metadata = record.get("metadata")
                    username = (metadata or {}).get("username", "unknown")
                    messages.append(
                        (
                            bot,
                            channel,
                            "legacy",
                            user,
                            username,
                            session,
                            f"{conversations}:{i}",
                            record["role"],
                            record["content"],
                            record["timestamp"],
                            json.dumps(metadata, ensure_ascii=False) if metadata else None,
                        )
                    )
                rows += len(records)
            if files % COMMIT_EVERY_FILES == 0:
                flush()
    flush()
    conn.close()
    return {"files": files, "unreadable": unreadable, "rows": rows}


# --- the stdlib importer: json + sqlite3, the import rules applied in memory ---------------------

STDLIB_SESSION = (
    "INSERT INTO sessions (bot_name, channel_id, session_id, started_at, last_activity,"
    " message_count, is_active, source) VALUES (?, ?, ?, ?, ?, ?, 0, 'legacy')"
)
STDLIB_INSERT = (
    "INSERT INTO conversations (bot_name, channel_id, channel_name, channel_type, user_id,"
    " username, session_id, message_id, role, content, timestamp, metadata, source)"
    " VALUES (?, ?, ?, 'channel', ?, ?, ?, ?, ?, ?, ?, ?, 'legacy')"
)


def _stdlib_utc(text: str) -> str:
    """Rule 6 with the configured zone UTC: aware times converted, naive ones taken as UTC."""
    from datetime import UTC, datetime

    value = datetime.fromisoformat(text)
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat(timespec="microseconds")


def stdlib_importer(tree: Path, db: Path, gap: int, timeout: int) -> dict[str, int]:
    """What a straightforward importer written with the standard library does, all in RAM.

    Every file is parsed with ``json``; records are routed to bots (per-bot files to their bot,
    shared ones to the participants and the answering bot), their times converted to UTC, each
    given its Discord id or a hash of its content; duplicates collapse per (bot, message id), the
    earliest kept; then each bot's channel is sorted by time and cut into sessions by the same
    gap/timeout rule as convostore's (``convostore.sessions.cut``), and everything is inserted with
    ``executemany`` in one transaction per 200,000 rows. No report, no names from other files, no
    idempotent rerun: less work than ``migrate-legacy`` does.
    """
    import hashlib
    from datetime import datetime

    from convostore.legacy.run import IMPORT_CACHE_KIB

    # (bot, message_id) -> (channel, user, username, channel_name, role, content, at, metadata)
    rows: dict[tuple[str, str], tuple[Any, ...]] = {}
    files = unreadable = records_seen = 0
    for folder, dirs, names in os.walk(tree):
        dirs.sort()
        for name in sorted(names):
            if not name.endswith(".json"):
                continue
            path = Path(folder, name)
            try:
                value = json.loads(path.read_bytes().decode("utf-8"))
            except ValueError:
                unreadable += 1
                continue
            files += 1
            parent = path.parent.name
            if isinstance(value, list):  # era 0: <bot>/<channel>_<user>.json
                channel, _, user = path.stem.partition("_")
                conversations = [(channel, user, value, [parent])]
            elif isinstance(value, dict) and "messages" in value:
                channel, _, user = path.stem.partition("_")
                channel = str(value.get("channel_id") or channel)
                user = str(value.get("user_id") or user)
                bots = [parent] if parent != "multi_bot_conversations" else None
                conversations = [(channel, user, value["messages"], bots or value)]
            elif isinstance(value, dict):  # shared_conversations.json
                conversations = []
                for key, conversation in value.items():
                    channel, _, user = key.partition("_")
                    channel = str(conversation.get("channel_id") or channel)
                    user = str(conversation.get("user_id") or user)
                    conversations.append((channel, user, conversation["messages"], conversation))
            else:
                unreadable += 1
                continue
            for channel, user, records, owner in conversations:
                if isinstance(owner, dict):  # shared: participants plus every answering bot
                    answered = [r.get("bot_name") for r in records if r.get("role") == "assistant"]
                    shared = list(dict.fromkeys([*(owner.get("participants") or []), *answered]))
                    shared = [b for b in shared if b]
                for record in records:
                    role, content = record.get("role"), record.get("content")
                    if role not in ("user", "assistant", "system") or not isinstance(content, str):
                        continue
                    records_seen += 1
                    if isinstance(owner, list):
                        targets = owner
                    elif role == "assistant":
                        targets = [record["bot_name"]] if record.get("bot_name") else []
                    else:
                        targets = shared
                    try:
                        at = _stdlib_utc(record["timestamp"])
                    except (KeyError, TypeError, ValueError):
                        continue
                    metadata = record.get("metadata") or {}
                    message_id = metadata.get("message_id")
                    if message_id is None:
                        key = "\x1f".join((channel, user, role, content, at)).encode()
                        message_id = int.from_bytes(hashlib.sha256(key).digest()[:16], "big")
                    row = (
                        channel,
                        user,
                        metadata.get("username") or f"user-{user}",
                        metadata.get("channel_name") or f"channel-{channel}",
                        role,
                        content,
                        at,
                        json.dumps(metadata, ensure_ascii=False) if metadata else None,
                    )
                    for bot in targets:
                        kept = rows.get((bot, str(message_id)))
                        if kept is None or at < kept[6]:
                            rows[(bot, str(message_id))] = row
    # Each bot's channel in time order, cut into sessions by the gap/timeout rule.
    channels: dict[tuple[str, str], list[tuple[str, tuple[Any, ...]]]] = {}
    for (bot, message_id), row in rows.items():
        channels.setdefault((bot, row[0]), []).append((message_id, row))
    sessions: list[tuple[Any, ...]] = []
    messages: list[tuple[Any, ...]] = []
    for (bot, channel), items in channels.items():
        items.sort(key=lambda item: item[1][6])
        times = [datetime.fromisoformat(row[6]) for _, row in items]
        start = 0
        for i in range(1, len(items) + 1):
            if i < len(items) and (
                (times[i] - times[i - 1]).total_seconds() <= gap
                and (times[i] - times[start]).total_seconds() <= timeout
            ):
                continue
            session = f"{times[start]:%Y-%m-%d_%H-%M-%S}_{timeout}s-{start}"
            sessions.append(
                (bot, channel, session, items[start][1][6], items[i - 1][1][6], i - start)
            )
            for message_id, row in items[start:i]:
                channel_id, user, username, channel_name, role, content, at, metadata = row
                messages.append(
                    (
                        bot,
                        channel_id,
                        channel_name,
                        user,
                        username,
                        session,
                        message_id,
                        role,
                        content,
                        at,
                        metadata,
                    )
                )
            start = i
    conn = sqlite3.connect(db, isolation_level=None)
    for pragma in common.sqlite_pragmas("normal"):
        conn.execute(pragma.replace("foreign_keys = ON", "foreign_keys = OFF"))
    conn.execute(f"PRAGMA cache_size = -{IMPORT_CACHE_KIB}")
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(STDLIB_SESSION, sessions)
    conn.execute("COMMIT")
    for start in range(0, len(messages), 200_000):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(STDLIB_INSERT, messages[start : start + 200_000])
        conn.execute("COMMIT")
    conn.close()
    return {
        "files": files,
        "unreadable": unreadable,
        "records": records_seen,
        "rows": len(messages),
        "sessions": len(sessions),
    }


def run_helper(
    kind: str, label: str, tree: Path, workdir: Path, env: dict[str, str]
) -> tuple[Run, Any]:
    """This script's ``--<kind>-only`` importer as a process, on a fresh database migrated by the
    same Alembic head (removed afterwards); its run and the counts it printed."""
    config_dir = workdir / f"config-{kind}"
    db = workdir / f"{kind}.db"
    common.remove_sqlite(db)
    write_configs(config_dir, {"type": "sqlite", "path": str(db)}, tree)
    upgrade(f"sqlite+aiosqlite:///{db}", config_dir, workdir)
    script = Path(__file__).resolve()
    run = measure(
        [sys.executable, str(script), f"--{kind}-only", str(tree), str(db)], cwd=workdir, env=env
    )
    check(run, label)
    counts = json.loads(run.stdout.strip().splitlines()[-1])
    common.remove_sqlite(db)
    return run, counts


# --- one scale -----------------------------------------------------------------------------------


def run_baseline(tree: Path, workdir: Path, env: dict[str, str], messages: int) -> tuple[Run, Any]:
    """The baseline on a fresh database migrated by the same Alembic head; its run and counts."""
    run, counts = run_helper("baseline", "baseline", tree, workdir, env)
    if counts["rows"] != messages:
        raise SystemExit(f"baseline inserted {counts['rows']:,} rows, not {messages:,}")
    return run, counts


def totals(report_path: Path) -> dict[str, int]:
    report = json.loads(report_path.read_text(encoding="utf-8"))
    return {key: int(value) for key, value in report["totals"].items()}


def migrate_cmd(target: Target, tree: Path, report: Path) -> list[str]:
    return [
        str(VENV_BIN / "convostore"),
        "migrate-legacy",
        "--config-dir",
        str(target.config_dir),
        "--data-dir",
        str(tree),
        "--report",
        str(report),
    ]


def run_scale(
    messages: int, files: int, args: argparse.Namespace, workdir: Path, *, last_scale: bool
) -> dict[str, Any]:
    tree = Path(args.tree) if args.tree else workdir / "tree"
    if args.tree and tree.exists():
        manifest = legacy_tree.load_manifest(tree)
        print(f"\nreusing the tree at {tree}: {manifest.messages:,} messages", flush=True)
    else:
        started = time.perf_counter()
        manifest = legacy_tree.generate(tree, messages, files)
        print(
            f"\ngenerated {manifest.messages:,} messages in {manifest.files:,} files"
            f" ({manifest.bytes / 2**20:,.0f} MiB) in {time.perf_counter() - started:.0f} s"
            f" at {tree}",
            flush=True,
        )
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}

    # The baseline runs before and after convostore, so a change in the machine's load during the
    # run weighs on both sides; the ratio is taken against the mean of the two.
    if args.skip_baseline:
        base_before, base_counts = NOT_RUN, {}
    else:
        base_before, base_counts = run_baseline(tree, workdir, env, manifest.messages)
    print(
        f"  baseline: {base_before.seconds:.1f} s, peak {base_before.peak_rss_mb:.0f} MB",
        flush=True,
    )

    importer = importer_version()  # the code the subprocesses run, should it change during a run
    databases = Databases(args.backend, workdir, tree)
    try:
        target = databases.fresh("ours")
        first = measure(migrate_cmd(target, tree, workdir / "report.json"), cwd=workdir, env=env)
        check(first, "convostore migrate-legacy")
        first_totals = totals(workdir / "report.json")
        print(
            f"  convostore: {first.seconds:.1f} s, {first_totals.get('imported', 0):,} imported,"
            f" peak {first.peak_rss_mb:.0f} MB at {first.peak_at_seconds:.0f} s",
            flush=True,
        )
        if args.skip_baseline:
            again, again_totals = NOT_RUN, {}
        else:
            again = measure(migrate_cmd(target, tree, workdir / "rerun.json"), cwd=workdir, env=env)
            check(again, "convostore migrate-legacy (rerun)")
            again_totals = totals(workdir / "rerun.json")
        rows_in_db = target.count()
        print(
            f"  rerun: {again.seconds:.1f} s, {again_totals.get('imported', 0):,} imported",
            flush=True,
        )
    finally:
        databases.close()
        if args.backend == "sqlite":
            common.remove_sqlite(workdir / "ours.db")
    stdlib: dict[str, Any] | None = None
    if args.stdlib_importer:
        plain, plain_counts = run_helper("stdlib", "stdlib importer", tree, workdir, env)
        print(
            f"  stdlib importer: {plain.seconds:.1f} s, {plain_counts['rows']:,} rows,"
            f" peak {plain.peak_rss_mb:.0f} MB",
            flush=True,
        )
        stdlib = {
            "seconds": plain.seconds,
            "per_s": manifest.messages / plain.seconds,
            "peak_rss_mb": plain.peak_rss_mb,
            "maxrss_mb": plain.maxrss_mb,
            "cpu_seconds": plain.cpu_seconds,
            **plain_counts,
            # convostore's speed against it (>1: faster) and its peak memory as a share of it.
            "convostore_speed_vs_it": plain.seconds / first.seconds,
            "convostore_memory_share": first.peak_rss_mb / plain.peak_rss_mb,
        }
    if args.skip_baseline:
        base_after = NOT_RUN
    else:
        base_after, _ = run_baseline(tree, workdir, env, manifest.messages)
    print(f"  baseline again: {base_after.seconds:.1f} s", flush=True)
    base = Run(
        seconds=(base_before.seconds + base_after.seconds) / 2,
        peak_rss_mb=max(base_before.peak_rss_mb, base_after.peak_rss_mb),
        maxrss_mb=max(base_before.maxrss_mb, base_after.maxrss_mb),
        cpu_seconds=(base_before.cpu_seconds + base_after.cpu_seconds) / 2,
        peak_at_seconds=float("nan"),
        parent_rss_mb=max(base_before.parent_rss_mb, base_after.parent_rss_mb),
        timeline=[],
        returncode=0,
        stdout="",
        stderr="",
    )

    base_rate = manifest.messages / base.seconds
    ours_rate = manifest.messages / first.seconds
    result = {
        "messages": manifest.messages,
        "files": manifest.files,
        "tree_mib": manifest.bytes / 2**20,
        "largest_file_mib": manifest.largest_file_bytes / 2**20,
        "records_by_layout": manifest.records,
        "files_by_layout": manifest.files_by_kind,
        "expected_rows": manifest.expected_rows,
        "backend": args.backend,
        "importer": importer,
        "baseline": {
            "seconds": base.seconds,
            "per_s": base_rate,
            "peak_rss_mb": base.peak_rss_mb,
            "maxrss_mb": base.maxrss_mb,
            "cpu_seconds": base.cpu_seconds,
            "runs_seconds": [base_before.seconds, base_after.seconds],
            **base_counts,
        },
        "convostore": {
            "seconds": first.seconds,
            "per_s": ours_rate,
            "imported_per_s": first_totals.get("imported", 0) / first.seconds,
            "ratio_vs_baseline": ours_rate / base_rate,
            "cpu_ratio_vs_baseline": base.cpu_seconds / first.cpu_seconds,
            "peak_rss_mb": first.peak_rss_mb,
            "peak_at_seconds": first.peak_at_seconds,
            "parent_rss_mb": first.parent_rss_mb,
            "rss_timeline": first.timeline,
            "maxrss_mb": first.maxrss_mb,
            "cpu_seconds": first.cpu_seconds,
            "totals": first_totals,
            "rows_in_db": rows_in_db,
            "rerun_seconds": again.seconds,
            "rerun_peak_rss_mb": again.peak_rss_mb,
            "rerun_totals": again_totals,
        },
    }
    if stdlib is not None:
        result["stdlib_importer"] = stdlib
    if args.profile and last_scale:
        result["profile"] = profile(args, tree, workdir)
    if not args.keep and not args.tree:
        shutil.rmtree(tree)
        (tree.parent / f"{tree.name}.manifest.json").unlink(missing_ok=True)
    elif not args.tree:
        print(f"  tree kept at {tree} (reuse with --tree {tree})")
    return result


# --- profile -------------------------------------------------------------------------------------


def profile(args: argparse.Namespace, tree: Path, workdir: Path) -> dict[str, Any]:
    """One more import under pyinstrument on a fresh database; the top functions by own time."""
    from pyinstrument.session import Session

    databases = Databases(args.backend, workdir, tree)
    session_file = common.RESULTS / f"import_profile_{args.backend}.pyisession"
    text_file = common.RESULTS / f"import_profile_{args.backend}.txt"
    try:
        target = databases.fresh("profiled")
        cmd = migrate_cmd(target, tree, workdir / "profiled.json")
        cmd = [
            sys.executable,
            "-m",
            "pyinstrument",
            "-r",
            "pyisession",
            "-o",
            str(session_file),
            "-m",
            "convostore",
            *cmd[1:],
        ]
        run = measure(cmd, cwd=workdir)
        check(run, "profiled convostore migrate-legacy")
    finally:
        databases.close()
        if args.backend == "sqlite":
            common.remove_sqlite(workdir / "profiled.db")
    session = Session.load(session_file)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pyinstrument",
            "--load",
            str(session_file),
            "-r",
            "text",
            "--show-all",
            "-o",
            str(text_file),
        ],
        check=True,
    )
    root = session.root_frame(trim_stem=False)
    own: dict[str, float] = {}
    inclusive: dict[str, float] = {}
    # Per convostore function: its time plus that of the library code it calls, less the time of
    # the convostore functions it calls; what a change to that function could win.
    attributed: dict[str, float] = {}

    def name(frame: Any) -> str:
        qualified = f"{frame.class_name}.{frame.function}" if frame.class_name else frame.function
        return f"{qualified} ({frame.file_path_short}:{frame.line_no})"

    def ours(frame: Any) -> bool:
        # "convostore/…" from an installed package, "../src/convostore/…" from an editable one.
        path = str(frame.file_path_short or "")
        return path.startswith("convostore/") or "/src/convostore/" in path

    def walk(frame: Any, parent: str, stack: frozenset[str]) -> float:
        """Visit ``frame``; return the time of the outermost convostore frames at or below it."""
        if frame.function == "[self]":
            # Time spent in the parent's own bytecode: charge it to the parent function.
            own[parent] = own.get(parent, 0.0) + frame.time
            return 0.0
        key = name(frame)
        if not frame.children:
            own[key] = own.get(key, 0.0) + frame.time
        if key not in stack:  # count a recursive function once
            inclusive[key] = inclusive.get(key, 0.0) + frame.time
        below = sum(walk(child, key, stack | {key}) for child in frame.children)
        if ours(frame) and frame.function != "<module>":
            attributed[key] = attributed.get(key, 0.0) + frame.time - below
            return float(frame.time)
        return below

    if root is not None:
        walk(root, "<root>", frozenset())
    total = session.duration or 1.0
    by_own = sorted(own.items(), key=lambda item: item[1], reverse=True)[: args.top]
    by_ours = sorted(attributed.items(), key=lambda item: item[1], reverse=True)[: args.top]
    print(
        f"\nprofile of one import: {total:.1f} s under pyinstrument, CPU {run.cpu_seconds:.1f} s;"
        f" top {args.top} functions by own time:"
    )
    print(
        common.table(
            ["function", "own %", "incl. %"],
            [[k, 100 * v / total, 100 * inclusive.get(k, 0.0) / total] for k, v in by_own],
        )
    )
    print(f"\nconvostore functions by time in them and the libraries they call (top {args.top}):")
    print(
        common.table(
            ["function", "share %", "incl. %"],
            [[k, 100 * v / total, 100 * inclusive.get(k, 0.0) / total] for k, v in by_ours],
        )
    )
    print(f"full call tree: {text_file.relative_to(common.ROOT)}")
    hotspots = {
        "by_own_time": [
            {"function": k, "own_share": v / total, "inclusive_share": inclusive[k] / total}
            for k, v in by_own
        ],
        "convostore_functions": [
            {"function": k, "share": v / total, "inclusive_share": inclusive[k] / total}
            for k, v in by_ours
        ],
    }
    return {"seconds": total, "cpu_seconds": run.cpu_seconds, "hotspots": hotspots}


# --- main ----------------------------------------------------------------------------------------


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--messages",
        default="1000000",
        help="message records per tree; a comma-separated list runs several scales",
    )
    p.add_argument(
        "--files",
        type=int,
        default=None,
        help="conversation files per tree (default: messages / 100, 10,000 at 1M messages)",
    )
    p.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    p.add_argument("--keep", action="store_true", help="keep the generated tree")
    p.add_argument("--tree", help="reuse a tree kept by --keep (one scale only)")
    p.add_argument(
        "--profile", action="store_true", help="also profile one import of the last scale"
    )
    p.add_argument("--top", type=int, default=15, help="hotspots listed by --profile")
    p.add_argument("--results", default=None, help="results file name (default import_<backend>)")
    p.add_argument(
        "--stdlib-importer",
        action="store_true",
        help="also time a straightforward json + sqlite3 importer that holds everything in RAM",
    )
    p.add_argument(
        "--skip-baseline",
        action="store_true",
        help="time convostore's first import alone (memory at large scales; no ratio, no rerun)",
    )
    p.add_argument("--baseline-only", nargs=2, metavar=("TREE", "DB"), help=argparse.SUPPRESS)
    p.add_argument("--stdlib-only", nargs=2, metavar=("TREE", "DB"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.baseline_only:
        counts = baseline(Path(args.baseline_only[0]), Path(args.baseline_only[1]))
        print(json.dumps(counts))
        return
    if args.stdlib_only:
        from convostore.config import StorageConfig

        storage = StorageConfig()  # the bots' configs in this benchmark keep the defaults
        counts = stdlib_importer(
            Path(args.stdlib_only[0]),
            Path(args.stdlib_only[1]),
            storage.session_gap,
            storage.session_timeout,
        )
        print(json.dumps(counts))
        return
    scales = [int(m) for m in str(args.messages).replace("_", "").split(",") if m.strip()]
    if args.tree and len(scales) > 1:
        raise SystemExit("--tree reuses one tree: give one --messages value")
    rows: list[dict[str, Any]] = []
    workdir = Path(tempfile.mkdtemp(prefix="convostore-import-"))
    try:
        for i, messages in enumerate(scales):
            files = args.files or max(1, messages // 100)
            last = i == len(scales) - 1
            rows.append(run_scale(messages, files, args, workdir, last_scale=last))
    finally:
        if args.keep:
            print(f"\nwork directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    report(rows, args)


def report(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    backend = "SQLite" if args.backend == "sqlite" else "PostgreSQL"
    print(
        f"\nlegacy import (importer {importer_version()}) into {backend};"
        " baseline: json + sqlite3.executemany on the same tree;"
        f" throughput = message records of the tree per second of wall time"
    )
    headers = [
        "messages",
        "files",
        "tree MiB",
        "baseline/s",
        "convostore/s",
        "ratio",
        "imported",
        "peak MB",
        "maxrss MB",
        "base peak MB",
        "rerun s",
        "rerun imported",
    ]
    rows = sorted(rows, key=lambda r: int(r["messages"]))
    table_rows = [
        [
            r["messages"],
            r["files"],
            r["tree_mib"],
            r["baseline"]["per_s"],
            r["convostore"]["per_s"],
            r["convostore"]["ratio_vs_baseline"],
            r["convostore"]["totals"].get("imported", 0),
            r["convostore"]["peak_rss_mb"],
            r["convostore"]["maxrss_mb"],
            r["baseline"]["peak_rss_mb"],
            r["convostore"]["rerun_seconds"],
            r["convostore"]["rerun_totals"].get("imported", 0),
        ]
        for r in rows
    ]
    print(common.table(headers, table_rows))
    for r in rows:
        ours = r["convostore"]
        verdicts = [
            f"ratio {ours['ratio_vs_baseline']:.2f} (target >= {RATIO_TARGET})",
            f"peak {ours['peak_rss_mb']:.0f} MB (target < {MEMORY_TARGET_MB})",
            f"rows {ours['rows_in_db']:,} (generator expects {r['expected_rows']:,})",
            f"rerun imported {ours['rerun_totals'].get('imported', 0)} (must be 0)",
            f"this script's RSS at spawn {ours['parent_rss_mb']:.0f} MB",
        ]
        print(f"  {r['messages']:,} (importer {r['importer']}): " + "; ".join(verdicts))
        print(
            f"    wall/CPU seconds: baseline {r['baseline']['seconds']:.1f}/"
            f"{r['baseline']['cpu_seconds']:.1f} (mean of a run before and after convostore:"
            f" {', '.join(f'{x:.1f}' for x in r['baseline']['runs_seconds'])} s),"
            f" convostore {ours['seconds']:.1f}/{ours['cpu_seconds']:.1f};"
            f" CPU-time ratio {ours['cpu_ratio_vs_baseline']:.2f};"
            f" convostore imported {ours['imported_per_s']:,.0f} rows/s"
        )
        plain = r.get("stdlib_importer")
        if plain is not None:
            print(
                f"    stdlib importer (json + sqlite3, rules and sessions in RAM):"
                f" {plain['seconds']:.1f} s at {plain['peak_rss_mb']:.0f} MB peak,"
                f" {plain['rows']:,} rows; convostore {plain['convostore_speed_vs_it']:.2f}x its"
                f" speed at {plain['convostore_memory_share']:.2f} of its memory"
                " (target: faster, under 0.25)"
            )
    name = args.results or f"import_{args.backend}"
    common.write_results(
        name, {"backend": args.backend, "importer": importer_version(), "rows": rows}
    )


def importer_version() -> str:
    """The last commit of the importer, and whether the working tree differs from it."""
    paths = ["src/convostore/legacy", "src/convostore/cli/legacy.py"]
    log = ["git", "-C", str(common.ROOT), "log", "-1", "--format=%h %cI", "--", *paths]
    diff = ["git", "-C", str(common.ROOT), "status", "--porcelain", "--", *paths]
    commit = subprocess.run(log, capture_output=True, text=True, check=False).stdout.strip()
    dirty = subprocess.run(diff, capture_output=True, text=True, check=False).stdout.strip()
    return commit + (" + uncommitted changes" if dirty else "")


if __name__ == "__main__":
    common.RESULTS.mkdir(parents=True, exist_ok=True)
    main()
