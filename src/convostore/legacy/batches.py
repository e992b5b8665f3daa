"""Bulk SQLite writes of the import: many rows per statement, on a thread of their own.

Python's ``sqlite3`` driver lets go of the GIL only while SQLite runs a statement, once per row of
an ``executemany``; on the way back the thread waits for the GIL (up to the interpreter's switch
interval, 5 ms) while the import's main thread is busy parsing. So the import writes many rows per
statement (:func:`insert_rows`: one ``sqlite3_step`` inserts hundreds of rows) and runs those
statements on a thread of their own (:class:`Behind`), one batch in flight while the main thread
prepares the next.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import chain
from typing import Any

from convostore.bulk_insert import statement_rows, values_insert

ROWS_PER_STATEMENT = 512
"""Rows per multi-row INSERT: 13 columns of them stay far below SQLite's 32,766 parameters."""


def insert_rows(
    execute: Callable[[str, Sequence[Any]], object],
    head: str,
    rows: Sequence[Sequence[Any]],
    tail: str = "",
) -> None:
    """Insert ``rows`` with ``execute(sql, parameters)``, :data:`ROWS_PER_STATEMENT` at a time
    (the rest as :func:`convostore.bulk_insert.statement_rows` cuts it)."""
    if not rows:
        return
    width = len(rows[0])
    for start, count in statement_rows(len(rows), ROWS_PER_STATEMENT):
        part = rows[start : start + count]
        execute(values_insert(head, width, count, tail), tuple(chain.from_iterable(part)))


class Behind:
    """Runs jobs one at a time on a thread of its own (or at once, when not ``threaded``).

    :meth:`submit` first waits for the job before, so at most one job is in flight and the
    jobs run in order; :meth:`wait` raises the error of a failed job; :meth:`close` lets the job in
    flight finish without raising (the caller is either done, having waited, or already failing
    with its own error) and stops the thread.
    """

    def __init__(self, threaded: bool, name: str) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix=name) if threaded else None
        self._in_flight: Future[None] | None = None

    def submit(self, job: Callable[[], None]) -> None:
        self.wait()
        if self._pool is None:
            job()
        else:
            self._in_flight = self._pool.submit(job)

    def wait(self) -> None:
        future, self._in_flight = self._in_flight, None
        if future is not None:
            future.result()

    def close(self) -> None:
        # The pool's shutdown waits for the job in flight and leaves its error in its future.
        self._in_flight = None
        if self._pool is not None:
            self._pool.shutdown()
