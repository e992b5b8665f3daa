"""``convostore init``, ``upgrade`` and ``downgrade``: a bot project from ``pip install`` on.

They work from any directory with only the installed package: the schema migrations ship inside
it (see :mod:`convostore.ops.upgrade`).
"""

from __future__ import annotations

import argparse
import logging
import re
from pathlib import Path
from typing import Any

from convostore.cli import _ui
from convostore.config import default_config_dir
from convostore.errors import OperationError
from convostore.ops.upgrade import Target, current_revision, downgrade, targets, upgrade

_EXAMPLES = "Examples:\n  "


def bot_config_text(name: str, *, path: str | None = None, url: str | None = None) -> str:
    """A commented YAML config for ``name``: every key, its default, and one line of why."""
    if url is not None:
        kind = "postgresql" if url.startswith("postgres") else "sqlite"
        where = (
            f"  type: {kind}                      # sqlite | postgresql\n"
            f"  url: {url}\n"
            "  # a database URL instead of path; ${ENV} is expanded, so keep passwords out of\n"
            "  # this file: postgresql+asyncpg://bots:${BOTS_DB_PASSWORD}@db.internal/bots\n"
            "  # path: ./data/conversations.db   (a SQLite file instead of url)\n"
        )
    else:
        where = (
            "  type: sqlite                       # sqlite | postgresql\n"
            f"  path: {path or './data/conversations.db'}\n"
            "  # the SQLite file, relative to where the bot runs; {bot_name} is replaced\n"
            "  # (./data/{bot_name}.db gives each bot its own file). Several bots may share one.\n"
            "  # url: postgresql+asyncpg://bots:${BOTS_DB_PASSWORD}@db.internal/bots\n"
            "  # (instead of path, with type: postgresql; ${ENV} is expanded)\n"
        )
    return (
        f"# convostore configuration of the bot {name!r} (written by `convostore init`).\n"
        "# Every key is shown with its default; delete the ones you do not change.\n"
        f"name: {name}                          # defaults to the file name\n"
        "storage:\n"
        "  enabled: true                      # false: the bot stores nothing\n"
        f"{where}"
        "  max_history: 100                   # default number of messages history() returns\n"
        "  session_timeout: 3600              # seconds: no session spans more than this\n"
        "  session_gap: 300                   # seconds of silence that start a new session\n"
        "  synchronous: normal                # normal | full: full survives a power cut too\n"
        "  backups:\n"
        "    dir: ./data/backups              # where `convostore backup` writes\n"
        "    keep: 7                          # backups of this database to keep\n"
        "  retention:\n"
        "    max_age_days: null               # `convostore cleanup` deletes older sessions\n"
        "    dms_max_age_days: null           # the same for direct messages only\n"
        "    channels_max_age_days: null      # the same for guild channels only\n"
        "legacy:\n"
        "  dir: ./data                        # the old JSON tree (`convostore migrate-legacy`)\n"
        "  timezone: UTC                      # how naive legacy timestamps are read (IANA name)\n"
        "  read_fallback: false               # serve not-yet-imported JSON history when reading\n"
        "  token_env: DISCORD_TOKEN           # env variable with the token resolve-names uses\n"
    )


def _check(file: Path, text: str) -> None:
    """Validate a config before it is written, so a bad --path/--url writes nothing.

    ``${ENV}`` references are not expanded here: the variable is often set only where the bot
    runs, not where it is configured.
    """
    import yaml
    from pydantic import ValidationError

    from convostore.config import BotConfig

    try:
        BotConfig.model_validate(yaml.safe_load(re.sub(r"\$\{[^}]*\}", "x", text)))
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        raise OperationError(f"{file}: {where}: {error['msg']}; nothing was written") from None


def _config_dir(args: argparse.Namespace) -> Path:
    return Path(args.config_dir) if args.config_dir is not None else default_config_dir()


def cmd_init(args: argparse.Namespace) -> int:
    console = _ui.console()
    folder = _config_dir(args)
    names = list(dict.fromkeys(args.bot or []))
    if not names:
        raise OperationError("name at least one bot: --bot NAME")
    files = [folder / f"{name}.yaml" for name in names]
    existing = [f for f in files if f.exists()]
    if existing:
        raise OperationError(
            f"{existing[0]} already exists; nothing was written (edit it, or remove it first)"
        )
    texts = [bot_config_text(name, path=args.path, url=args.url) for name in names]
    for file, text in zip(files, texts, strict=True):
        _check(file, text)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for file, text in zip(files, texts, strict=True):
            # "x": never overwrite a file that appeared in the meantime.
            with file.open("x", encoding="utf-8") as out:
                out.write(text)
            console.print(f"wrote {file}")
    except FileExistsError as exc:
        raise OperationError(f"{exc.filename} already exists; not overwritten") from None
    except OSError as exc:
        raise OperationError(f"{folder}: cannot write the config: {exc.strerror}") from None
    console.print("next: `convostore upgrade` creates the database schema")
    return 0


def _show_revisions(chosen: list[Target]) -> None:
    console = _ui.console()
    for target in chosen:
        revision = current_revision(target.url)
        bots = ", ".join(target.bots) or "no configured bot"
        console.print(f"{target.safe_url} ({bots}): schema revision {revision or 'none'}")


def _migration_logs(verbose: bool) -> None:
    # Say what runs (revisions, the guard's backup, the legacy import's summary).
    for name in ("alembic.runtime.migration", "convostore.alembic", "convostore.legacy"):
        logging.getLogger(name).setLevel(logging.INFO)
    if not verbose:
        logging.getLogger().setLevel(logging.WARNING)


def cmd_upgrade(args: argparse.Namespace) -> int:
    _migration_logs(args.verbose)
    chosen = upgrade(
        args.revision,
        config_dir=args.config_dir,
        bot=args.bot,
        url=args.url,
        legacy_import=not args.no_legacy_import,
    )
    _show_revisions(chosen)
    return 0


def cmd_downgrade(args: argparse.Namespace) -> int:
    chosen = targets(args.config_dir, bot=args.bot, url=args.url)
    where = ", ".join(t.safe_url for t in chosen)
    _ui.confirm(
        f"downgrade {where} to revision {args.revision}? Tables and rows of the later revisions "
        "are deleted (SQLite: a verified backup is taken first)",
        assume_yes=args.yes,
    )
    _migration_logs(args.verbose)
    downgrade(args.revision, config_dir=args.config_dir, bot=args.bot, url=args.url)
    _show_revisions(chosen)
    return 0


def _add_target_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--bot", default=None, help="only the database this bot uses")
    group.add_argument(
        "--url",
        default=None,
        help="only this database (a SQLAlchemy URL), whether a bot config names it or not",
    )


def register(subparsers: Any) -> None:
    init = subparsers.add_parser(
        "init",
        help="write a commented config/bots/NAME.yaml for each bot (never overwrites)",
        description="Write a commented bot configuration with every key and its default.",
        epilog=(
            f"{_EXAMPLES}convostore init --bot mybot\n"
            "  convostore init --bot sage --bot spark --path './data/{bot_name}.db'\n"
            "  convostore init --bot sage --url 'postgresql+asyncpg://bots:${BOTS_DB_PASSWORD}"
            "@db.internal/bots'"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    init.add_argument(
        "--bot", action="append", required=True, metavar="NAME", help="bot name (repeatable)"
    )
    where = init.add_mutually_exclusive_group()
    where.add_argument("--path", default=None, help="SQLite file (default ./data/conversations.db)")
    where.add_argument("--url", default=None, help="database URL instead of a SQLite path")
    init.set_defaults(handler=cmd_init)

    up = subparsers.add_parser(
        "upgrade",
        help="create or upgrade the schema of every configured database (alembic upgrade)",
        description=(
            "Create or upgrade the schema of every configured database (SQLite with data: a "
            "verified backup first; a newer database is refused)."
        ),
        epilog=(
            f"{_EXAMPLES}convostore upgrade\n"
            "  convostore upgrade --no-legacy-import   # then: convostore migrate-legacy\n"
            "  convostore upgrade --url postgresql+asyncpg://bots@db.internal/bots"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    up.add_argument("revision", nargs="?", default="head", help="target revision (default head)")
    _add_target_options(up)
    up.add_argument(
        "--no-legacy-import",
        action="store_true",
        help="create the schema without importing the legacy JSON tree (then: migrate-legacy)",
    )
    up.set_defaults(handler=cmd_upgrade)

    down = subparsers.add_parser(
        "downgrade",
        help="downgrade the schema to REVISION (destructive; asks first)",
        description=(
            "Downgrade the schema to REVISION, deleting what later revisions added (SQLite with "
            "data: a verified backup first)."
        ),
        epilog=f"{_EXAMPLES}convostore downgrade 0001 --bot sage --yes",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    down.add_argument("revision", help="target revision, e.g. 0001 (or base: no schema at all)")
    _add_target_options(down)
    _ui.add_yes_option(down)
    down.set_defaults(handler=cmd_downgrade)


__all__ = ["bot_config_text", "register"]
