"""Prebuilt Core statements run straight on the synchronous SQLite driver (the write hot path).

A message write runs two statements. Through Core each costs several times SQLite's own work for
it (compiled-cache lookup, parameter processing, result set-up), so on the pysqlite worker thread
the store runs them as their compiled SQL on the DBAPI connection, with the parameters converted
as the column types would (aware datetimes to naive UTC text, JSON to its text, booleans to
integers). The statement is the same Core object the other backends run, compiled once per set of
parameter names (:func:`execute`), or once with its parameters in a fixed order
(:class:`Prepared`: the open-session update of every message write); errors are wrapped as Core
wraps them, so they are translated alike.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from functools import cache
from typing import Any

from sqlalchemy import JSON, Boolean
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import Executable

from convostore.models import UTCDateTime

_DIALECT = SQLiteDialect_pysqlite()
_Convert = Callable[[Any], Any] | None


def _sqlite_time(value: datetime | None) -> str | None:
    if value is None:
        return None
    zone = value.tzinfo
    if zone is None:
        raise ValueError("naive datetimes cannot be stored; pass an aware (UTC) datetime")
    if zone is not UTC:
        value = value.astimezone(UTC)
    # Naive UTC text with microseconds, as UTCDateTime stores it: the aware text without "+00:00".
    return value.isoformat(" ", "microseconds")[:-6]


def _json(value: Any) -> str:
    return json.dumps(value)  # None is JSON's null, as Core's JSON type stores it


def _bool(value: Any) -> Any:
    return None if value is None else int(bool(value))


def _converter(type_: Any) -> _Convert:
    if isinstance(type_, UTCDateTime):
        return _sqlite_time
    if isinstance(type_, JSON):
        return _json
    if isinstance(type_, Boolean):
        return _bool
    return None


_Given = tuple[str, _Convert]  # a parameter the caller passes, and its conversion
_Slot = tuple[
    int, Any
]  # per placeholder: index into the converted parameters, or -1 and a constant


@cache
def compiled_positional(
    statement: Executable,
    keys: tuple[str, ...],
    dialect: Dialect,
    converter: Callable[[Any], _Convert],
) -> tuple[str, tuple[_Given, ...], tuple[_Slot, ...]]:
    """``statement`` compiled for ``dialect`` (a positional paramstyle) with parameters ``keys``.

    Its SQL, the caller's parameters with the conversion ``converter`` gives each one's type,
    and per placeholder where its value comes from (see :func:`bound_values`). Also used for
    asyncpg by :mod:`convostore.repositories.pg_driver`.
    """
    compiled = statement.compile(dialect=dialect, column_keys=list(keys))  # type: ignore[attr-defined]
    given: dict[str, int] = {}
    conversions: list[_Given] = []
    slots: list[_Slot] = []
    for name in compiled.positiontup or ():
        bind = compiled.binds[name]
        convert = converter(bind.type)
        if name in keys:
            if name not in given:  # a parameter used twice is converted once
                given[name] = len(conversions)
                conversions.append((name, convert))
            slots.append((given[name], None))
        else:
            # Literals of the statement itself (``message_count + 1``) are bound parameters too.
            constant = bind.effective_value
            slots.append(
                (-1, constant if constant is None or convert is None else convert(constant))
            )
    return compiled.string, tuple(conversions), tuple(slots)


def bound_values(
    conversions: Sequence[tuple[Any, _Convert]],
    slots: tuple[_Slot, ...],
    params: Mapping[str, Any] | Sequence[Any],
) -> tuple[Any, ...]:
    """The values of a :func:`compiled_positional` statement's placeholders, in order.

    ``conversions`` name each parameter by its key in ``params``: a name in a mapping, or (see
    :class:`Prepared`) a position in a sequence.
    """
    converted = [
        params[key] if convert is None else convert(params[key]) for key, convert in conversions
    ]
    return tuple([converted[i] if i >= 0 else constant for i, constant in slots])


class Prepared:
    """A statement run on the SQLite driver with its parameters given in a fixed order.

    :func:`execute` finds a statement's compiled form by the sorted names of a mapping on every
    call; a hot statement whose caller always passes the same parameters does that once here,
    and its values are converted by position.
    """

    __slots__ = ("_keys", "_plan", "_slots", "_sql", "_statement")

    def __init__(self, statement: Executable, keys: tuple[str, ...]) -> None:
        self._statement = statement
        self._keys = keys
        self._sql: str | None = None
        self._plan: tuple[tuple[int, _Convert], ...] = ()
        self._slots: tuple[_Slot, ...] = ()

    def _compile(self) -> str:
        sql, conversions, slots = compiled_positional(
            self._statement, tuple(sorted(self._keys)), _DIALECT, _converter
        )
        # The parameters by their position in ``values`` instead of their name.
        self._plan = tuple((self._keys.index(name), convert) for name, convert in conversions)
        self._slots = slots
        self._sql = sql
        return sql

    def execute(self, connection: Connection, values: tuple[Any, ...]) -> sqlite3.Cursor:
        """Run the statement with ``values``, one per key in the order given at construction."""
        sql = self._sql or self._compile()
        return run(connection, sql, bound_values(self._plan, self._slots, values))


def run(connection: Connection, sql: str, values: Sequence[Any]) -> sqlite3.Cursor:
    """Run ``sql`` on ``connection``'s pysqlite connection; errors wrapped as Core wraps them."""
    driver = connection.connection.driver_connection
    try:
        return driver.execute(sql, values)  # type: ignore[union-attr,no-any-return]
    except sqlite3.Error as exc:
        raise DBAPIError.instance(sql, values, exc, sqlite3.Error) from exc


def execute(
    connection: Connection, statement: Executable, params: Mapping[str, Any]
) -> sqlite3.Cursor:
    """Run ``statement`` with ``params`` on ``connection``'s pysqlite connection."""
    sql, conversions, slots = compiled_positional(
        statement, tuple(sorted(params)), _DIALECT, _converter
    )
    return run(connection, sql, bound_values(conversions, slots, params))
