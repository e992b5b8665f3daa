"""Every registered subcommand explains itself: a one-line description and an example."""

from __future__ import annotations

import argparse

import pytest

from convostore.cli import build_parser, main


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    [action] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def test_every_subcommand_has_a_description_and_an_example(
    capsys: pytest.CaptureFixture[str],
) -> None:
    subcommands = _subcommands()
    assert {"backup", "restore", "cleanup", "doctor", "stats", "browse"} <= set(subcommands)
    for name, sub in subcommands.items():
        assert sub.description, f"{name}: no description"
        assert "\n" not in sub.description.strip(), f"{name}: description is more than one line"
        assert len(sub.description) <= 160, f"{name}: description longer than one line"
        assert sub.epilog and "Example" in sub.epilog, f"{name}: no Example: in its epilog"
        with pytest.raises(SystemExit) as done:
            main([name, "--help"])
        assert done.value.code == 0
        out = capsys.readouterr().out
        # The example is printed as written: an indented line that runs this subcommand.
        assert any(
            line.startswith("  ") and f"convostore {name}" in line for line in out.splitlines()
        ), f"{name}: no `convostore {name} ...` example line in --help:\n{out}"
        assert "--config-dir" in out, name


@pytest.mark.parametrize(
    "command",
    ["stats", "doctor", "browse", "verify", "backup", "cleanup", "close-sessions"],
)
def test_listed_commands_take_json(command: str) -> None:
    options = _subcommands()[command]._option_string_actions
    assert "--json" in options


@pytest.mark.parametrize("command", ["restore", "cleanup"])
def test_destructive_commands_take_yes(command: str) -> None:
    assert "--yes" in _subcommands()[command]._option_string_actions
