"""Keeps a SQLite store's search index caught up: the new rows are indexed in batches.

From revision 0006 on, SQLite rows reach the full-text index in batches, not one by one in the
inserting transaction (see :func:`convostore.repositories.search.index_pending`): one write
transaction indexes every pending row, every :data:`BATCH_WRITES` writes of the store or
:data:`DELAY_S` after the first write not yet indexed, whichever comes first, and when the store
closes. A search never waits for it: it matches the pending rows itself. Other processes that
write the same file index their own rows the same way; whichever runs first indexes them all.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from sqlalchemy.engine import Connection

from convostore.errors import ConvostoreError
from convostore.repositories.search import index_pending

__all__ = ["BATCH_WRITES", "DELAY_S", "SearchIndexer"]

BATCH_WRITES = 256
DELAY_S = 1.0

logger = logging.getLogger(__name__)
_Write = Callable[[Callable[[Connection], int]], Awaitable[int]]


class SearchIndexer:
    """Indexes the rows a store wrote, in batches, through the store's own ``write``."""

    def __init__(self, write: _Write, *, enabled: bool) -> None:
        self._write = write
        self._enabled = enabled
        self._unindexed_writes = 0
        self._wrote = False
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def wrote(self) -> None:
        """Called on the event loop after each committed write of the store."""
        if not self._enabled or self._closed:
            return
        self._wrote = True
        self._unindexed_writes += 1
        if self._task is not None:
            return  # the running batch reschedules itself for what it did not see
        if self._unindexed_writes >= BATCH_WRITES:
            self._start()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(DELAY_S, self._start)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _start(self) -> None:
        self._cancel_timer()
        if self._task is None and not self._closed:
            self._unindexed_writes = 0
            self._task = asyncio.get_running_loop().create_task(self._index())

    async def _index(self) -> None:
        try:
            await self._write(index_pending)
        except ConvostoreError as exc:
            # The rows stay pending (searches still find them); the next batch tries again.
            logger.warning("search index not updated: %s", exc)
        finally:
            self._task = None
            if self._unindexed_writes and self._timer is None and not self._closed:
                self._timer = asyncio.get_running_loop().call_later(DELAY_S, self._start)

    async def close(self) -> None:
        """Index what this store wrote and is still pending (the store is closing)."""
        self._closed = True
        self._cancel_timer()
        if self._task is not None:
            await self._task
        if self._wrote and self._unindexed_writes:
            self._unindexed_writes = 0
            try:
                await self._write(index_pending)
            except ConvostoreError as exc:
                logger.warning("search index not updated: %s", exc)
