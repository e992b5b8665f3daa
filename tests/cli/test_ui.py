"""The shared command-line pieces: confirmation, JSON output, plain output when piped."""

from __future__ import annotations

import argparse
import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from convostore.cli import _ui
from convostore.errors import OperationError


class _Stream(io.StringIO):
    def __init__(self, tty: bool, text: str = "") -> None:
        super().__init__(text)
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_confirm_needs_yes_off_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", _Stream(tty=False))
    with pytest.raises(OperationError, match="pass --yes"):
        _ui.confirm("delete 3 sessions?", assume_yes=False)
    _ui.confirm("delete 3 sessions?", assume_yes=True)  # --yes: no question, no refusal


@pytest.mark.parametrize(
    ("answer", "accepted"), [("y\n", True), ("yes\n", True), ("n\n", False), ("\n", False)]
)
def test_confirm_asks_on_a_terminal(
    monkeypatch: pytest.MonkeyPatch, answer: str, accepted: bool
) -> None:
    monkeypatch.setattr("sys.stdin", _Stream(tty=True, text=answer))
    if accepted:
        _ui.confirm("restore?", assume_yes=False)
    else:
        with pytest.raises(OperationError, match="cancelled"):
            _ui.confirm("restore?", assume_yes=False)


def test_emit_json_is_one_document(monkeypatch: pytest.MonkeyPatch) -> None:
    out = _Stream(tty=False)
    monkeypatch.setattr("sys.stdout", out)
    at = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    _ui.emit_json({"at": at, "path": Path("/tmp/x"), "bots": {"b", "a"}})
    assert json.loads(out.getvalue()) == {
        "at": "2026-12-02T12:00:00+00:00",
        "path": "/tmp/x",
        "bots": ["a", "b"],
    }


def test_piped_output_does_not_wrap(monkeypatch: pytest.MonkeyPatch) -> None:
    out = _Stream(tty=False)
    monkeypatch.setattr("sys.stdout", out)
    console = _ui.console()
    rows = _ui.table("type", "channel")
    rows.add_row("dm", "x" * 300)
    console.print(rows)
    console.print("[bold]plain[/]")
    lines = out.getvalue().splitlines()
    assert any("x" * 300 in line for line in lines)
    assert "\x1b[" not in out.getvalue()
    assert not any(ch in out.getvalue() for ch in "─━│┃")


def test_progress_bar_only_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    piped = _Stream(tty=False)
    monkeypatch.setattr("sys.stderr", piped)
    with _ui.progress("copying rows", 10, delay=0) as bar:
        bar.update(5)
        bar.advance(5)
    assert bar.completed == 10 and piped.getvalue() == ""

    terminal = _Stream(tty=True)
    monkeypatch.setattr("sys.stderr", terminal)
    with _ui.progress("copying rows", 10, delay=0) as bar:
        bar.update(5)
    assert "copying rows" in terminal.getvalue()

    quiet = _Stream(tty=True)
    monkeypatch.setattr("sys.stderr", quiet)
    with _ui.progress("quick work", 10, delay=60) as bar:
        bar.update(10)  # done within the delay: nothing drawn
    assert quiet.getvalue() == ""


def test_help_formatter_keeps_example_lines() -> None:
    parser = argparse.ArgumentParser(
        prog="convostore x",
        formatter_class=_ui.HelpFormatter,
        description="One line that says what it does.",
        epilog="Example:\n  convostore x --bot sage --json   # with  two  spaces",
    )
    assert "  convostore x --bot sage --json   # with  two  spaces" in parser.format_help()
