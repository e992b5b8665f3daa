"""``kill -9`` of writer processes during appends, and of ``convostore migrate-legacy``."""

from __future__ import annotations

import hashlib
import json
import random
import subprocess
import sys
import time
from pathlib import Path

from tests.faults import writers
from tests.faults._db import query, scalar
from tests.faults.report import Outcome

ROOT = Path(__file__).resolve().parents[2]


def _integrity(db_url: str) -> str:
    if not db_url.startswith("sqlite"):
        return "ok"
    return str(scalar(db_url, "PRAGMA integrity_check"))


def appends(db_url: str, backend: str, work: Path, *, kills: int, writer_count: int = 4) -> Outcome:
    """Keep ``writer_count`` writers appending; kill one with SIGKILL every ~0.3 s, restart it."""
    outcome = Outcome("kill -9 of writers during appends", backend, attempts=kills)
    rng = random.Random(kills)
    stop = work / "stop-appends"
    next_worker = writer_count
    live = [writers.start(db_url, w, stop) for w in range(writer_count)]
    for writer in live:
        writers.wait_ready(writer)
    done: list[writers.Writer] = []
    try:
        for _ in range(kills):
            time.sleep(rng.uniform(0.15, 0.45))
            victim = live.pop(rng.randrange(len(live)))
            victim.proc.kill()
            victim.collect()
            done.append(victim)
            fresh = writers.start(db_url, next_worker, stop)
            next_worker += 1
            writers.wait_ready(fresh)
            live.append(fresh)
    finally:
        stop.touch()
        for writer in live:
            writer.collect()
            done.append(writer)
    acked = {mid for writer in done for mid in writer.acked}
    stored = {
        int(row[0])
        for row in query(db_url, "SELECT message_id FROM conversations WHERE bot_name = 'writer'")
    }
    outcome.acknowledged = len(acked)
    outcome.lost = len(acked - stored)
    for writer in done:
        for error in writer.errors:
            outcome.failures += 1
            outcome.saw(f"writer: {error.split(':')[0]}")
    integrity = _integrity(db_url)
    counted = scalar(db_url, "SELECT sum(message_count) FROM sessions WHERE bot_name = 'writer'")
    if integrity != "ok" or counted != len(stored):
        outcome.failures += 1
        outcome.notes.append(f"integrity {integrity}, sessions count {counted} of {len(stored)}")
    outcome.saw(f"killed writers: no error; integrity {integrity}")
    return outcome


def _fingerprint(db_url: str) -> str:
    rows = query(
        db_url,
        "SELECT bot_name, channel_id, user_id, username, session_id, message_id, role, content, "
        "timestamp, metadata FROM conversations ORDER BY bot_name, message_id",
    )
    sessions = query(
        db_url,
        "SELECT bot_name, channel_id, session_id, started_at, last_activity, message_count "
        "FROM sessions ORDER BY bot_name, channel_id, session_id",
    )
    digest = hashlib.sha256(json.dumps([rows, sessions], default=str).encode())
    return f"{len(rows)} rows, {len(sessions)} sessions, {digest.hexdigest()[:12]}"


def _tree(work: Path, messages: int) -> Path:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import _legacy_tree  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    tree = work / "legacy-tree"
    if not tree.exists():
        _legacy_tree.generate(tree, messages, max(20, messages // 200), workers=2)
    return tree


def _configs(config_dir: Path, database: Path, tree: Path) -> None:
    config_dir.mkdir(parents=True, exist_ok=True)
    for bot in ("sage", "spark", "logic"):
        (config_dir / f"{bot}.yaml").write_text(
            f"name: {bot}\nstorage:\n  path: {json.dumps(str(database))}\n"
            f"  backups:\n    dir: {json.dumps(str(config_dir / 'backups'))}\n"
            f"legacy:\n  dir: {json.dumps(str(tree))}\n  timezone: UTC\n"
        )


def _migrate(config_dir: Path, tree: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            str(Path(sys.executable).with_name("convostore")),
            "migrate-legacy",
            "--config-dir",
            str(config_dir),
            "--data-dir",
            str(tree),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )


def migrate_legacy(template: Path, work: Path, *, kills: int, messages: int) -> Outcome:
    """Kill ``migrate-legacy`` at a random moment, run it again: the result equals a clean run."""
    import shutil

    outcome = Outcome("kill -9 of migrate-legacy, then rerun", "sqlite", attempts=kills)
    tree = _tree(work, messages)
    clean_db = work / "clean.db"
    shutil.copyfile(template, clean_db)
    _configs(work / "clean-config", clean_db, tree)
    started = time.monotonic()
    proc = _migrate(work / "clean-config", tree)
    _out, err = proc.communicate(timeout=600)
    took = time.monotonic() - started
    if proc.returncode != 0:
        raise RuntimeError(f"clean migrate-legacy failed: {err[-2000:]}")
    expected = _fingerprint(f"sqlite:///{clean_db}")
    outcome.acknowledged = int(expected.split()[0])
    rng = random.Random(kills)
    for k in range(kills):
        database = work / f"killed-{k}.db"
        shutil.copyfile(template, database)
        config_dir = work / f"killed-{k}-config"
        _configs(config_dir, database, tree)
        proc = _migrate(config_dir, tree)
        time.sleep(rng.uniform(0.1, 0.9) * took)
        proc.kill()
        proc.communicate(timeout=60)
        again = _migrate(config_dir, tree)
        _out, err = again.communicate(timeout=600)
        got = _fingerprint(f"sqlite:///{database}")
        if again.returncode != 0:
            outcome.failures += 1
            outcome.saw(f"rerun failed: {err.strip().splitlines()[-1] if err.strip() else '?'}")
        elif got != expected:
            outcome.failures += 1
            outcome.saw("rerun differs from a clean import")
            outcome.notes.append(f"kill {k}: {got} vs {expected}")
        else:
            outcome.saw("rerun identical to a clean import")
        leftovers = [p.name for p in database.parent.glob(f"{database.name}*stag*")]
        if leftovers:
            outcome.notes.append(f"kill {k}: staging files left: {leftovers}")
    outcome.notes.append(f"clean import: {expected}, {took:.1f} s")
    return outcome
