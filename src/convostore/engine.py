"""Engines for a convostore database: the SQLite pragmas and transaction handling, pool settings.

SQLite is shared by several bot processes, so every connection sets WAL, a busy timeout,
``synchronous`` (``storage.synchronous``: NORMAL by default, or FULL) and ``foreign_keys=ON``, and
the driver's own transaction handling is switched off: SQLAlchemy's ``begin`` event emits
``BEGIN IMMEDIATE`` instead, so a read-then-write unit of work takes the write lock up front and
waits for it (the deferred ``BEGIN`` would fail with a busy snapshot when its read upgrades to a
write). Read-only work uses an engine view whose ``begin`` is deferred, so readers never queue
behind writers.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.ext.asyncio import AsyncSession as AsyncDBSession
from sqlalchemy.pool import ConnectionPoolEntry, NullPool

from convostore.errors import StorageError

BUSY_TIMEOUT_MS = 30_000
READ_ONLY_OPTION = "convostore_read_only"
# Units of work that read with one statement need no BEGIN on SQLite: in autocommit mode the
# statement is its own transaction and sees one consistent snapshot.
ONE_STATEMENT_READ_OPTION = "convostore_one_statement_read"
_PRAGMAS_INSTALLED = "_convostore_pragmas"
_SYNCHRONOUS_ATTRIBUTE = "_convostore_synchronous"
Synchronous = Literal["normal", "full"]
_SYNCHRONOUS_PRAGMA = {"normal": "NORMAL", "full": "FULL"}


def _on_sqlite_connect(foreign_keys: bool, synchronous: Synchronous) -> Any:
    pragma = _SYNCHRONOUS_PRAGMA[synchronous]

    def on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # The driver must not open transactions by itself; ``_on_sqlite_begin`` does.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA journal_mode")
            row = cursor.fetchone()
            if row is None or str(row[0]).lower() not in ("wal", "memory"):
                cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute(f"PRAGMA synchronous = {pragma}")
            cursor.execute(f"PRAGMA foreign_keys = {'ON' if foreign_keys else 'OFF'}")
        finally:
            cursor.close()

    return on_connect


def _on_sqlite_begin(conn: Connection) -> None:
    options = conn.get_execution_options()
    if options.get(ONE_STATEMENT_READ_OPTION):
        return
    statement = "BEGIN" if options.get(READ_ONLY_OPTION) else "BEGIN IMMEDIATE"
    if conn.dialect.driver != "pysqlite":
        conn.exec_driver_sql(statement)
        return
    # On the synchronous driver (the store's worker threads) straight on the DBAPI connection:
    # through Core, the BEGIN of every write cost about as much as the message's INSERT.
    dbapi = conn.connection.driver_connection
    try:
        dbapi.execute(statement)  # type: ignore[union-attr]
    except sqlite3.Error as exc:
        # Wrapped as Core wraps it, so it is translated (a locked database) like any other.
        raise DBAPIError.instance(statement, (), exc, sqlite3.Error) from exc


def install_sqlite_transaction_handling(
    engine: AsyncEngine | Engine,
    *,
    foreign_keys: bool = True,
    synchronous: Synchronous = "normal",
) -> None:
    """Install the connect/begin events once on a SQLite engine (idempotent)."""
    sync_engine = engine.sync_engine if isinstance(engine, AsyncEngine) else engine
    if getattr(sync_engine, _PRAGMAS_INSTALLED, False):
        return
    event.listen(sync_engine, "connect", _on_sqlite_connect(foreign_keys, synchronous))
    event.listen(sync_engine, "begin", _on_sqlite_begin)
    setattr(sync_engine, _PRAGMAS_INSTALLED, True)
    setattr(sync_engine, _SYNCHRONOUS_ATTRIBUTE, synchronous)


def sqlite_synchronous(engine: AsyncEngine | Engine) -> Synchronous:
    """The ``synchronous`` setting the engine's SQLite connections apply ("normal" if none)."""
    sync_engine = engine.sync_engine if isinstance(engine, AsyncEngine) else engine
    value: Synchronous = getattr(sync_engine, _SYNCHRONOUS_ATTRIBUTE, "normal")
    return value


def make_engine(
    url: str,
    *,
    foreign_keys: bool = True,
    synchronous: Synchronous = "normal",
    null_pool: bool = False,
    **kwargs: Any,
) -> AsyncEngine:
    """An async engine for a convostore database, with the SQLite handling installed.

    ``synchronous`` is SQLite's durability setting (``storage.synchronous``); PostgreSQL's is the
    server's ``synchronous_commit``, which convostore leaves alone.
    """
    backend = make_url(url).get_backend_name()
    options: dict[str, Any] = {}
    if null_pool:
        options["poolclass"] = NullPool
    elif backend == "postgresql":
        options.update(pool_size=5, max_overflow=5, pool_pre_ping=True, pool_recycle=1800)
    if backend == "sqlite":
        database = make_url(url).database
        if database and database != ":memory:" and not make_url(url).query.get("uri"):
            _make_parent(database)
    options.update(kwargs)
    engine = create_async_engine(url, **options)
    if backend == "sqlite":
        install_sqlite_transaction_handling(
            engine, foreign_keys=foreign_keys, synchronous=synchronous
        )
    return engine


def _make_parent(database: str) -> None:
    parent = Path(database).parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(
            f"{database}: cannot create the database's directory {parent}: {exc.strerror or exc}"
        ) from None


def read_only(engine: AsyncEngine) -> AsyncEngine:
    """A view of ``engine`` (same pool) whose transactions begin deferred: for reads only."""
    return engine.execution_options(**{READ_ONLY_OPTION: True})


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncDBSession]:
    """An async session factory that never expires loaded state (no implicit IO after commit)."""
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)
