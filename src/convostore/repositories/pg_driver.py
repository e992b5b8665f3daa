"""Prebuilt Core statements as SQL and arguments for asyncpg (PostgreSQL's hot paths).

PostgreSQL's common write and the history reads are one statement each. Run through Core in a
greenlet of the async engine, each paid about as much again in Python as the server's round trip
(checkout through ``AsyncConnection``, the greenlet hop, compiled-cache lookup, parameter and
result processing). The store runs them straight on an asyncpg connection of its pool (see
:meth:`convostore.unit_of_work.UnitOfWorkRunner.fetch_direct`): the statement is the same Core
object, compiled once for SQLAlchemy's asyncpg dialect per set of parameter names, and each value
goes through its column type's bind processing for that dialect, as Core would send it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.sql import Executable

from convostore.repositories.driver import bound_values, compiled_positional

_DIALECT = PGDialect_asyncpg()  # type: ignore[no-untyped-call]


def _bind_processor(type_: Any) -> Callable[[Any], Any] | None:
    # What Core does to a value of this type before handing it to asyncpg.
    processor: Callable[[Any], Any] | None = type_.dialect_impl(_DIALECT).bind_processor(_DIALECT)
    return processor


def statement_args(statement: Executable, params: Mapping[str, Any]) -> tuple[str, tuple[Any, ...]]:
    """``statement`` as SQL for asyncpg and its arguments from ``params``, in placeholder order."""
    sql, conversions, slots = compiled_positional(
        statement, tuple(sorted(params)), _DIALECT, _bind_processor
    )
    return sql, bound_values(conversions, slots, params)
