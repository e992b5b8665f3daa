"""What every command shares for talking to a person or a script.

* :func:`console`: human output. On a terminal it is rich's usual console; when stdout is a pipe or
  a file it neither wraps nor colours, so ``convostore stats | grep sage`` sees whole lines.
* :func:`table`: a table that draws boxes on a terminal and plain columns elsewhere.
* :func:`emit_json`: the one JSON document a ``--json`` command prints on stdout.
* :func:`confirm`: the question a destructive command asks on a terminal; elsewhere ``--yes`` is
  required, so a cron job never hangs on a prompt and never destroys data it was not told to.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
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
    if isinstance(value, Path):
        return str(value)
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
    answer = input(f"{question} [y/N] ").strip().lower()
    if answer not in ("y", "yes"):
        raise OperationError("cancelled; nothing was changed")
