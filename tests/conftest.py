"""Shared fixtures: every storage test runs on SQLite (a real file) and on PostgreSQL.

PostgreSQL is expected at ``$CONVOSTORE_TEST_PG`` (default ``postgresql://postgres@127.0.0.1:5432/test``).
Each test run creates its own uniquely named database and drops it at the end. If the server cannot
be reached the PostgreSQL tests fail, they do not skip, unless ``CONVOSTORE_TEST_BACKENDS=sqlite``
says so explicitly (for a quick local run).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from alembic import command
from alembic.config import Config
from alembic.script import Script, ScriptDirectory
from sqlalchemy.engine import make_url

from convostore import BotConfig, BotStore
from convostore.config import async_url

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get("CONVOSTORE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
BACKENDS = [
    b for b in os.environ.get("CONVOSTORE_TEST_BACKENDS", "sqlite,postgresql").split(",") if b
]


def alembic_config(url: str | None = None, config_dir: Path | None = None) -> Config:
    """An Alembic config for the repository's alembic.ini, optionally aimed at one database."""
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.attributes["configure_logger"] = False
    x = [f"url={url}"] if url else []
    import argparse

    cfg.cmd_opts = argparse.Namespace(x=x)
    if config_dir is not None:
        cfg.set_main_option("convostore_config_dir", str(config_dir))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def revision_named(fragment: str) -> Script:
    """The Alembic revision whose file name contains ``fragment`` (e.g. "full_text_search")."""
    return next(
        rev
        for rev in ScriptDirectory.from_config(alembic_config()).walk_revisions()
        if fragment in rev.path
    )


def _pg_admin() -> psycopg.Connection[Any]:
    return psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5)


class PostgresDatabases:
    """Creates uniquely named databases on the test server and drops them all at the end."""

    def __init__(self) -> None:
        self.prefix = f"convostore_test_{uuid.uuid4().hex[:10]}"
        self.created: list[str] = []

    def create(self) -> str:
        name = f"{self.prefix}_{len(self.created)}"
        with _pg_admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        return async_url(make_url(PG_ADMIN_URL).set(database=name).render_as_string(False))

    def drop_all(self) -> None:
        with _pg_admin() as conn:
            for name in self.created:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_databases() -> Iterator[PostgresDatabases]:
    databases = PostgresDatabases()
    yield databases
    databases.drop_all()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head once; tests copy it instead of migrating again."""
    path = tmp_path_factory.mktemp("template") / "conversations.db"
    upgrade(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def pg_template_url(pg_databases: PostgresDatabases) -> str:
    url = pg_databases.create()
    upgrade(url)
    return url


def _truncate(url: str) -> None:
    sync = make_url(url).set(drivername="postgresql+psycopg").render_as_string(False)
    with psycopg.connect(sync.replace("postgresql+psycopg", "postgresql"), autocommit=True) as conn:
        conn.execute(
            "TRUNCATE conversations, sessions, legacy_imports, message_revisions"
            " RESTART IDENTITY CASCADE"
        )


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A migrated, empty database of the current backend."""
    if backend == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "conversations.db"
        shutil.copyfile(template, path)
        return f"sqlite+aiosqlite:///{path}"
    url: str = request.getfixturevalue("pg_template_url")
    _truncate(url)
    return url


ConfigFactory = Callable[..., BotConfig]


@pytest.fixture
def empty_db_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A database with nothing in it: a SQLite file not created yet, or a new PostgreSQL one."""
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
    url: str = request.getfixturevalue("pg_databases").create()
    return url


@pytest.fixture
def make_config(db_url: str, tmp_path: Path) -> ConfigFactory:
    """Build a BotConfig for ``name`` on the test database, with storage overrides."""

    def factory(name: str = "sage", **storage: Any) -> BotConfig:
        return BotConfig.model_validate(
            {
                "name": name,
                "storage": {
                    "url": db_url,
                    "type": make_url(db_url).get_backend_name(),
                    # Never the repository's ./data/backups: guarded upgrades write there.
                    "backups": {"dir": str(tmp_path / "backups")},
                    **storage,
                },
                "legacy": {"dir": str(tmp_path / "legacy")},
            },
            strict=False,
        )

    return factory


@pytest.fixture
async def store(make_config: ConfigFactory) -> AsyncIterator[BotStore]:
    async with BotStore.open(make_config()) as opened:
        yield opened
