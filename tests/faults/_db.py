"""Small synchronous helpers to look at a test database from outside the store."""

from __future__ import annotations

import sqlite3
from typing import Any

import psycopg
from sqlalchemy.engine import make_url


def query(db_url: str, sql: str) -> list[tuple[Any, ...]]:
    url = make_url(db_url)
    if url.get_backend_name() == "sqlite":
        conn = sqlite3.connect(str(url.database))
        try:
            return [tuple(row) for row in conn.execute(sql).fetchall()]
        finally:
            conn.close()
    plain = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(plain) as pg:
        return [tuple(row) for row in pg.execute(sql).fetchall()]  # type: ignore[arg-type]


def scalar(db_url: str, sql: str) -> Any:
    return query(db_url, sql)[0][0]
