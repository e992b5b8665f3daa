"""PostgreSQL: many rows in one ``INSERT … SELECT FROM unnest(…)`` statement.

Used by the backfill and by the legacy import. It knows nothing of convostore's tables: the caller
passes the table (the importer its own copy of revision 0002's columns, which must not follow the
models), and each parameter is cast to that table's column type.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import TextClause, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql import TableClause

__all__ = ["unnest_insert"]

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
