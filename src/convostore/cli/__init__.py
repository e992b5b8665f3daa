"""The ``convostore`` command: thin wrappers that parse, call one library function, and print.

Each module in ``COMMAND_MODULES`` adds its subcommands with ``register(subparsers)`` and sets a
``handler(args) -> int``. Handled errors become one line on stderr and exit code 1, never a
traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from convostore import __version__
from convostore.config import BotConfig, load_configs
from convostore.errors import ConvostoreError, OperationError

COMMAND_MODULES = (
    "convostore.cli.project",
    "convostore.cli.legacy",
    "convostore.cli.names",
    "convostore.cli.ops",
    "convostore.cli.export",
    "convostore.cli.doctor",
    "convostore.cli.copy",
    "convostore.cli.serve",
    "convostore.cli.search",
    "convostore.cli.users",
)


def selected_configs(args: argparse.Namespace, *, enabled_only: bool = True) -> list[BotConfig]:
    """The configs a command works on: ``--bot NAME`` or every bot (with storage enabled)."""
    configs = load_configs(args.config_dir)
    if args.bot is not None:
        if args.bot not in configs:
            raise OperationError(f"no bot named {args.bot!r} in the configuration")
        configs = {args.bot: configs[args.bot]}
    chosen = [c for c in configs.values() if c.storage.enabled or not enabled_only]
    if not chosen:
        raise OperationError("no bot configuration with storage enabled found")
    return chosen


def _add_common_options(parser: argparse.ArgumentParser) -> None:
    known = parser._option_string_actions
    if "--config-dir" not in known:
        parser.add_argument(
            "--config-dir",
            type=Path,
            default=None,
            help="directory of bot YAML files (default: $CONVOSTORE_CONFIG_DIR or config/bots)",
        )
    if "--bot" not in known:
        parser.add_argument("--bot", default=None, help="only this bot (default: every bot)")
    if "--verbose" not in known:
        parser.add_argument("-v", "--verbose", action="store_true", help="log more detail")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="convostore", description="Conversation store for multi-bot Discord systems."
    )
    parser.add_argument("--version", action="version", version=f"convostore {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        module.register(subparsers)
    from convostore.cli._ui import HelpFormatter

    for subparser in subparsers.choices.values():
        _add_common_options(subparser)
        # Descriptions wrap; the epilog's indented "Example:" lines print as written.
        subparser.formatter_class = HelpFormatter
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from rich.logging import RichHandler

    logging.basicConfig(
        level=logging.INFO if getattr(args, "verbose", False) else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(show_time=False, show_path=False, console=None)],
    )
    try:
        return int(args.handler(args))
    except ConvostoreError as exc:
        print(f"convostore {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"convostore {args.command}: interrupted", file=sys.stderr)
        return 130


def _terminated(signum: int, _frame: object) -> None:
    # Unwind like Ctrl-C: open transactions roll back, temporary files are removed.
    print("convostore: terminated", file=sys.stderr)
    raise SystemExit(128 + signum)


def run() -> None:
    """The ``convostore`` console script: :func:`main` with SIGTERM handled like an interrupt."""
    signal.signal(signal.SIGTERM, _terminated)
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
