"""``convostore upgrade`` and ``downgrade``: Alembic's commands, from any directory.

The revisions ship inside the package (``convostore/migrations``, the repository's root ``alembic/``
folder installed under that name), so a bot project that only ran ``pip install convostore`` can
create and upgrade its schema. The effect is exactly ``alembic upgrade``/``downgrade`` with the
repository's ``alembic.ini``: the same ``env.py`` runs, with the same guard (a verified backup of a
SQLite file that holds data), the same refusal of a database newer than the code, over every
configured database, or the one ``url`` names.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

from convostore.config import BotConfig, async_url, default_config_dir, load_configs, redact_url
from convostore.errors import OperationError

logger = logging.getLogger(__name__)

# ``-x legacy_import=no``: create or upgrade the schema without the legacy data revision's import.
NO_LEGACY_IMPORT = "legacy_import=no"


def script_location() -> Path:
    """The folder with ``env.py`` and ``versions/``: in the package, or a checkout's root."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "migrations", package.parent.parent / "alembic"):
        if (candidate / "env.py").is_file() and (candidate / "versions").is_dir():
            return candidate
    raise OperationError(
        f"{package}: the schema migrations are missing from this installation of convostore; "
        "reinstall it (pip install --force-reinstall convostore)"
    )


@dataclass(frozen=True)
class Target:
    """One database a command works on, and the bots that use it."""

    url: str
    bots: tuple[str, ...]

    @property
    def safe_url(self) -> str:
        return redact_url(self.url)


def targets(
    config_dir: Path | None, *, bot: str | None = None, url: str | None = None
) -> list[Target]:
    """The databases ``upgrade``/``downgrade`` would migrate, as ``env.py`` chooses them."""
    folder = config_dir if config_dir is not None else default_config_dir()
    configs: dict[str, BotConfig] = load_configs(folder) if folder.is_dir() or bot else {}
    if url is not None:
        wanted = async_url(url)
        return [
            Target(wanted, tuple(sorted(n for n, c in configs.items() if c.database_url == wanted)))
        ]
    if bot is not None:
        if bot not in configs:
            raise OperationError(f"no bot named {bot!r} in {folder}")
        wanted = configs[bot].database_url
        return [
            Target(wanted, tuple(sorted(n for n, c in configs.items() if c.database_url == wanted)))
        ]
    if not configs:
        raise OperationError(
            f"no bot configs in {folder}; run `convostore init --bot NAME` first, or pass --url"
        )
    by_url: dict[str, list[str]] = {}
    for name, config in sorted(configs.items()):
        if config.storage.enabled:
            by_url.setdefault(config.database_url, []).append(name)
    return [Target(u, tuple(names)) for u, names in by_url.items()]


def alembic_config(
    config_dir: Path | None, *, url: str | None = None, legacy_import: bool = True
) -> object:
    """An Alembic ``Config`` for the packaged migrations (no ``alembic.ini`` needed)."""
    from alembic.config import Config

    config = Config()
    # configparser interpolates '%': a path holding one must say '%%'.
    config.set_main_option("script_location", str(script_location()).replace("%", "%%"))
    config.set_main_option("path_separator", "os")
    folder = config_dir if config_dir is not None else default_config_dir()
    config.attributes["convostore_config_dir"] = Path(folder)
    config.attributes["configure_logger"] = False
    x = []
    if url is not None:
        x.append(f"url={async_url(url)}")
    if not legacy_import:
        x.append(NO_LEGACY_IMPORT)
    config.cmd_opts = argparse.Namespace(x=x)
    return config


def _run(
    command: str,
    revision: str,
    config_dir: Path | None,
    *,
    url: str | None,
    legacy_import: bool = True,
) -> None:
    from alembic import command as alembic_command
    from alembic.util import CommandError

    config = alembic_config(config_dir, url=url, legacy_import=legacy_import)
    try:
        getattr(alembic_command, command)(config, revision)
    except CommandError as exc:
        lines = str(exc).strip().splitlines()
        raise OperationError(lines[0] if lines else f"{command} failed") from None


def _one_database(config_dir: Path | None, bot: str | None, url: str | None) -> str | None:
    # Without --bot/--url env.py migrates every configured database itself, as `alembic` does.
    if url is not None:
        return url
    if bot is not None:
        return targets(config_dir, bot=bot)[0].url
    return None


def upgrade(
    revision: str = "head",
    *,
    config_dir: Path | None = None,
    bot: str | None = None,
    url: str | None = None,
    legacy_import: bool = True,
) -> list[Target]:
    """``alembic upgrade REVISION`` over the chosen databases; the databases, in order."""
    chosen = targets(config_dir, bot=bot, url=url)
    _run(
        "upgrade",
        revision,
        config_dir,
        url=_one_database(config_dir, bot, url),
        legacy_import=legacy_import,
    )
    return chosen


def downgrade(
    revision: str,
    *,
    config_dir: Path | None = None,
    bot: str | None = None,
    url: str | None = None,
) -> list[Target]:
    """``alembic downgrade REVISION`` over the chosen databases (destructive: confirm first)."""
    chosen = targets(config_dir, bot=bot, url=url)
    _run("downgrade", revision, config_dir, url=_one_database(config_dir, bot, url))
    return chosen


async def _current(url: str) -> str | None:
    from sqlalchemy import inspect, text

    from convostore.db import translate_errors
    from convostore.engine import make_engine

    engine = make_engine(url, null_pool=True)
    try:
        with translate_errors(redact_url(url)):
            async with engine.connect() as connection:

                def read(sync: object) -> str | None:
                    from sqlalchemy.engine import Connection

                    assert isinstance(sync, Connection)
                    if not inspect(sync).has_table("alembic_version"):
                        return None
                    value = sync.execute(text("SELECT version_num FROM alembic_version")).scalar()
                    return None if value is None else str(value)

                return await connection.run_sync(read)
    finally:
        await engine.dispose()


def current_revision(url: str) -> str | None:
    """The schema revision the database at ``url`` is at (None: no schema, or no file)."""
    from sqlalchemy.engine import make_url

    url = async_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and not Path(str(parsed.database)).is_file():
        return None
    return asyncio.run(_current(url))
