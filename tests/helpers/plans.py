"""A test database's indexes and the plan of a statement the code under test sends."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import create_engine, event, inspect
from sqlalchemy.engine import Connection

from tests.helpers.rows import sync_url


@contextmanager
def sync_connection(url: str) -> Iterator[Connection]:
    """A connection to the database at ``url`` through a synchronous driver."""
    engine = create_engine(sync_url(url))
    try:
        with engine.connect() as connection:
            yield connection
    finally:
        engine.dispose()


def index_names(url: str, table: str = "conversations") -> set[str]:
    with sync_connection(url) as connection:
        return {str(i["name"]) for i in inspect(connection).get_indexes(table)}


def statement_plan(connection: Connection, run: Callable[[Connection], Any]) -> str:
    """The plan of the first statement ``run`` sends, as the database explains it."""
    sent: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        sent.append((statement, parameters))

    event.listen(connection, "before_cursor_execute", record)
    try:
        run(connection)
    finally:
        event.remove(connection, "before_cursor_execute", record)
    statement, parameters = sent[0]
    if connection.dialect.name == "sqlite":
        rows = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
        return "\n".join(str(r[-1]) for r in rows)
    # A handful of rows would be read by a sequential scan; rule out the plans that are not an
    # index's (a scan of the table, a bitmap scan, a sort) unless nothing else can answer.
    for setting in ("enable_seqscan", "enable_bitmapscan", "enable_sort"):
        connection.exec_driver_sql(f"SET LOCAL {setting} = off")
    rows = connection.exec_driver_sql(f"EXPLAIN {statement}", parameters)
    return "\n".join(str(r[0]) for r in rows)
