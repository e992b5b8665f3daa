"""Query plans of the hot queries: which index each one uses, read from the database itself.

The statements explained are the ones the store and cleanup really run, built by their own
modules (history: ``repositories.messages``; session lookup: ``repositories.sessions``; cleanup
selection: ``ops.retention``), never copies. SQLite answers ``EXPLAIN QUERY PLAN``; PostgreSQL
``EXPLAIN (FORMAT JSON)``. On PostgreSQL the planner rightly prefers a sequential scan of a small
table, so :func:`explain_hot_queries` can switch sequential scans off for its transaction: the
question asked is then "can an index serve this query", which is what a missing or unusable index
changes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement, Executable

from convostore.ops.retention import doomed_sessions_query
from convostore.repositories.messages import newest_driver_sql, newest_statement
from convostore.repositories.sessions import open_session_statement

HISTORY_LIMIT = 100
CLEANUP_BATCH = 500


class Explain(Executable, ClauseElement):
    """``EXPLAIN`` of a Core statement, executed with the statement's own parameters."""

    inherit_cache = False

    def __init__(self, statement: ClauseElement) -> None:
        self.statement = statement


@compiles(Explain)
def _compile_explain(element: Explain, compiler: SQLCompiler, **kw: Any) -> str:
    prefix = (
        "EXPLAIN QUERY PLAN " if compiler.dialect.name == "sqlite" else "EXPLAIN (FORMAT JSON) "
    )
    return prefix + str(compiler.process(element.statement, **kw))


@dataclass(frozen=True)
class HotQuery:
    """A query that runs all the time, the table it reads and the indexes that serve it."""

    name: str
    table: str
    indexes: tuple[str, ...]  # any of them serves the query; the first is the one built for it

    @property
    def preferred_index(self) -> str:
        return self.indexes[0]


HISTORY = HotQuery(
    "history (newest N of a channel)",
    "conversations",
    # SQLite reads it from idx_conversations_history alone (revision 0007, SQLite only; a missing
    # one shows as model drift).
    ("idx_conversations_bot_channel_time", "idx_conversations_history"),
)
SESSION_LOOKUP = HotQuery(
    "session lookup (open session of a channel)",
    "sessions",
    ("uq_sessions_one_active", "idx_sessions_bot_channel"),
)
CLEANUP_SELECTION = HotQuery(
    "cleanup selection (old sessions of a bot)", "sessions", ("idx_sessions_bot_channel",)
)
HOT_QUERIES = (HISTORY, SESSION_LOOKUP, CLEANUP_SELECTION)


@dataclass(frozen=True)
class IndexUse:
    table: str
    index: str


@dataclass(frozen=True)
class QueryPlan:
    """What the planner chose for one hot query."""

    query: HotQuery
    lines: tuple[str, ...]
    index_uses: tuple[IndexUse, ...]
    full_scans: tuple[str, ...]  # tables read from start to end, with or without an index

    @property
    def index_used(self) -> str | None:
        """The index the planner chose on the query's table, if any."""
        for use in self.index_uses:
            if use.table == self.query.table:
                return use.index
        return None

    @property
    def uses_expected_index(self) -> bool:
        return self.index_used in self.query.indexes and self.query.table not in self.full_scans


_SQLITE_STEP = re.compile(
    r"^(?P<op>SEARCH|SCAN) (?P<table>\S+)(?: AS \S+)?"
    r"(?: USING (?:COVERING )?INDEX (?P<index>\S+)| USING (?P<pk>(?:INTEGER )?PRIMARY KEY))?"
)


def read_sqlite_plan(query: HotQuery, rows: Sequence[Any]) -> QueryPlan:
    """A plan from ``EXPLAIN QUERY PLAN`` rows ``(id, parent, notused, detail)``."""
    lines, uses, full = [], [], []
    for row in rows:
        detail = str(row[3])
        lines.append(detail)
        step = _SQLITE_STEP.match(detail)
        if step is None:
            continue
        index = step.group("index") or (step.group("pk") and "PRIMARY KEY")
        if step.group("op") == "SCAN":
            full.append(step.group("table"))
        if index:
            uses.append(IndexUse(step.group("table"), index))
    return QueryPlan(query, tuple(lines), tuple(uses), tuple(full))


def _pg_nodes(
    node: Mapping[str, Any], parent_relation: str | None = None
) -> Iterator[tuple[Mapping[str, Any], str | None]]:
    yield node, parent_relation
    for child in node.get("Plans", ()):
        yield from _pg_nodes(child, node.get("Relation Name", parent_relation))


def read_postgresql_plan(query: HotQuery, document: Any) -> QueryPlan:
    """A plan from the JSON document of ``EXPLAIN (FORMAT JSON)``."""
    if isinstance(document, str | bytes):
        document = json.loads(document)
    lines, uses, full = [], [], []
    for node, parent_relation in _pg_nodes(document[0]["Plan"]):
        kind = str(node["Node Type"])
        relation = node.get("Relation Name", parent_relation)
        index = node.get("Index Name")
        lines.append(" ".join(str(p) for p in (kind, relation, index and f"using {index}") if p))
        if kind in ("Index Scan", "Index Only Scan", "Bitmap Index Scan") and index:
            uses.append(IndexUse(str(relation), str(index)))
        elif kind == "Seq Scan" and relation:
            full.append(str(relation))
    return QueryPlan(query, tuple(lines), tuple(uses), tuple(full))


def _explain(connection: Connection, query: HotQuery, statement: Any, params: Any) -> QueryPlan:
    if connection.dialect.name == "sqlite":
        if isinstance(statement, str):
            rows = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", params).all()
        else:
            rows = connection.execute(Explain(statement), params).all()
        return read_sqlite_plan(query, rows)
    return read_postgresql_plan(query, connection.execute(Explain(statement), params).scalar())


def explain_hot_queries(
    connection: Connection,
    *,
    bot_name: str = "bot",
    channel_id: str = "0",
    discourage_seq_scan: bool = True,
    now: datetime | None = None,
) -> list[QueryPlan]:
    """The plans of the history, session lookup and cleanup selection queries.

    On PostgreSQL, ``discourage_seq_scan`` sets ``enable_seqscan = off`` for the current
    transaction only (``SET LOCAL``); roll it back or let the caller's transaction end.
    """
    dialect = connection.dialect.name
    if dialect == "postgresql" and discourage_seq_scan:
        connection.execute(text("SET LOCAL enable_seqscan = off"))
    plans = []
    # On the synchronous SQLite driver the store reads history with a fixed SQL string; explain
    # that string, else the Core statement.
    if dialect == "sqlite" and connection.dialect.driver == "pysqlite":
        plans.append(
            _explain(
                connection, HISTORY, newest_driver_sql(), (bot_name, channel_id, HISTORY_LIMIT)
            )
        )
    else:
        plans.append(
            _explain(
                connection,
                HISTORY,
                newest_statement(dialect),
                {"bot_name": bot_name, "channel_id": channel_id, "limit": HISTORY_LIMIT},
            )
        )
    plans.append(
        _explain(
            connection,
            SESSION_LOOKUP,
            open_session_statement(),
            {"bot": bot_name, "channel": channel_id},
        )
    )
    cutoff = (now or datetime.now(UTC)).astimezone(UTC)
    cleanup = doomed_sessions_query(
        bot_name, {"channel": cutoff, "dm": cutoff}, details=False
    ).limit(CLEANUP_BATCH)
    plans.append(_explain(connection, CLEANUP_SELECTION, cleanup, {}))
    return plans
