"""The import's bulk writes: many rows per statement, on a thread of their own."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from convostore.legacy.batches import ROWS_PER_STATEMENT, Behind, insert_rows


def _insert(path: Path, count: int) -> list[int]:
    """Insert ``count`` rows into a real SQLite file; the number of rows of each statement."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("CREATE TABLE t (n INTEGER, text TEXT)")
    sizes: list[int] = []

    def execute(sql: str, parameters: Sequence[Any]) -> object:
        assert sql.count("?") == len(parameters)
        sizes.append(sql.count("(?, ?)"))
        return db.execute(sql, parameters)

    rows = [(i, f"row {i}") for i in range(count)]
    insert_rows(execute, "INSERT INTO t (n, text)", rows)
    assert db.execute("SELECT n, text FROM t ORDER BY rowid").fetchall() == rows
    db.close()
    return sizes


@pytest.mark.parametrize(
    ("count", "sizes"),
    [
        (0, []),
        (1, [1]),
        (7, [4, 2, 1]),
        (ROWS_PER_STATEMENT, [ROWS_PER_STATEMENT]),
        (1300, [512, 512, 256, 16, 4]),
    ],
)
def test_rows_arrive_whole_and_in_order(tmp_path: Path, count: int, sizes: list[int]) -> None:
    assert ROWS_PER_STATEMENT == 512
    assert _insert(tmp_path / "t.db", count) == sizes


def test_a_table_gets_at_most_ten_statements_of_different_length(tmp_path: Path) -> None:
    """The driver caches every statement it prepares: their number must stay bounded."""
    lengths: set[int] = set()
    for count in range(1, 1100, 7):
        path = tmp_path / f"{count}.db"
        lengths.update(_insert(path, count))
        path.unlink()
    assert lengths == {512, 256, 128, 64, 32, 16, 8, 4, 2, 1}


def test_jobs_run_in_order_one_at_a_time_on_a_thread_of_their_own() -> None:
    behind = Behind(True, "test-behind")
    ran: list[tuple[int, str]] = []
    running = threading.Semaphore(1)

    def job(n: int) -> None:
        assert running.acquire(blocking=False), "two jobs at once"
        ran.append((n, threading.current_thread().name))
        running.release()

    for n in range(20):
        behind.submit(lambda n=n: job(n))
    behind.wait()
    behind.close()
    assert [n for n, _ in ran] == list(range(20))
    assert all(name.startswith("test-behind") for _, name in ran)


def test_a_failed_job_raises_on_wait_and_close_raises_nothing() -> None:
    behind = Behind(True, "test-behind")

    def fail() -> None:
        raise sqlite3.OperationalError("database or disk is full")

    behind.submit(fail)
    with pytest.raises(sqlite3.OperationalError, match="disk is full"):
        behind.wait()
    behind.submit(fail)
    behind.close()  # the caller is already failing: its own error is the one to report
    with pytest.raises(RuntimeError):
        behind.submit(lambda: None)  # the thread is stopped


def test_without_a_thread_jobs_run_at_once() -> None:
    behind = Behind(False, "unused")
    ran: list[str] = []
    behind.submit(lambda: ran.append(threading.current_thread().name))
    assert ran == [threading.main_thread().name]
    behind.close()
