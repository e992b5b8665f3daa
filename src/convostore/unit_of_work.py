"""Runs units of work: plain synchronous code over a ``Connection``, each in a transaction.

On PostgreSQL a unit of work runs in one greenlet of the async engine (``run_sync``), on a pooled
connection; the server runs concurrent ones in parallel.

On a SQLite file the store has three worker threads, each with its own connection to the file (a
synchronous pysqlite engine with the same pragmas and ``BEGIN IMMEDIATE`` handling as the async
one; aiosqlite would hop to its thread for every driver call, this hops once per unit of work):

- **Reads** run in the reader thread. In WAL mode a reader never waits for the write lock, so a
  ``history()`` never queues behind a write that waits for another process. A small read (a
  history of at most :data:`SMALL_READ_ROWS` messages) runs on the event loop's thread instead,
  on a connection of its own that never waits for a lock, unless a lock was in its way or such
  reads took over :data:`INLINE_BUDGET_S` on average in the last :data:`INLINE_COOLDOWN_S`.
- **Writes** run in the writer thread with **group commit**: the writes that arrive while one
  transaction is being written wait in a queue and are then written together, many in one
  ``BEGIN IMMEDIATE … COMMIT`` (one write lock, one WAL flush at ``synchronous=FULL``). Each write
  has its own outcome: when one fails (a bad value, a message id already stored), the group is
  rolled back and written again with a ``SAVEPOINT`` per write, so the failing one is undone alone
  and gets its own exception while the others commit. A write alone in the queue runs as a plain
  transaction, as before group commit. If the transaction itself fails (the lock
  never came, the disk is full), every write of the group gets that error and none is stored.
- **Small writes that come alone** (one message, an agent's turn: ``write(..., small=True)``)
  run on the event loop's own thread, on a connection of their own, once the tasks that are
  ready have run: handing a write to a sleeping thread and its result back costs two wake-ups,
  more than the write's statements. That connection never waits for the lock (busy timeout 0):
  when another connection holds it, the write goes to the writer thread, which waits as above,
  and so do the writes of the next second. When several writes are queued by then (concurrent
  callers) they go to the writer thread and its group commit. The event loop is held for the
  write's statements and commit (its fsync at ``synchronous=FULL``); when these writes take
  longer than :data:`INLINE_BUDGET_S` on average (a disk slow to sync), the writer thread takes
  the writes of the next :data:`INLINE_COOLDOWN_S`.
- **Checkpoints** run in a third thread. SQLite copies the WAL back into the database file (a
  checkpoint) when a commit leaves the WAL at ``wal_autocheckpoint`` pages (1,000 by default), in
  the committing thread: every few dozen messages one append waited for the copy and its file
  syncs (p99 of single appends 6.4 ms against a p50 of 0.2 ms). Here the writer tells the
  checkpoint thread after every :data:`CHECKPOINT_CHANGES` rows changed, and that thread runs a
  ``PASSIVE`` checkpoint on its own connection (it never waits for a lock, never blocks readers
  or writers, and copies only committed pages) while the writer goes on. The writer's own
  automatic checkpoint stays on as a backstop at :data:`WRITER_AUTOCHECKPOINT_PAGES`, so the WAL
  stays bounded whatever the load: it finds the pages already copied and only syncs and lets the
  WAL start over.

Cancellation: a write whose caller is cancelled while it still waits in the queue is taken out and
never runs. Once its group has started it cannot be stopped: it is committed with its group, or
not at all if the group fails. Either way the write is all or nothing, and running it again (a
message with the same ``message_id``) returns the stored row or stores it now.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Generic, TypeVar, cast

from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.util import greenlet_spawn

from convostore.engine import (
    ONE_STATEMENT_READ_OPTION,
    READ_ONLY_OPTION,
    install_sqlite_transaction_handling,
    read_only,
    sqlite_synchronous,
)

_T = TypeVar("_T")
logger = logging.getLogger(__name__)
# A group holds the write lock for its whole length; other processes wait that long at most.
MAX_GROUP = 256
_SAVEPOINT = "convostore_write"
CHECKPOINT_CHANGES = 128
"""Rows the writer changes between two requests for a background checkpoint (about 64 appends,
some 800 WAL pages; every group commit of more than 64 messages, every backfill batch)."""
INLINE_BUDGET_S = 0.002
"""When small writes on the event loop take longer than this on average (a disk slow to sync at
``synchronous=FULL``), the writes of the next :data:`INLINE_COOLDOWN_S` go to the writer thread,
so a slow disk holds up the event loop for at most one write a second."""
INLINE_COOLDOWN_S = 1.0
_INLINE_COST_WEIGHT = 0.1
SMALL_READ_ROWS = 1000
"""Histories of at most this many messages are small reads (see ``UnitOfWorkRunner.read``)."""
WRITER_AUTOCHECKPOINT_PAGES = 4000
"""The writer connection's ``wal_autocheckpoint``: the backstop that bounds the WAL (about 16 MB
at 4 KB pages) if the checkpoint thread falls behind. Measured against 1,000 and 2,000 with the
checkpoint thread: single appends 3,585/s against 3,272/s and 3,283/s."""


class _Write(Generic[_T]):
    """One queued write: its unit of work, the caller's future, and its outcome."""

    __slots__ = ("error", "future", "result", "small", "work")

    def __init__(
        self, work: Callable[[Connection], _T], future: asyncio.Future[_T], small: bool
    ) -> None:
        self.work = work
        self.future = future
        self.small = small
        self.result: Any = None
        self.error: BaseException | None = None


class _OnTheLoop:
    """Whether small units of work may run on the event loop: not while their typical time is
    over :data:`INLINE_BUDGET_S`, nor for :data:`INLINE_COOLDOWN_S` after they could not."""

    __slots__ = ("after", "cost")

    def __init__(self) -> None:
        self.cost = 0.0
        self.after = 0.0

    def allowed(self, now: float) -> bool:
        return now >= self.after

    def took(self, seconds: float, now: float) -> None:
        # One slow call (a checkpoint, a pause of the machine) barely moves the typical time;
        # a disk slow at every call soon does.
        self.cost += (seconds - self.cost) * _INLINE_COST_WEIGHT
        if self.cost > INLINE_BUDGET_S:
            self.pause(now)

    def pause(self, now: float) -> None:
        self.after = now + INLINE_COOLDOWN_S


def _is_busy(exc: BaseException) -> bool:
    """Whether a SQLite error says another connection holds a lock (SQLITE_BUSY/LOCKED)."""
    cause = exc.orig if isinstance(exc, DBAPIError) else exc
    code = getattr(cause, "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def _connection_on_the_loop(engine: Engine) -> Connection:
    """A connection for the event loop's thread: it never waits for a lock (busy timeout 0)."""
    connection = engine.connect()
    try:
        driver = cast(sqlite3.Connection, connection.connection.driver_connection)
        driver.execute("PRAGMA busy_timeout = 0")
    except BaseException:
        _discard(connection)
        raise
    return connection


def _discard(connection: Connection) -> None:
    """Close a connection of the event loop without returning it to the pool: another thread
    must not get a connection that does not wait for the lock."""
    with contextlib.suppress(Exception):
        connection.invalidate()
        connection.close()


def _connection_may_be_broken(driver: Any, exc: BaseException) -> bool:
    """Whether an asyncpg connection must be discarded after ``exc``.

    An error the server reported for the statement (a missing table, a read-only server, a
    serialization failure) leaves an autocommit connection ready for the next one, so it goes
    back to the pool. A cancelled statement, a lost connection or one the server closed does not.
    """
    if not isinstance(exc, Exception) or driver.is_closed():
        return True
    from asyncpg import PostgresError  # type: ignore[import-untyped]

    return not isinstance(exc, PostgresError)


def _settle(group: list[_Write[Any]]) -> None:
    # On the event loop: hand each caller its own outcome (a cancelled caller gets nothing).
    for write in group:
        if write.future.done():
            continue
        if write.error is not None:
            write.future.set_exception(write.error)
        else:
            write.future.set_result(write.result)


class UnitOfWorkRunner:
    """Runs a store's units of work: reads on a path of their own, writes with group commit."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._async_reader = read_only(engine)
        # One-statement reads need no BEGIN/COMMIT round trips on PostgreSQL: in autocommit mode
        # the statement is its own transaction, with one snapshot.
        self._autocommit_reads = engine.url.get_backend_name() == "postgresql"
        # Statements straight on the driver need asyncpg (the driver convostore configures).
        self._direct = self._autocommit_reads and engine.dialect.driver == "asyncpg"
        self._sync: Engine | None = None
        self._sync_reader: Engine | None = None
        # PostgreSQL: the pool connection kept for fetch_direct, and whether a statement runs on it.
        self._held: PoolProxiedConnection | None = None
        self._held_busy = False
        self._closing = False
        # Each worker thread keeps one connection, used by that thread only: checking a pooled
        # one out and back in for every call cost about 10 % of a history read.
        self._read_connection: Connection | None = None
        self._write_connection: Connection | None = None
        self._reader: ThreadPoolExecutor | None = None
        self._writer: ThreadPoolExecutor | None = None
        self._checkpointer: ThreadPoolExecutor | None = None
        self._checkpoint_connection: Connection | None = None
        self._checkpoint_pending = False
        self._changes_at_checkpoint = 0
        # Checkpoints the checkpoint thread ran (whether or not another process was also at it).
        self.checkpoints_run = 0
        self._queue: deque[_Write[Any]] = deque()
        self._lock = threading.Lock()
        self._draining = False
        # The event loop's own connections for small writes that come alone (see write()) and
        # small reads (see read()), and when these may run there.
        self._inline_connection: Connection | None = None
        self._inline_changes_at_checkpoint = 0
        self._inline_writes = _OnTheLoop()
        self._dispatch_handle: asyncio.Handle | None = None
        self._inline_read_connection: Connection | None = None
        self._inline_reads = _OnTheLoop()
        # The thread whose event loop first ran work on its own connections: the only one that
        # uses them (an event loop in another thread hands its work to the worker threads).
        self._loop_thread: int | None = None
        # SQLite write transactions committed and writes in them (how well writes are grouped).
        self.groups_committed = 0
        self.writes_committed = 0
        url = engine.url
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            self._sync = create_sync_engine(url.set(drivername="sqlite"))
            # The same durability as the async engine's connections.
            install_sqlite_transaction_handling(self._sync, synchronous=sqlite_synchronous(engine))
            self._sync_reader = self._sync.execution_options(
                **{READ_ONLY_OPTION: True, ONE_STATEMENT_READ_OPTION: True}
            )
            self._reader = ThreadPoolExecutor(1, thread_name_prefix="convostore-sqlite-read")
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="convostore-sqlite-write")
            self._checkpointer = ThreadPoolExecutor(
                1, thread_name_prefix="convostore-sqlite-checkpoint"
            )

    async def write(self, work: Callable[[Connection], _T], *, small: bool = False) -> _T:
        """Run ``work`` in a write transaction (on SQLite, in a group commit); its result.

        ``small``: a unit of work of a few statements (one message, an agent's turn). On SQLite
        such a write that finds nothing else to write runs on the event loop's thread (see
        :meth:`_dispatch`) instead of waiting for two thread hand-offs.
        """
        if self._writer is None:
            async with self.engine.begin() as connection:
                return await connection.run_sync(work)
        loop = asyncio.get_running_loop()
        write: _Write[_T] = _Write(work, loop.create_future(), small)
        with self._lock:
            self._queue.append(write)
            start = not self._draining
            self._draining = True
        if start:
            if small and self._inline_writes.allowed(loop.time()) and self._on_loop_thread():
                # Decided once the tasks that are ready have run: they may queue writes too.
                self._dispatch_handle = loop.call_soon(self._dispatch, loop)
            else:
                self._writer.submit(self._drain, loop)
        try:
            return await write.future
        except asyncio.CancelledError:
            with self._lock:
                # Still queued: it never runs. Already taken: it commits with its group or not.
                if write in self._queue:
                    self._queue.remove(write)
            raise

    # --- small writes on the event loop -------------------------------------------------------

    def _dispatch(self, loop: asyncio.AbstractEventLoop) -> None:
        """On the event loop, the queue's owner: write a lone small write here, else hand over.

        A write alone in the queue (one caller at a time: a bot answering one message, an agent
        storing its turn) costs two thread hand-offs, each a wake-up of a sleeping thread, on
        top of its statements: more than the statements themselves. It runs here instead, on
        a connection that never waits for the lock: if another connection holds it, or if such
        writes take longer than :data:`INLINE_BUDGET_S` on average (a slow disk at
        ``synchronous=FULL``), the writer thread takes the writes of the next
        :data:`INLINE_COOLDOWN_S`. Several writes queued (concurrent callers) go to the writer
        thread and its group commit.
        """
        self._dispatch_handle = None
        with self._lock:
            # A caller cancelled since it queued its write (its task has not run the handler
            # that takes the write out yet): the write never runs.
            for write in [w for w in self._queue if w.future.cancelled()]:
                self._queue.remove(write)
            alone = self._queue[0] if len(self._queue) == 1 and self._queue[0].small else None
            if alone is not None:
                self._queue.popleft()
            elif not self._queue:  # its caller was cancelled before this ran
                self._draining = False
                return
        if alone is not None:
            if self._write_inline(alone, loop):
                _settle([alone])
                with self._lock:
                    if not self._queue:
                        self._draining = False
                        return
            else:
                with self._lock:
                    self._queue.appendleft(alone)
        assert self._writer is not None
        self._writer.submit(self._drain, loop)

    def _write_inline(self, write: _Write[Any], loop: asyncio.AbstractEventLoop) -> bool:
        """Run ``write`` on the event loop's connection; False if it could not begin here."""
        started = loop.time()
        try:
            connection = self._connection_for_inline_writes()
            transaction = connection.begin()
        except Exception as exc:
            # The write lock is taken (the connection does not wait for it), or anything else:
            # the writer thread runs it, waiting for the lock or reporting the error as usual.
            logger.debug("writing in the writer thread: %s", exc)
            self._inline_writes.pause(loop.time())
            return False
        try:
            with transaction:
                write.result = write.work(connection)
        except Exception as exc:
            write.error = exc
            if connection.invalidated or connection.closed:
                _discard(connection)
                self._inline_connection = None
        else:
            self.groups_committed += 1
            self.writes_committed += 1
        self._inline_writes.took(loop.time() - started, loop.time())
        self._inline_changes_at_checkpoint = self._request_checkpoint(
            self._inline_connection, self._inline_changes_at_checkpoint
        )
        return True

    def _on_loop_thread(self) -> bool:
        thread = threading.get_ident()
        if self._loop_thread is None:
            self._loop_thread = thread
        return thread == self._loop_thread

    def _connection_for_inline_writes(self) -> Connection:
        if self._inline_connection is None:
            assert self._sync is not None
            connection = _connection_on_the_loop(self._sync)
            driver = cast(sqlite3.Connection, connection.connection.driver_connection)
            # The writer's backstop (see _connection_for_writes).
            driver.execute(f"PRAGMA wal_autocheckpoint = {WRITER_AUTOCHECKPOINT_PAGES}")
            self._inline_changes_at_checkpoint = driver.total_changes
            self._inline_connection = connection
        return self._inline_connection

    def _close_inline(self) -> None:
        for connection in (self._inline_connection, self._inline_read_connection):
            if connection is not None:
                _discard(connection)
        self._inline_connection = self._inline_read_connection = None

    async def fetch_direct(self, sql: str, args: Sequence[Any]) -> list[Any] | None:
        """PostgreSQL: ``sql`` straight on asyncpg, on a connection of the pool; its rows.

        The statement runs in autocommit: it is its own transaction, one round trip. ``None``
        when it failed in any way: the caller runs its general path through Core, which
        translates and retries errors as every call does, so a failure here never reaches the
        caller as such. After an error the server reported for the statement the connection stays
        in use; it is discarded when it may be broken (lost, closed by the server, or cancelled in
        the middle of the statement).

        The runner keeps one connection of the pool checked out for these statements: a call
        that finds it idle runs on it, with no checkout and check-in (about a sixth of a history
        read). A call that comes while another statement runs on it checks one out of the pool as
        usual and returns it afterwards.
        """
        if not self._direct:
            return None
        if self._held is None or self._held_busy:
            try:
                connection = await self.engine.raw_connection()
            except Exception:
                return None
            # Checked again after the await: another call may have kept one meanwhile.
            if self._held is not None or self._closing:
                return await self._fetch_on(connection, sql, args, keep=False)
            self._held = connection  # kept for the next calls, this one included
        held = self._held
        self._held_busy = True
        try:
            return await self._fetch_on(held, sql, args, keep=True)
        finally:
            self._held_busy = False

    async def _fetch_on(
        self, connection: PoolProxiedConnection, sql: str, args: Sequence[Any], *, keep: bool
    ) -> list[Any] | None:
        driver = connection.driver_connection
        assert driver is not None
        release = not keep
        try:
            rows: list[Any] = await driver.fetch(sql, *args)
        except BaseException as exc:
            if _connection_may_be_broken(driver, exc):
                # Outside a greenlet the asyncpg adapter terminates it without awaiting.
                connection.invalidate(exc)
                if keep:
                    self._held = None
                    release = True
            if not isinstance(exc, Exception):
                raise
            logger.debug("direct statement failed, running the general path: %s", exc)
            return None
        finally:
            if release:
                # Checked in as the async engine does, in a greenlet (the pool may close a
                # surplus connection, which awaits).
                await greenlet_spawn(connection.close)
        return rows

    async def _release_held(self) -> None:
        """Return the connection kept for direct statements to the pool (the store closes)."""
        self._closing = True
        held, self._held = self._held, None
        if held is not None:
            await greenlet_spawn(held.close)

    async def read(self, work: Callable[[Connection], _T], *, small: bool = False) -> _T:
        """Run ``work``, which must read with a single statement (on SQLite it gets no BEGIN).

        ``small``: a read of a bounded number of rows (a history of at most
        :data:`SMALL_READ_ROWS` messages). On SQLite it runs on the event loop's thread, on a
        connection that never waits for a lock (WAL readers take none; should one ever find a
        lock, the reader thread runs it), as long as such reads take under
        :data:`INLINE_BUDGET_S` on average (a cold cache on a slow disk sends them to the reader
        thread for :data:`INLINE_COOLDOWN_S`).
        """
        if self._reader is not None:
            loop = asyncio.get_running_loop()
            if small and self._inline_reads.allowed(loop.time()) and self._on_loop_thread():
                done, result = self._read_inline(work, loop)
                if done:
                    return cast(_T, result)
            return await loop.run_in_executor(self._reader, self._read_in_thread, work)
        if self._autocommit_reads:
            async with self._async_reader.connect() as connection:
                await connection.execution_options(isolation_level="AUTOCOMMIT")
                return await connection.run_sync(work)
        async with self._async_reader.begin() as connection:
            return await connection.run_sync(work)

    def _read_inline(
        self, work: Callable[[Connection], _T], loop: asyncio.AbstractEventLoop
    ) -> tuple[bool, _T | None]:
        """``work`` on the event loop's read connection: (True, its result), or (False, None)
        when a lock stood in its way (the reader thread runs it then)."""
        started = loop.time()
        connection = self._inline_read_connection
        try:
            if connection is None:
                assert self._sync_reader is not None
                connection = self._inline_read_connection = _connection_on_the_loop(
                    self._sync_reader
                )
            result = work(connection)
            if connection.in_transaction():
                connection.commit()
        except BaseException as exc:
            # Whatever state the failure left, the next read starts on a fresh connection.
            if connection is not None:
                _discard(connection)
            self._inline_read_connection = None
            if isinstance(exc, Exception) and _is_busy(exc):
                self._inline_reads.pause(loop.time())
                return False, None
            raise
        self._inline_reads.took(loop.time() - started, loop.time())
        return True, result

    # --- the writer thread ----------------------------------------------------------------------

    def _drain(self, loop: asyncio.AbstractEventLoop) -> None:
        while True:
            with self._lock:
                if not self._queue:
                    self._draining = False
                    return
                group = [self._queue.popleft() for _ in range(min(MAX_GROUP, len(self._queue)))]
            self._write_group(group)
            self._changes_at_checkpoint = self._request_checkpoint(
                self._write_connection, self._changes_at_checkpoint
            )
            # A closed loop raises RuntimeError: nobody waits for these outcomes any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, group)

    def _connection_for_writes(self) -> Connection:
        if self._write_connection is None:
            assert self._sync is not None
            connection = self._sync.connect()
            driver = cast(sqlite3.Connection, connection.connection.driver_connection)
            driver.execute(f"PRAGMA wal_autocheckpoint = {WRITER_AUTOCHECKPOINT_PAGES}")
            self._changes_at_checkpoint = driver.total_changes
            self._write_connection = connection
        return self._write_connection

    # --- the checkpoint thread ------------------------------------------------------------------

    def _request_checkpoint(self, connection: Connection | None, since: int) -> int:
        """After a write on ``connection`` (the writer thread's or the event loop's): ask for a
        checkpoint once :data:`CHECKPOINT_CHANGES` rows changed on it since ``since``, its count
        at the last request. Returns the count to keep for the next call."""
        if connection is None or self._checkpointer is None:
            return since
        changes = cast(sqlite3.Connection, connection.connection.driver_connection).total_changes
        if changes - since < CHECKPOINT_CHANGES:
            return since
        with self._lock:
            # One run at a time and at most one waiting: requests made meanwhile are covered by it.
            if self._checkpoint_pending:
                return changes
            self._checkpoint_pending = True
        with contextlib.suppress(RuntimeError):  # shut down: the store is closing
            self._checkpointer.submit(self._checkpoint)
        return changes

    def _checkpoint(self) -> None:
        with self._lock:
            self._checkpoint_pending = False
        try:
            connection = self._checkpoint_connection
            if connection is None:
                assert self._sync is not None
                connection = self._checkpoint_connection = self._sync.connect()
            driver = cast(sqlite3.Connection, connection.connection.driver_connection)
            # Straight on the driver: through Core, the statement would open a write transaction.
            driver.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            self.checkpoints_run += 1
        except Exception as exc:
            # The writer's own automatic checkpoint still bounds the WAL; the next request retries
            # on a new connection.
            logger.debug("background checkpoint failed: %s", exc)
            self._close_checkpointer()

    def _write_group(self, group: list[_Write[Any]]) -> None:
        connection = self._connection_for_writes()
        try:
            if len(group) == 1:
                write = group[0]
                try:
                    with connection.begin():
                        write.result = write.work(connection)
                except Exception as exc:
                    write.error = exc
                    if connection.invalidated or connection.closed:
                        self._write_connection = None
                else:
                    self.groups_committed += 1
                    self.writes_committed += 1
                return
            if self._write_all_or_nothing(connection, group):
                return
            with connection.begin():
                driver = connection.connection.driver_connection
                assert driver is not None
                for write in group:
                    driver.execute(f"SAVEPOINT {_SAVEPOINT}")
                    try:
                        write.result = write.work(connection)
                    except Exception as exc:
                        # Only this write is undone; the group goes on.
                        driver.execute(f"ROLLBACK TO {_SAVEPOINT}")
                        write.error = exc
                    driver.execute(f"RELEASE {_SAVEPOINT}")
            self.groups_committed += 1
            self.writes_committed += sum(write.error is None for write in group)
        except BaseException as exc:
            # BEGIN, a savepoint or COMMIT failed: the whole group is rolled back, so every write
            # of it fails with that error, those whose own work had succeeded too.
            for write in group:
                write.result = None
                write.error = exc
            self._write_connection = None
            connection.close()
            if not isinstance(exc, Exception):
                raise

    def _write_all_or_nothing(self, connection: Connection, group: list[_Write[Any]]) -> bool:
        """Write the group with no savepoints; False (all rolled back) if one write fails.

        Failing writes are rare (a message id stored before, a bad value), and two statements per
        write for the savepoint cost a third of the group's time: the group is tried plain first
        and run again, a savepoint per write, only when one of them fails. Units of work are safe
        to repeat, and the failed try left nothing behind.
        """
        results = []
        with connection.begin() as transaction:
            for write in group:
                try:
                    results.append(write.work(connection))
                except Exception:
                    transaction.rollback()
                    return False
        for write, result in zip(group, results, strict=True):
            write.result = result
        self.groups_committed += 1
        self.writes_committed += len(group)
        return True

    # --- the reader thread ----------------------------------------------------------------------

    def _read_in_thread(self, work: Callable[[Connection], _T]) -> _T:
        # The reader's one-statement option emits no BEGIN, so between reads the connection holds
        # no snapshot and never stands in the way of a checkpoint.
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

    # --- closing --------------------------------------------------------------------------------

    def _close_reader(self) -> None:
        if self._read_connection is not None:
            self._read_connection.close()
            self._read_connection = None

    def _close_checkpointer(self) -> None:
        if self._checkpoint_connection is not None:
            with contextlib.suppress(Exception):
                self._checkpoint_connection.close()
            self._checkpoint_connection = None

    def _close_writer(self) -> None:
        if self._write_connection is not None:
            self._write_connection.close()
            self._write_connection = None

    async def close(self) -> None:
        """Finish the queued writes, release the threads and the synchronous engine."""
        await self._release_held()
        loop = asyncio.get_running_loop()
        handle, self._dispatch_handle = self._dispatch_handle, None
        if handle is not None:
            # Writes accepted but not yet dispatched: written (or handed over) before closing.
            handle.cancel()
            self._dispatch(loop)
        self._close_inline()
        if self._writer is not None:
            # Queued after any drain in progress: the writes already accepted are written first.
            await loop.run_in_executor(self._writer, self._close_writer)
            self._writer.shutdown(wait=False)
            self._writer = None
        if self._checkpointer is not None:
            # After the writer: a checkpoint it requested last runs (or is running) before this.
            await loop.run_in_executor(self._checkpointer, self._close_checkpointer)
            self._checkpointer.shutdown(wait=False)
            self._checkpointer = None
        if self._reader is not None:
            await loop.run_in_executor(self._reader, self._close_reader)
            self._reader.shutdown(wait=False)
            self._reader = None
        if self._sync is not None:
            self._sync.dispose()
            self._sync = None
