"""A large legacy tree is parsed by worker processes: the import must be exactly the same."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import convostore.legacy.importer as importer
import convostore.legacy.routing as routing
import convostore.legacy.workers as workers
from convostore import BotStore, ChannelInfo, load_config
from convostore.legacy.reader import LegacyFile, scan
from convostore.legacy.routing import BotFilter, Routing, staged_here
from convostore.legacy.stage import Stage
from tests.conftest import _truncate
from tests.legacy.test_import import all_rows, all_sessions, migrate, write_configs
from tests.legacy.tree import U1, U2, conversation, long_tree, messy_tree, record, write


def crowded_tree(root: Path) -> Path:
    """The messy tree, plus 120 files whose channels, duplicates and names cross files.

    Channel 77 is spread over 40 files with interleaved times, so its rows come from the
    parts of several workers; its messages 5000-5999 are each in two files with different times
    (the earliest must win, whichever worker read it); the channel's name differs between
    files (the first file in the tree's order must win).
    """
    data = messy_tree(root)
    shared = data / "multi_bot_conversations"
    for n in range(120):
        channel = 77 if n % 3 == 0 else 1000 + n
        user = 10_000 + n
        records = [
            record(
                "user",
                f"file {n} message {i}",
                f"2025-02-{1 + i % 27:02d}T{n % 24:02d}:{i:02d}:00",
                None,
                message_id=5000 + (n % 60) * 100 + i if channel == 77 else 100_000 * n + i,
                username=f"user{n}",
                channel_name=f"room-{n}",
            )
            for i in range(12)
        ]
        records.append(record("assistant", f"reply {n}", "2025-02-28T00:00:00", "sage"))
        write(
            shared / ("sage" if n % 2 else "spark") / f"{channel}_{user}.json",
            conversation(channel, user, *records),
        )
    write(
        shared / f"{77}_{U2}.json",
        conversation(77, U2, record("user", "to both", "2025-02-03T00:00:00", None, username="b")),
    )
    write(data / "sage" / f"77_{U1}.json", [record("user", "era 0", "2025-02-02T00:00:00")])
    # One message id in three channels of sage (a shared file, read far from the others): the
    # earliest copy is the one kept, the others are duplicates.
    for channel, at, text in (
        (2003, "2025-03-03T00:00:00", "copy latest"),
        (2001, "2025-03-02T00:00:00", "copy later"),
        (2002, "2025-03-01T00:00:00", "copy earliest"),
    ):
        folder = shared if channel == 2003 else shared / "sage"
        write(
            folder / f"{channel}_{U1}.json",
            conversation(
                channel,
                U1,
                record("user", text, at, None, message_id=777),
                record("user", f"next in {channel}", at.replace("T00", "T01"), None),
                participants=["sage"],
            ),
        )
    return data


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return crowded_tree(tmp_path / "legacy")


def _spy(monkeypatch: pytest.MonkeyPatch, count: int) -> list[int]:
    """Make the import use ``count`` workers; the list records each call's worker count."""
    calls: list[int] = []
    original = workers.staged_in_workers

    def spied(*args: Any) -> Iterator[Any]:
        calls.append(args[2])
        return original(*args)

    monkeypatch.setattr(importer, "worker_count", lambda files: count)
    monkeypatch.setattr(importer, "staged_in_workers", spied)
    return calls


def _empty(db_url: str, request: pytest.FixtureRequest) -> None:
    if db_url.startswith("sqlite"):
        path = Path(db_url.split("///", 1)[1])
        for extra in ("-wal", "-shm"):
            Path(f"{path}{extra}").unlink(missing_ok=True)
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
    else:
        _truncate(db_url)


def test_worker_processes_import_exactly_what_this_process_imports(
    configs: Path,
    db_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    results: dict[int, tuple[Any, ...]] = {}
    for count in (3, 0):
        _empty(db_url, request)
        calls = _spy(monkeypatch, count)
        report = tmp_path / f"report-{count}.json"
        assert migrate(configs, "--report", str(report)) == 0
        assert calls == ([count] if count else [])
        results[count] = (
            all_rows(db_url),
            all_sessions(db_url),
            json.loads(report.read_text()),
        )
    rows, sessions, report_data = results[3]
    assert (rows, sessions, report_data) == results[0]
    # What the crossing files must give, whichever worker read them.
    # The tree's order is by path: sage's folder, whose file 3 names channel 77 first, comes
    # before spark's; names are the tree's, not a bot's.
    assert {r[2] for r in rows if r[1] == "77"} == {"room-3"}
    duplicated = [r for r in rows if r[0] == "spark" and r[7] == str(5000 + 3)]
    assert len(duplicated) == 1 and duplicated[0][9] == "file 0 message 3"
    assert report_data["bots"]["spark"]["records"]["duplicate"] > 0
    assert len(report_data["files"]) == len(list(scan(configs.parent / "legacy")))
    assert sum(s[5] for s in sessions) == len(rows)
    copies = [r for r in rows if r[0] == "sage" and r[7] == "777"]
    assert [(r[1], r[9]) for r in copies] == [("2002", "copy earliest")]
    assert {r[9] for r in rows if r[1] in ("2001", "2003")} == {"next in 2001", "next in 2003"}
    imported = {bot: r["records"]["imported"] for bot, r in report_data["bots"].items()}
    assert imported["sage"] == len([r for r in rows if r[0] == "sage"])
    assert imported["spark"] == len([r for r in rows if r[0] == "spark"])


def test_a_file_a_worker_cannot_open_fails_as_it_does_in_this_process(tmp_path: Path) -> None:
    route = Routing({}, None, BotFilter())
    missing = LegacyFile(tmp_path, "gone.json", 2, "sage")
    with pytest.raises(FileNotFoundError) as here:
        list(staged_here(route, [missing]))
    stage = Stage()
    try:
        with pytest.raises(FileNotFoundError) as there:
            list(workers.staged_in_workers(route, [missing], 2, stage))
    finally:
        stage.close()
    assert str(there.value) == str(here.value)


def test_a_worker_that_cannot_open_its_staging_file_says_why_in_one_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    files = list(scan(crowded_tree(tmp_path / "legacy")))
    stage = Stage()
    monkeypatch.setattr(stage, "part_path", lambda n: tmp_path / "no such folder" / f"{n}.db")
    try:
        with pytest.raises(sqlite3.OperationalError, match="unable to open database file"):
            list(workers.staged_in_workers(Routing({}, None, BotFilter()), files, 1, stage))
    finally:
        stage.close()
    assert "Traceback" not in capfd.readouterr().err


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_killed_worker_stops_the_import_with_one_line_and_nothing_written(
    configs: Path,
    db_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _spy(monkeypatch, 2)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(scratch))
    received: list[int] = []
    original: Callable[[workers._Worker], list[Any]] = workers._Worker.receive

    def receive(worker: workers._Worker) -> list[Any]:
        received.append(worker.process.pid)
        if len(received) == 3:
            worker.process.send_signal(signal.SIGKILL)
            worker.process.wait()
        return original(worker)

    monkeypatch.setattr(workers._Worker, "receive", receive)
    assert migrate(configs) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "worker process" in err[0] and "exit status -9" in err[0]
    assert all_rows(db_url) == [] and all_sessions(db_url) == []
    assert list(scratch.iterdir()) == []  # the staging files are gone


def test_a_script_without_a_main_guard_runs_once(configs: Path, tmp_path: Path) -> None:
    """Workers are programs of their own: the caller's main module is never run again."""
    marks = tmp_path / "runs.txt"
    script = tmp_path / "import_now.py"
    script.write_text(
        "import convostore.legacy.importer as importer\n"
        "from convostore.config import load_configs\n"
        "from convostore.legacy.run import migrate_legacy\n"
        "used = []\n"
        "original = importer.staged_in_workers\n"
        "importer.worker_count = lambda files: 2\n"
        "importer.staged_in_workers = lambda *a: used.append(a[2]) or original(*a)\n"
        f"with open({str(marks)!r}, 'a') as fh:\n"
        "    fh.write('ran\\n')\n"
        f"report = migrate_legacy(load_configs({str(configs)!r}))\n"
        "print(used, report.totals['imported'])\n"
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert marks.read_text() == "ran\n"
    used, imported = done.stdout.split("]")
    assert used == "[2" and int(imported) > 1000


def test_workers_only_for_a_large_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = messy_tree(tmp_path / "legacy")
    files = list(scan(data))
    assert routing.worker_count(files) == 0
    size = sum(f.path.stat().st_size for f in files if not (f.ignored or f.temp))
    monkeypatch.setattr(routing, "PARALLEL_MIN_BYTES", size)
    cpus = len(os.sched_getaffinity(0))
    assert routing.worker_count(files) == (min(cpus - 1, routing.MAX_WORKERS) if cpus >= 2 else 0)
    monkeypatch.setattr(sys, "executable", "")  # Python embedded: nothing to start
    assert routing.worker_count(files) == 0
    monkeypatch.undo()
    monkeypatch.setattr(routing, "PARALLEL_MIN_BYTES", size + 1)
    assert routing.worker_count(files) == 0


def test_an_import_beside_a_writing_bot_loses_nothing(db_url: str, tmp_path: Path) -> None:
    """A bot keeps writing into the database while a large import (with a worker) runs: every
    acknowledged message and every imported record is stored once, sessions count them exactly."""
    data = long_tree(tmp_path / "big", files=300, records=200)
    configs = write_configs(tmp_path / "bots", db_url, data, sage={})
    process = subprocess.Popen(
        [sys.executable, "-m", "convostore", "migrate-legacy", "--config-dir", str(configs)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    live = ChannelInfo.channel(channel_id=999, name="live")

    async def write_while_importing() -> list[str]:
        acknowledged: list[str] = []
        async with BotStore.open(load_config(configs / "sage.yaml")) as store:
            while process.poll() is None:
                stored = await store.add_message(
                    live, user_id=7, username="u", role="user", content="live", message_id=None
                )
                acknowledged.append(stored.message_id)
        return acknowledged

    acknowledged = asyncio.run(write_while_importing())
    _, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    assert len(acknowledged) > 10  # the bot wrote all along the import
    rows = all_rows(db_url)
    assert sorted(r[7] for r in rows if r[1] == "999") == sorted(acknowledged)
    assert len([r for r in rows if r[12] == "legacy"]) == 300 * 200
    assert len(rows) == 300 * 200 + len(acknowledged)
    assert sum(s[5] for s in all_sessions(db_url)) == len(rows)
