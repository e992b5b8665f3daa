"""What every command shares for talking to a person or a script.

* :func:`console`: human output. On a terminal it is rich's usual console; when stdout is a pipe or
  a file it neither wraps nor colours, so ``convostore stats | grep sage`` sees whole lines.
* :func:`table`: a table that draws boxes on a terminal and plain columns elsewhere.
* :func:`emit_json`: the one JSON document a ``--json`` command prints on stdout.
* :func:`confirm`: the question a destructive command asks on a terminal; elsewhere ``--yes`` is
  required, so a cron job never hangs on a prompt and never destroys data it was not told to.
* :func:`progress`: a progress bar on stderr that appears only on a terminal and only once the work
  has taken more than a second (so quick runs and scripts see nothing of it).
* :class:`HelpFormatter`: ``--help`` text whose indented lines (the ``Example:`` lines of each
  subcommand's epilog) are printed as written.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import json
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from convostore.errors import OperationError


def is_terminal(stream: Any = None) -> bool:
    stream = sys.stdout if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def console(*, stderr: bool = False) -> Console:
    """A console for human output: rich on a terminal, plain unwrapped text elsewhere."""
    stream = sys.stderr if stderr else sys.stdout
    if is_terminal(stream):
        return Console(stderr=stderr)
    # No wrapping at 80 columns and no colour codes when a script or a file reads the output.
    return Console(
        file=stream,
        width=100_000,
        no_color=True,
        color_system=None,
        highlight=False,
        emoji=False,
        soft_wrap=True,
    )


def table(*columns: str, title: str | None = None) -> Table:
    """A table with ``columns``; box drawing only on a terminal."""
    result = Table(
        title=title,
        show_edge=False,
        box=box.SIMPLE_HEAD if is_terminal() else None,
        pad_edge=False,
    )
    for column in columns:
        result.add_column(column, overflow="fold" if is_terminal() else "ignore", no_wrap=True)
    return result


def _default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, set | frozenset | tuple):
        return sorted(value) if isinstance(value, set | frozenset) else list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def emit_json(document: Any) -> None:
    """Print ``document`` as one JSON document on stdout (datetimes as ISO 8601, aware UTC)."""
    sys.stdout.write(json.dumps(document, default=_default, ensure_ascii=False, indent=2) + "\n")
    sys.stdout.flush()


def add_json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json", action="store_true", help="print one JSON document on stdout instead of tables"
    )


def add_yes_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-y",
        "--yes",
        action="store_true",
        help="do not ask for confirmation (needed when not on a terminal)",
    )


def confirm(question: str, *, assume_yes: bool) -> None:
    """Ask ``question`` on a terminal; refuse (``OperationError``) unless the answer is yes.

    With ``assume_yes`` (``--yes``) nothing is asked. Without a terminal on stdin nothing can be
    asked, so the command refuses and says to pass ``--yes``.
    """
    if assume_yes:
        return
    if not is_terminal(sys.stdin):
        raise OperationError(f"{question.rstrip('?')}: not on a terminal; pass --yes to confirm")
    # The question goes to stderr: stdout may be a file or a pipe reading --json output.
    sys.stderr.write(f"{question} [y/N] ")
    sys.stderr.flush()
    answer = sys.stdin.readline().strip().lower()
    if answer not in ("y", "yes"):
        raise OperationError("cancelled; nothing was changed")


class Bar:
    """What a command reports progress to; draws nothing until it has a terminal and a second."""

    def __init__(self, description: str, total: int | None, *, delay: float = 1.0) -> None:
        self.description = description
        self.total = total
        self.completed = 0
        self._delay = delay
        self._started = time.monotonic()
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._enabled = is_terminal(sys.stderr)

    def update(
        self,
        completed: int | None = None,
        *,
        total: int | None = None,
        advance: int = 0,
        description: str | None = None,
    ) -> None:
        if completed is not None:
            self.completed = completed
        self.completed += advance
        if total is not None:
            self.total = total
        if description is not None:
            self.description = description
        if not self._enabled:
            return
        if self._progress is None:
            if time.monotonic() - self._started < self._delay:
                return
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._progress.start()
            self._task = self._progress.add_task(self.description, total=self.total)
        assert self._task is not None
        self._progress.update(
            self._task, completed=self.completed, total=self.total, description=self.description
        )

    def advance(self, amount: int = 1) -> None:
        self.update(advance=amount)

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


@contextmanager
def progress(description: str, total: int | None = None, *, delay: float = 1.0) -> Iterator[Bar]:
    """A :class:`Bar` for work that may take more than ``delay`` seconds; removed at the end."""
    bar = Bar(description, total, delay=delay)
    try:
        yield bar
    finally:
        bar.stop()


class HelpFormatter(argparse.HelpFormatter):
    """Wraps prose, keeps indented lines (examples) and blank lines as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        out: list[str] = []
        for paragraph in text.split("\n\n"):
            lines = paragraph.splitlines()
            if (
                lines
                and all(not line or line[0].isspace() for line in lines[1:])
                and any(line[:1].isspace() for line in lines)
            ):
                # "Example:" followed by indented command lines: as written.
                out.append("\n".join(indent + line for line in lines))
            else:
                out.append(
                    textwrap.fill(
                        " ".join(paragraph.split()),
                        width,
                        initial_indent=indent,
                        subsequent_indent=indent,
                    )
                )
        return "\n\n".join(out)
