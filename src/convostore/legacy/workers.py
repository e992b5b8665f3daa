"""Worker processes that parse a large legacy tree while the import's process stages it.

Each worker is ``python -m convostore.legacy.workers`` (the interpreter running the import), with
two pipes: it receives the :class:`~convostore.legacy.routing.Routing` and the path of its
:class:`~convostore.legacy.stage.StagePart` once, then tasks of :data:`FILES_PER_TASK` numbered
files. It stages each task's rows in its part and sends back the files'
:class:`~convostore.legacy.routing.StagedFile` without them (names, problems and counts, for the
report), or the error reading a file raised. Told to stop, it indexes its part and says so.
Workers are started as programs of their own rather than through :mod:`multiprocessing`'s
``spawn``, which would run the caller's main module again in every worker (a script without an
``if __name__ == "__main__":`` guard would then start its work once per worker).

The import's process reads files too: with *n* workers, task *k* is its own when *k* mod (*n* + 1)
is 0, else worker (*k* mod (*n* + 1))'s, and the results are taken in the same order, so the
files are applied in the tree's order; at most :data:`TASKS_PER_WORKER` tasks per worker are
ahead of it, so memory stays bounded however large the tree.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import subprocess
import sys
from collections.abc import Generator, Sequence
from multiprocessing.connection import Connection
from pathlib import Path

from convostore.errors import LegacyImportError
from convostore.legacy.reader import LegacyFile
from convostore.legacy.routing import Routing, StagedFile
from convostore.legacy.stage import Stage, StagePart

FILES_PER_TASK = 16
TASKS_PER_WORKER = 2
_STOP_SECONDS = 10.0

_Task = list[tuple[int, LegacyFile]]


class _Worker:
    """One worker process and its two pipes, seen from the import's process."""

    def __init__(self, routing: Routing, part: Path) -> None:
        tasks_in, tasks_out = os.pipe()
        results_in, results_out = os.pipe()
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", __name__, str(tasks_in), str(results_out)],
                pass_fds=(tasks_in, results_out),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
            )
        except BaseException:
            for fd in (tasks_out, results_in):
                os.close(fd)
            raise
        finally:
            os.close(tasks_in)
            os.close(results_out)
        self.tasks = Connection(tasks_out, readable=False)
        self.results = Connection(results_in, writable=False)
        self.send((routing, part))

    def _stopped(self) -> LegacyImportError:
        try:
            code: int | None = self.process.wait(_STOP_SECONDS)
        except subprocess.TimeoutExpired:
            code = None
        return LegacyImportError(
            "a worker process reading the legacy tree stopped"
            + (f" (exit status {code})" if code is not None else "")
            + "; nothing was written: run the import again"
        )

    def send(self, task: _Task | tuple[Routing, Path] | None) -> None:
        try:
            self.tasks.send(task)
        except OSError:
            raise self._stopped() from None

    def receive(self) -> list[StagedFile]:
        try:
            kind, value = self.results.recv()
        except (EOFError, OSError):
            raise self._stopped() from None
        except Exception as exc:  # an error of the worker that cannot be rebuilt here
            raise LegacyImportError(
                f"a worker process reading the legacy tree failed: {exc}"
            ) from None
        if kind == "error":
            raise value
        return list(value)

    def finish(self) -> None:
        """Tell the worker there is nothing more; wait until its part is indexed and closed."""
        self.send(None)
        self.receive()

    def stop(self) -> None:
        """Make sure the worker has ended (killed if it does not end by itself)."""
        with contextlib.suppress(OSError):
            self.tasks.send(None)
        self.tasks.close()
        self.results.close()
        try:
            self.process.wait(_STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def staged_in_workers(
    routing: Routing, files: Sequence[LegacyFile], workers: int, stage: Stage
) -> Generator[StagedFile, None, None]:
    """Each file's :class:`StagedFile`, in order, made by this process and ``workers`` more.

    The tasks are dealt in turn: this process makes every (``workers`` + 1)-th itself, keeping
    its rows (the caller stages them); the workers stage theirs in parts of ``stage``, added to
    it once every file is read. An error a worker met (a file it cannot open) is raised here as
    it was raised there; a worker that dies is a :class:`~convostore.errors.LegacyImportError`.
    Leaving early stops the workers.
    """
    numbered = list(enumerate(files))
    tasks = [numbered[i : i + FILES_PER_TASK] for i in range(0, len(numbered), FILES_PER_TASK)]
    parts = [stage.part_path(n) for n in range(min(workers, len(tasks) - 1))]
    pool: list[_Worker] = []
    try:
        for part in parts:
            pool.append(_Worker(routing, part))
        turns = len(pool) + 1
        sent = 0

        def send_until(end: int) -> None:
            nonlocal sent
            while sent < min(end, len(tasks)):
                if sent % turns:
                    pool[sent % turns - 1].send(tasks[sent])
                sent += 1

        for k, task in enumerate(tasks):
            send_until(k + 1 + turns * TASKS_PER_WORKER)
            if k % turns:
                yield from pool[k % turns - 1].receive()
            else:
                yield from (routing.stage(file, ordinal) for ordinal, file in task)
        for worker in pool:
            worker.finish()
        stage.add_parts(parts)
    finally:
        for worker in pool:
            worker.stop()


def _staged(routing: Routing, part: StagePart, task: _Task) -> list[StagedFile]:
    staged = [routing.stage(file, ordinal) for ordinal, file in task]
    part.add([row for one in staged for row in one.rows])
    return [one._replace(rows=[]) for one in staged]


def _send_error(results: Connection, exc: Exception) -> None:
    """Send ``exc`` to be raised again in the import's process (as text if it cannot go)."""
    try:
        results.send(("error", exc))
    except (pickle.PicklingError, TypeError, AttributeError, RecursionError):  # cannot go
        results.send(("error", LegacyImportError(f"{type(exc).__name__}: {exc}")))


def _serve(tasks: Connection, results: Connection) -> None:
    routing, path = tasks.recv()
    try:
        part = StagePart(path)
    except Exception as exc:  # a full or read-only temporary directory: said at the first task
        _send_error(results, exc)
        return
    while (task := tasks.recv()) is not None:
        try:
            staged = _staged(routing, part, task)
        except Exception as exc:
            _send_error(results, exc)
            continue
        results.send(("ok", staged))
    try:
        part.finish()
    except Exception as exc:
        _send_error(results, exc)
        return
    results.send(("ok", []))


def main(argv: Sequence[str]) -> None:
    # An interrupt at the terminal reaches the whole process group: the import's process
    # handles it and stops its workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    tasks_fd, results_fd = (int(arg) for arg in argv)
    # EOF or a broken pipe: the import's process stopped first, nothing left to do.
    with (
        Connection(tasks_fd, writable=False) as tasks,
        Connection(results_fd, readable=False) as results,
        contextlib.suppress(EOFError, BrokenPipeError),
    ):
        _serve(tasks, results)


if __name__ == "__main__":
    main(sys.argv[1:])
