"""Engines, session factories and the translation of driver errors.

SQLite is shared by several bot processes, so every connection sets WAL, a busy timeout,
``synchronous`` (``storage.synchronous``: NORMAL by default, or FULL) and ``foreign_keys=ON``, and
the driver's own transaction handling is switched off: SQLAlchemy's ``begin`` event emits
``BEGIN IMMEDIATE`` instead, so a read-then-write unit of work takes the write lock up front and
waits for it (the deferred ``BEGIN`` would fail with a busy snapshot when its read upgrades to a
write). Read-only work uses an engine view whose ``begin`` is deferred, so readers never queue
behind writers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal, TypeVar

from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.ext.asyncio import AsyncSession as AsyncDBSession
from sqlalchemy.pool import ConnectionPoolEntry, NullPool

from convostore.config import redact_url
from convostore.errors import (
    DatabaseLockedError,
    DatabaseUnavailableError,
    ReadOnlyDatabaseError,
    SchemaError,
    StorageError,
)

logger = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 30_000
READ_ONLY_OPTION = "convostore_read_only"
# Units of work that read with one statement need no BEGIN on SQLite: in autocommit mode the
# statement is its own transaction and sees one consistent snapshot.
ONE_STATEMENT_READ_OPTION = "convostore_one_statement_read"
_PRAGMAS_INSTALLED = "_convostore_pragmas"
# What a write meets while ``convostore restore`` replaces a SQLite database (ops/restore.py):
# it is refused, never acknowledged and then overwritten; the store waits and tries again.
RESTORE_FENCE = "convostore restore in progress"
_SYNCHRONOUS_ATTRIBUTE = "_convostore_synchronous"
Synchronous = Literal["normal", "full"]
_SYNCHRONOUS_PRAGMA = {"normal": "NORMAL", "full": "FULL"}
_T = TypeVar("_T")


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
    if options.get(READ_ONLY_OPTION):
        conn.exec_driver_sql("BEGIN")
    else:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


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


def create_engine(
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
    from pathlib import Path

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


class Transactions:
    """Runs a unit of work, plain synchronous code over a ``Connection``, in one transaction.

    On PostgreSQL the work runs in one greenlet of the async engine (``run_sync``). On a SQLite
    file it runs in one worker thread on a synchronous pysqlite engine over the same file, with
    the same pragmas and ``BEGIN IMMEDIATE`` handling: aiosqlite hops to its thread for every
    driver call (about 13 hops for a message write through SQLAlchemy), this costs one hop per
    unit of work. Units of work of one store run one at a time there, as SQLite writers do anyway.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._async_reader = read_only(engine)
        # One-statement reads need no BEGIN/COMMIT round trips on PostgreSQL: in autocommit mode
        # the statement is its own transaction, with one snapshot.
        self._autocommit_reads = engine.url.get_backend_name() == "postgresql"
        self._sync: Engine | None = None
        self._sync_reader: Engine | None = None
        # SQLite reads reuse one connection, used only by the worker thread: checking a pooled
        # one out and back in for every read cost about 10 % of a history read.
        self._read_connection: Connection | None = None
        self._thread: ThreadPoolExecutor | None = None
        url = engine.url
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            self._sync = create_sync_engine(url.set(drivername="sqlite"))
            # The same durability as the async engine's connections.
            install_sqlite_transaction_handling(self._sync, synchronous=sqlite_synchronous(engine))
            self._sync_reader = self._sync.execution_options(
                **{READ_ONLY_OPTION: True, ONE_STATEMENT_READ_OPTION: True}
            )
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="convostore-sqlite")

    async def write(self, work: Callable[[Connection], _T]) -> _T:
        return await self._run(work, read=False)

    async def read(self, work: Callable[[Connection], _T]) -> _T:
        """Run ``work``, which must read with a single statement (on SQLite it gets no BEGIN)."""
        return await self._run(work, read=True)

    async def _run(self, work: Callable[[Connection], _T], *, read: bool) -> _T:
        if self._thread is not None:
            loop = asyncio.get_running_loop()
            if read:
                return await loop.run_in_executor(self._thread, self._read_in_thread, work)
            assert self._sync is not None
            return await loop.run_in_executor(self._thread, _in_transaction, self._sync, work)
        if read and self._autocommit_reads:
            async with self._async_reader.connect() as connection:
                await connection.execution_options(isolation_level="AUTOCOMMIT")
                return await connection.run_sync(work)
        async with (self._async_reader if read else self.engine).begin() as connection:
            return await connection.run_sync(work)

    def _read_in_thread(self, work: Callable[[Connection], _T]) -> _T:
        # In the worker thread. The reader's one-statement option emits no BEGIN, so between
        # reads the connection holds no snapshot and never stands in the way of a checkpoint.
        connection = self._read_connection
        if connection is None:
            assert self._sync_reader is not None
            connection = self._read_connection = self._sync_reader.connect()
        try:
            result = work(connection)
            if connection.in_transaction():
                connection.commit()
        except BaseException:
            # Whatever state the failure left, the next read starts on a fresh checkout.
            self._read_connection = None
            connection.close()
            raise
        return result

    def _close_in_thread(self) -> None:
        if self._read_connection is not None:
            self._read_connection.close()
            self._read_connection = None
        if self._sync is not None:
            self._sync.dispose()

    async def close(self) -> None:
        """Release the worker thread and the synchronous engine (the async one is the caller's)."""
        if self._thread is not None:
            await asyncio.get_running_loop().run_in_executor(self._thread, self._close_in_thread)
            self._thread.shutdown(wait=False)
            self._thread = None


def _in_transaction(engine: Engine, work: Callable[[Connection], _T]) -> _T:
    with engine.begin() as connection:
        return work(connection)


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncDBSession]:
    """An async session factory that never expires loaded state (no implicit IO after commit)."""
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


def _describe(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


@contextlib.contextmanager
def translate_errors(where: str) -> Iterator[None]:
    """Turn SQLAlchemy and driver errors into the convostore tree; ``where`` names the database."""
    try:
        yield
    except (OperationalError, InterfaceError, DBAPIError) as exc:
        raise translate(exc, where) from exc
    except OSError as exc:
        raise DatabaseUnavailableError(
            f"{where}: cannot reach the database: {exc.strerror or exc}"
        ) from exc


def translate(exc: BaseException, where: str) -> StorageError:
    """The convostore error for a SQLAlchemy/driver error raised while working on ``where``."""
    detail = redact_url(where) if "://" in where else where
    message = _describe(exc)
    lowered = message.lower()
    if RESTORE_FENCE in message:
        return DatabaseLockedError(
            f"{detail}: a restore is replacing the database; the write was not stored, try again"
        )
    if isinstance(exc, IntegrityError):
        return StorageError(f"{detail}: integrity error: {message}")
    if "database is locked" in lowered or "database is busy" in lowered:
        return DatabaseLockedError(
            f"{detail}: the database stayed locked by another process for over "
            f"{BUSY_TIMEOUT_MS // 1000} s"
        )
    if "readonly database" in lowered or "read-only" in lowered:
        return ReadOnlyDatabaseError(f"{detail}: the database file or its directory is read-only")
    if "unable to open database" in lowered:
        return DatabaseUnavailableError(f"{detail}: cannot open the database file")
    if "no such table" in lowered or ("relation" in lowered and "does not exist" in lowered):
        return SchemaError(
            f"{detail}: the database has no convostore schema; run `alembic upgrade head`"
        )
    if any(
        word in lowered
        for word in ("connection refused", "could not connect", "connect call failed")
    ):
        return DatabaseUnavailableError(f"{detail}: cannot connect to the database server")
    if "database" in lowered and "does not exist" in lowered:
        return DatabaseUnavailableError(f"{detail}: the database does not exist")
    if "disk is full" in lowered or "disk full" in lowered:
        return StorageError(f"{detail}: the disk is full")
    return StorageError(f"{detail}: {message}")
