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
from functools import cache
from typing import Any

from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.sql import Executable

_DIALECT = PGDialect_asyncpg()  # type: ignore[no-untyped-call]
_Process = Callable[[Any], Any] | None
# Per placeholder ($1, $2, …): the caller's parameter and its processing, or a constant.
_Slot = tuple[str | None, _Process, Any]


@cache
def _compiled(statement: Executable, keys: tuple[str, ...]) -> tuple[str, tuple[_Slot, ...]]:
    compiled = statement.compile(dialect=_DIALECT, column_keys=list(keys))  # type: ignore[attr-defined]
    slots: list[_Slot] = []
    for name in compiled.positiontup or ():
        bind = compiled.binds[name]
        process = bind.type.dialect_impl(_DIALECT).bind_processor(_DIALECT)
        if name in keys:
            slots.append((name, process, None))
        else:
            # Literals of the statement itself (``message_count + 1``) are bound parameters too.
            constant = bind.effective_value
            slots.append((None, None, constant if process is None else process(constant)))
    return compiled.string, tuple(slots)


def statement_args(statement: Executable, params: Mapping[str, Any]) -> tuple[str, list[Any]]:
    """``statement`` as SQL for asyncpg and its arguments from ``params``, in placeholder order."""
    sql, slots = _compiled(statement, tuple(sorted(params)))
    args = [
        constant if name is None else params[name] if process is None else process(params[name])
        for name, process, constant in slots
    ]
    return sql, args
