"""Copy bots' rows from one convostore database into another (``convostore copy``).

The tables are not listed here: they are reflected from the source, so a table that a later
revision adds is copied too. A table is a bot's when it has a ``bot_name`` column, or when it
refers (foreign key) to the surrogate ``id`` of such a table (``message_revisions`` →
``conversations``); those references are re-pointed at the target's ids through the parent's
natural key. Computed columns (a search index kept by the database) and SQLite virtual tables with
their shadow tables (an FTS index kept by triggers) are not copied: the target rebuilds them.

* The target is created, or upgraded, to the source's schema revision first, with Alembic (the
  same ``env.py`` as ``alembic upgrade``); a target at a newer revision than the source is refused.
* All of one bot's rows are read in one read transaction on the source (a snapshot, REPEATABLE
  READ on PostgreSQL), page by page in primary-key order, so bots may keep writing meanwhile; the
  counts compared at the end are the snapshot's. Nothing is written to the source.
* Rows with a unique key are upserted on it (``ON CONFLICT … DO UPDATE``): a rerun after an
  interruption, even ``kill -9``, adds what is missing and refreshes what changed (a session's
  counter, an edited message) without duplicates. Tables without a unique key (the legacy import
  ledger, message revisions) are compared as multisets and only the missing rows are added.
* The target commits every page (:data:`PAGE_ROWS` rows), so other bots sharing a target SQLite
  file wait for one page at most. Pages are written one after the other, in order; the next page
  is read from the source while one is being written.
* Per bot and table, the source's count must equal the target's at the end; any difference is
  reported as a mismatch (the CLI turns it into an error).
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    Integer,
    MetaData,
    Table,
    UniqueConstraint,
    func,
    inspect,
    select,
    text,
    tuple_,
)
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql import Select

from convostore.config import async_url, redact_url
from convostore.db import translate_errors
from convostore.engine import make_engine, read_only
from convostore.errors import OperationError
from convostore.repositories.search import index_pending
from convostore.schema import KNOWN_REVISIONS

PAGE_ROWS = 5000
_SKIPPED_TABLES = {"alembic_version"}

Progress = Callable[[int], None]


@dataclass
class TableCount:
    source: int = 0
    target: int = 0

    @property
    def matches(self) -> bool:
        return self.source == self.target


@dataclass
class BotCopy:
    """What was (or, in a dry run, would be) copied for one bot."""

    bot: str
    source: str
    target: str
    tables: dict[str, TableCount] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(t.matches for t in self.tables.values())

    @property
    def mismatches(self) -> list[str]:
        return [
            f"{name} {count.source} in the source, {count.target} in the target"
            for name, count in self.tables.items()
            if not count.matches
        ]


@dataclass
class CopyPlan:
    source_revision: str
    target_revision: str | None  # before the copy; None: no schema yet


@dataclass(frozen=True)
class _Owned:
    """A table holding bots' rows, and how to find one bot's rows in it."""

    table: Table
    parent: Table | None = None  # for a child table: the bot-owned table it refers to
    parent_fk: str | None = None  # the column referring to the parent's id


def _is_surrogate(column: Column[Any]) -> bool:
    return (
        bool(column.primary_key)
        and isinstance(column.type, Integer)
        and len(column.table.primary_key.columns) == 1
    )


def _copied_columns(table: Table) -> list[str]:
    return [c.name for c in table.columns if not _is_surrogate(c) and c.computed is None]


def _natural_key(table: Table) -> list[str] | None:
    copied = set(_copied_columns(table))
    for constraint in sorted(table.constraints, key=lambda c: str(c.name)):
        if isinstance(constraint, UniqueConstraint):
            columns = [c.name for c in constraint.columns]
            if columns and set(columns) <= copied:
                return columns
    pk = [c.name for c in table.primary_key.columns]
    if pk and set(pk) <= copied:
        return pk
    return None


def _excluded_sqlite_tables(connection: Connection) -> set[str]:
    """Virtual tables (FTS) and their shadow tables: the database maintains them."""
    if connection.dialect.name != "sqlite":
        return set()
    virtual = [
        row[0]
        for row in connection.execute(
            text(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND upper(sql) LIKE 'CREATE VIRTUAL TABLE%'"
            )
        )
    ]
    names = [row[0] for row in connection.execute(text("SELECT name FROM sqlite_master"))]
    return {n for n in names for v in virtual if n == v or n.startswith(f"{v}_")}


def _reflect(connection: Connection) -> MetaData:
    excluded = _excluded_sqlite_tables(connection) | _SKIPPED_TABLES
    metadata = MetaData()
    metadata.reflect(
        connection, only=lambda name, _m: name not in excluded and not name.startswith("sqlite_")
    )
    for table in metadata.tables.values():
        for column in table.columns:
            if isinstance(column.type, JSON):
                # SQL NULL stays SQL NULL (not the JSON text 'null').
                column.type = JSON(none_as_null=True)
    return metadata


def owned_tables(metadata: MetaData) -> list[_Owned]:
    """The tables holding bots' rows, parents before children."""
    direct = {t.name for t in metadata.tables.values() if "bot_name" in t.c}
    owned: list[_Owned] = []
    for table in metadata.sorted_tables:
        if table.name in direct:
            owned.append(_Owned(table))
            continue
        for fk in table.foreign_keys:
            parent = fk.column.table
            if parent.name in direct and _is_surrogate(fk.column):
                owned.append(_Owned(table, parent, fk.parent.name))
                break
    return owned


def _bot_rows(owned: _Owned, table: Table, bot: str) -> Select[Any]:
    """All columns of ``table`` (the source's or the target's version of ``owned``) for ``bot``."""
    if owned.parent is None:
        return select(table).where(table.c.bot_name == bot)
    parent = table.metadata.tables[owned.parent.name]
    assert owned.parent_fk is not None
    fk = table.c[owned.parent_fk]
    pk = next(iter(parent.primary_key.columns))
    return select(table).join(parent, fk == pk).where(parent.c.bot_name == bot)


def _count(owned: _Owned, table: Table, bot: str) -> Select[Any]:
    return select(func.count()).select_from(_bot_rows(owned, table, bot).subquery())


def _utc(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value


def _for_target(value: Any, sqlite: bool) -> Any:
    if not isinstance(value, datetime):
        return value
    value = _utc(value)
    if sqlite:
        return value.replace(tzinfo=None)  # SQLite keeps naive UTC, as convostore's own type
    return value


def _hashable(value: Any) -> Any:
    value = _utc(value)
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, default=str)
    return value


def upgrade_target(url: str, revision: str) -> None:
    """Create or upgrade the database at ``url`` to ``revision`` through Alembic's env.py.

    The packaged migrations, as ``convostore upgrade --url`` runs them; no bot configuration is
    read and the legacy data revision imports nothing (the copy brings the rows).
    """
    import tempfile

    from alembic import command
    from alembic.util import CommandError

    from convostore.ops.upgrade import alembic_config

    with tempfile.TemporaryDirectory(prefix="convostore-copy-") as empty:
        cfg = alembic_config(Path(empty), url=url, legacy_import=False)
        try:
            command.upgrade(cfg, revision)  # type: ignore[arg-type]
        except CommandError as exc:
            raise OperationError(f"{redact_url(url)}: schema upgrade failed: {exc}") from None


async def _revision(connection: AsyncConnection) -> str | None:
    def read(sync: Connection) -> str | None:
        if not inspect(sync).has_table("alembic_version"):
            return None
        row = sync.execute(text("SELECT version_num FROM alembic_version")).first()
        return None if row is None else str(row[0])

    return await connection.run_sync(read)


def _sqlite_path(url: str) -> Path | None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(str(parsed.database))


def same_database(a: str, b: str) -> bool:
    pa, pb = _sqlite_path(a), _sqlite_path(b)
    if pa is not None or pb is not None:
        return pa is not None and pb is not None and pa.resolve() == pb.resolve()
    ua, ub = make_url(async_url(a)), make_url(async_url(b))
    return (ua.host, ua.port, ua.database) == (ub.host, ub.port, ub.database)


async def source_bots(url: str) -> list[str]:
    """Every bot with rows in the database at ``url``."""
    engine = _engine(url, must_exist=True)
    try:
        with translate_errors(redact_url(url)):
            async with read_only(engine).connect() as connection:
                metadata = await connection.run_sync(_reflect)
                names: set[str] = set()
                for owned in owned_tables(metadata):
                    if owned.parent is None:
                        result = await connection.execute(select(owned.table.c.bot_name).distinct())
                        names.update(str(row[0]) for row in result)
                return sorted(names)
    finally:
        await engine.dispose()


def _engine(url: str, *, must_exist: bool) -> AsyncEngine:
    path = _sqlite_path(url)
    if must_exist and path is not None and not path.is_file():
        raise OperationError(f"{path}: database file not found")
    return make_engine(async_url(url), null_pool=True)


class _Copier:
    def __init__(
        self,
        source: AsyncConnection,
        target: AsyncEngine,
        source_meta: MetaData,
        target_meta: MetaData | None,
        progress: Progress | None,
    ) -> None:
        self.source = source
        self.target = target
        self.source_meta = source_meta
        self.target_meta = target_meta
        self.progress = progress
        self.sqlite_target = target.dialect.name == "sqlite"

    def _target_table(self, name: str) -> Table:
        assert self.target_meta is not None
        if name not in self.target_meta.tables:
            raise OperationError(f"the target has no table {name!r} (schema revisions differ?)")
        return self.target_meta.tables[name]

    async def _pages(self, owned: _Owned, bot: str) -> AsyncIterator[list[dict[str, Any]]]:
        table = owned.table
        pk = list(table.primary_key.columns)
        if not pk:
            raise OperationError(f"table {table.name} has no primary key; cannot page through it")
        last: tuple[Any, ...] | None = None
        while True:
            query = _bot_rows(owned, table, bot)
            if last is not None:
                query = query.where(tuple_(*pk) > tuple_(*last) if len(pk) > 1 else pk[0] > last[0])
            rows = (await self.source.execute(query.order_by(*pk).limit(PAGE_ROWS))).all()
            if not rows:
                return
            last = tuple(rows[-1]._mapping[c.name] for c in pk)
            yield [dict(row._mapping) for row in rows]

    async def _remap(self, owned: _Owned, rows: list[dict[str, Any]]) -> None:
        """Point a child's references at the target's ids of the same parent rows."""
        assert owned.parent is not None and owned.parent_fk is not None
        parent = owned.parent
        key = _natural_key(parent)
        if key is None:
            raise OperationError(
                f"cannot copy {owned.table.name}: its parent table {parent.name} has no unique key"
            )
        old_ids = sorted({r[owned.parent_fk] for r in rows})
        source_pk = next(iter(parent.primary_key.columns))
        by_key: dict[tuple[Any, ...], Any] = {}
        mapping: dict[Any, Any] = {}
        for start in range(0, len(old_ids), 500):
            chunk = old_ids[start : start + 500]
            found = await self.source.execute(
                select(source_pk, *(parent.c[k] for k in key)).where(source_pk.in_(chunk))
            )
            for row in found:
                by_key[tuple(_hashable(v) for v in row[1:])] = row[0]
        target_parent = self._target_table(parent.name)
        target_pk = next(iter(target_parent.primary_key.columns))
        keys = list(by_key)
        async with self.target.connect() as connection:
            for start in range(0, len(keys), 500):
                chunk_keys = keys[start : start + 500]
                raw = [tuple(_for_target(v, self.sqlite_target) for v in k) for k in chunk_keys]
                found = await connection.execute(
                    select(target_pk, *(target_parent.c[k] for k in key)).where(
                        tuple_(*(target_parent.c[k] for k in key)).in_(raw)
                    )
                )
                for row in found:
                    old = by_key.get(tuple(_hashable(v) for v in row[1:]))
                    if old is not None:
                        mapping[old] = row[0]
        for child in rows:
            new = mapping.get(child[owned.parent_fk])
            if new is None:
                raise OperationError(
                    f"cannot copy {owned.table.name}: row {child[owned.parent_fk]} of "
                    f"{parent.name} is missing in the target"
                )
            child[owned.parent_fk] = new

    async def _upsert(self, table: Table, key: list[str], rows: list[dict[str, Any]]) -> None:
        if self.sqlite_target:
            from sqlalchemy.dialects.sqlite import insert
        else:
            from sqlalchemy.dialects.postgresql import insert  # type: ignore[assignment]
        statement = insert(table)
        others = [c for c in _copied_columns(table) if c not in key]
        if others:
            statement = statement.on_conflict_do_update(
                index_elements=key, set_={c: statement.excluded[c] for c in others}
            )
        else:
            statement = statement.on_conflict_do_nothing(index_elements=key)
        async with self.target.begin() as connection:
            await connection.execute(statement, rows)

    async def _write_page(self, table: Table, key: list[str], rows: list[dict[str, Any]]) -> None:
        await self._upsert(table, key, rows)
        if self.progress is not None:
            self.progress(len(rows))

    async def copy_table(self, owned: _Owned, bot: str) -> None:
        target_table = self._target_table(owned.table.name)
        key = _natural_key(target_table)
        columns = _copied_columns(target_table)
        sqlite = self.sqlite_target
        missing: Counter[tuple[Any, ...]] = Counter()
        keyless_rows: dict[tuple[Any, ...], dict[str, Any]] = {}
        # The next page is read and prepared while the previous one is written: pages are still
        # written one at a time, in order, each in its own transaction.
        writing: asyncio.Future[None] | None = None
        try:
            async for page in self._pages(owned, bot):
                if owned.parent is not None:
                    if writing is not None:
                        await writing  # the child's remap reads the target
                        writing = None
                    await self._remap(owned, page)
                rows = [{c: _for_target(r.get(c), sqlite) for c in columns} for r in page]
                if key is not None:
                    if writing is not None:
                        await writing
                    writing = asyncio.ensure_future(self._write_page(target_table, key, rows))
                    continue
                for row in rows:
                    signature = tuple(_hashable(row[c]) for c in sorted(row))
                    missing[signature] += 1
                    keyless_rows[signature] = row
            if writing is not None:
                await writing
                writing = None
        finally:
            if writing is not None:  # an error came first: stop the write, keep that error
                writing.cancel()
                with suppress(asyncio.CancelledError, Exception):
                    await writing
        if key is not None:
            return
        # No unique key: add only the rows the target lacks (a rerun adds nothing twice).
        columns = _copied_columns(target_table)
        async with self.target.connect() as connection:
            rows_for_bot = _bot_rows(owned, target_table, bot).subquery()
            present = await connection.execute(
                select(*(rows_for_bot.c[c] for c in sorted(columns)))
            )
            seen_present = 0
            for found in present:
                signature = tuple(_hashable(v) for v in found)
                if missing[signature] > 0:
                    missing[signature] -= 1
                    seen_present += 1
        todo = [keyless_rows[s] for s, n in missing.items() for _ in range(n)]
        for start in range(0, len(todo), PAGE_ROWS):
            async with self.target.begin() as connection:
                await connection.execute(target_table.insert(), todo[start : start + PAGE_ROWS])
        if self.progress is not None:
            self.progress(sum(missing.values()) + seen_present)


async def _source_counts(
    connection: AsyncConnection, metadata: MetaData, bot: str
) -> dict[str, int]:
    return {
        owned.table.name: int(
            (await connection.execute(_count(owned, owned.table, bot))).scalar_one()
        )
        for owned in owned_tables(metadata)
    }


async def _target_counts(
    engine: AsyncEngine, metadata: MetaData | None, owned: Sequence[_Owned], bot: str
) -> dict[str, int]:
    if metadata is None:
        return {o.table.name: 0 for o in owned}
    counts: dict[str, int] = {}
    async with read_only(engine).connect() as connection:
        for o in owned:
            table = metadata.tables.get(o.table.name)
            counts[o.table.name] = (
                0
                if table is None
                else int((await connection.execute(_count(o, table, bot))).scalar_one())
            )
    return counts


async def plan(source_url: str, target_url: str) -> CopyPlan:
    """The source's revision and the target's (None when it has no schema yet)."""
    source = _engine(source_url, must_exist=True)
    target_path = _sqlite_path(target_url)
    try:
        with translate_errors(redact_url(source_url)):
            async with read_only(source).connect() as connection:
                revision = await _revision(connection)
        if revision is None:
            raise OperationError(f"{redact_url(source_url)}: no convostore schema to copy from")
        target_revision: str | None = None
        if target_path is None or target_path.is_file():
            target = _engine(target_url, must_exist=False)
            try:
                with translate_errors(redact_url(target_url)):
                    async with read_only(target).connect() as connection:
                        target_revision = await _revision(connection)
            finally:
                await target.dispose()
    finally:
        await source.dispose()
    for name, rev in (("source", revision), ("target", target_revision)):
        if rev is not None and rev not in KNOWN_REVISIONS:
            raise OperationError(
                f"the {name} is at schema revision {rev}, which this convostore does not know; "
                "upgrade convostore"
            )
    if target_revision is not None and KNOWN_REVISIONS.index(
        target_revision
    ) > KNOWN_REVISIONS.index(revision):
        raise OperationError(
            f"the target is at schema revision {target_revision}, newer than the source "
            f"({revision}); upgrade the source first (`alembic -x url=… upgrade {target_revision}`)"
        )
    return CopyPlan(revision, target_revision)


async def copy_bots(
    source_url: str,
    target_url: str,
    bots: Sequence[str],
    *,
    dry_run: bool = False,
    progress: Progress | None = None,
    totals: Callable[[int], None] | None = None,
) -> list[BotCopy]:
    """Copy ``bots``' rows from ``source_url`` into ``target_url`` (see the module docstring).

    ``totals`` hears the number of rows to read once the source has been counted; ``progress``
    hears the rows written as they go.
    """
    if same_database(source_url, target_url):
        raise OperationError(f"{redact_url(target_url)}: the target is the source")
    copy_plan = await plan(source_url, target_url)
    if not dry_run:
        await asyncio.to_thread(upgrade_target, async_url(target_url), copy_plan.source_revision)
    source = _engine(source_url, must_exist=True)
    has_target = not dry_run or copy_plan.target_revision is not None
    target = _engine(target_url, must_exist=False) if has_target else None
    results: list[BotCopy] = []
    try:
        for bot in bots:
            results.append(
                await _copy_bot(
                    source, target, source_url, target_url, bot, dry_run, progress, totals
                )
            )
        if target is not None and not dry_run:
            # A SQLite target's search index takes the copied rows in one batch.
            with translate_errors(redact_url(target_url)):
                async with target.begin() as connection:
                    await connection.run_sync(index_pending)
    finally:
        await source.dispose()
        if target is not None:
            await target.dispose()
    return results


async def _copy_bot(
    source: AsyncEngine,
    target: AsyncEngine | None,
    source_url: str,
    target_url: str,
    bot: str,
    dry_run: bool,
    progress: Progress | None,
    totals: Callable[[int], None] | None,
) -> BotCopy:
    result = BotCopy(bot, redact_url(source_url), redact_url(target_url))
    where = redact_url(source_url)
    with translate_errors(where):
        async with read_only(source).connect() as connection:
            if source.dialect.name == "postgresql":
                # One snapshot for every table of the bot: its counts are the copy's reference.
                await connection.execution_options(isolation_level="REPEATABLE READ")
            async with connection.begin():
                source_meta = await connection.run_sync(_reflect)
                owned = owned_tables(source_meta)
                counts = await _source_counts(connection, source_meta, bot)
                if totals is not None:
                    totals(sum(counts.values()))
                target_meta: MetaData | None = None
                if target is not None:
                    with translate_errors(redact_url(target_url)):
                        async with target.connect() as tconn:
                            target_meta = await tconn.run_sync(_reflect)
                if not dry_run:
                    assert target is not None
                    copier = _Copier(connection, target, source_meta, target_meta, progress)
                    with translate_errors(redact_url(target_url)):
                        for o in owned:
                            await copier.copy_table(o, bot)
    with translate_errors(redact_url(target_url)):
        target_counts = (
            await _target_counts(target, target_meta, owned, bot)
            if target is not None
            else {o.table.name: 0 for o in owned}
        )
    for o in owned:
        result.tables[o.table.name] = TableCount(counts[o.table.name], target_counts[o.table.name])
    return result
