"""Many rows in one statement, for the backfill and the legacy import.

PostgreSQL: one ``INSERT … SELECT FROM unnest(…)`` (:func:`unnest_insert`). It knows nothing of
convostore's tables: the caller passes the table (the importer its own copy of revision 0002's
columns, which must not follow the models), and each parameter is cast to that table's column type.

SQLite: ``INSERT … VALUES (…), (…), …`` of many rows (:func:`values_insert`), cut into statements
by :func:`statement_rows`. An ``executemany`` runs its statement once per row; a multi-row VALUES
of a few hundred rows costs about a quarter less CPU per row.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence

from sqlalchemy import TextClause, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql import TableClause

__all__ = ["statement_rows", "unnest_insert", "values_insert"]

_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]


def unnest_insert(
    table: TableClause, columns: Sequence[str], *, scalars: Sequence[str] = (), suffix: str = ""
) -> TextClause:
    """Many rows of ``table`` in one statement: each of ``columns`` bound as one array, the rows
    made by ``unnest``, and each of ``scalars`` bound once, the same value for every row.

    A Core executemany runs a round of parameter processing per row (and asyncpg's executemany one
    execution per row on the server); asyncpg sends each array in binary. Each parameter is cast
    to its column's type in ``table``. ``suffix`` follows the ``SELECT`` (``RETURNING …``,
    ``ON CONFLICT …``).
    """

    def cast(name: str, array: str) -> str:
        return f"CAST(:{name} AS {table.c[name].type.compile(dialect=_DIALECT)}{array})"

    names = ", ".join([*scalars, *columns])
    values = ", ".join([*(cast(name, "") for name in scalars), "*"])
    arrays = ", ".join(cast(name, "[]") for name in columns)
    sql = f"INSERT INTO {table.name} ({names}) SELECT {values} FROM unnest({arrays}) {suffix}"
    return text(sql.rstrip())


@functools.lru_cache(maxsize=64)
def values_insert(head: str, width: int, rows: int, tail: str = "") -> str:
    """SQLite: ``{head} VALUES (?, …), … {tail}``, ``rows`` rows of ``width`` values each."""
    one = "(" + ", ".join("?" * width) + ")"
    return f"{head} VALUES {', '.join([one] * rows)}{' ' + tail if tail else ''}"


def statement_rows(total: int, most: int) -> Iterator[tuple[int, int]]:
    """``(start, rows)`` of the statements that insert ``total`` rows, at most ``most`` each.

    Full statements first, then the rest in statements of a power of two rows (256, 128, … 1),
    so a caller prepares at most a dozen statements of different length: the ``sqlite3`` driver
    keeps every statement it prepared in a cache of 128, and a statement for every length of a
    batch's rest raised the peak memory of a 1M-record legacy import from 187 to 209 MB.
    """
    start = 0
    while start < total:
        left = total - start
        rows = most if left >= most else 1 << (left.bit_length() - 1)
        yield start, rows
        start += rows
