"""Bulk SQLite writes of the import: many rows per statement, on a thread of their own.

Python's ``sqlite3`` driver lets go of the GIL only while SQLite runs a statement, once per row of
an ``executemany``; on the way back the thread waits for the GIL (up to the interpreter's switch
interval, 5 ms) while the import's main thread is busy parsing. So the import writes many rows per
statement (:func:`insert_rows`: one ``sqlite3_step`` inserts hundreds of rows) and runs those
statements on a thread of their own (:class:`Behind`), one batch in flight while the main thread
prepares the next.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import chain
from typing import Any

ROWS_PER_STATEMENT = 512
"""Rows per multi-row INSERT: 13 columns of them stay far below SQLite's 32,766 parameters."""


@functools.lru_cache(maxsize=64)
def insert_statement(head: str, columns: int, rows: int, tail: str = "") -> str:
    """``{head} VALUES (?, …), … {tail}`` for ``rows`` rows of ``columns`` values."""
    one = "(" + ", ".join("?" * columns) + ")"
    return f"{head} VALUES {', '.join([one] * rows)}{' ' + tail if tail else ''}"


def insert_rows(
    execute: Callable[[str, Sequence[Any]], object],
    head: str,
    rows: Sequence[Sequence[Any]],
    tail: str = "",
) -> None:
    """Insert ``rows`` with ``execute(sql, parameters)``, :data:`ROWS_PER_STATEMENT` at a time.

    The rest goes in statements of 256, 128, … 1 rows, so a table has at most ten statements
    of different length: the driver keeps every statement it prepared in a cache of 128, and
    a statement for every length of a batch's rest raised the peak memory of a
    1M-record import from 187 to 209 MB.
    """
    if not rows:
        return
    columns = len(rows[0])
    at, left = 0, len(rows)
    while left:
        size = ROWS_PER_STATEMENT if left >= ROWS_PER_STATEMENT else 1 << (left.bit_length() - 1)
        part = rows[at : at + size]
        execute(insert_statement(head, columns, size, tail), tuple(chain.from_iterable(part)))
        at += size
        left -= size


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
