"""What the code knows of the schema's Alembic revisions, and the check a store makes on open."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from convostore.errors import SchemaError

# Every revision under alembic/versions, oldest first; a test keeps this in step with Alembic.
KNOWN_REVISIONS: tuple[str, ...] = ("0001", "0002", "0003", "0004", "0005", "0006", "0007", "0008")
HEAD_REVISION = KNOWN_REVISIONS[-1]

# Full-text search objects live outside the models (revision 0004): SQLite's FTS5 table and its
# shadow tables, PostgreSQL's generated tsvector column and its GIN index.
_SEARCH_OBJECTS = frozenset({"search_vector", "idx_conversations_search"})


# Indexes the models declare for SQLite only (``Index.ddl_if(dialect="sqlite")``, revision 0007).
SQLITE_ONLY_INDEXES = frozenset({"idx_conversations_history"})


def include_object_for(dialect: str) -> Callable[[object, str | None, str, bool, object], bool]:
    """Alembic's ``include_object`` for comparing a ``dialect`` database with the models.

    Leaves out, on other backends, the indexes the models declare for SQLite only.
    """

    def include_object(
        obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
    ) -> bool:
        return dialect == "sqlite" or type_ != "index" or name not in SQLITE_ONLY_INDEXES

    return include_object


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """Alembic's ``include_name`` for comparing the schema with the models (autogenerate, doctor).

    Leaves out the search index objects, which no model describes and which are not drift.
    """
    if name is None:
        return True
    if type_ == "table" and name.startswith("conversations_fts"):
        return False
    return name not in _SEARCH_OBJECTS


def stored_revisions(connection: Connection) -> list[str] | None:
    """The revisions ``alembic_version`` holds; None when the database has no such table."""
    if not inspect(connection).has_table("alembic_version"):
        return None
    return [row[0] for row in connection.execute(text("SELECT version_num FROM alembic_version"))]


def newer_revision(revisions: Iterable[str]) -> str | None:
    """The first of ``revisions`` this code does not know: the schema is newer than the code."""
    return next((r for r in revisions if r not in KNOWN_REVISIONS), None)


def newer_than_code(revision: str) -> str:
    """The words for :func:`newer_revision`'s answer, the same in the store, doctor and Alembic."""
    return f"schema revision {revision}, newer than this convostore knows (head {HEAD_REVISION})"


def check_schema_sync(connection: Connection, where: str) -> str:
    """Return the database's revision; refuse a missing schema or one newer than this code."""
    versions = stored_revisions(connection)
    if not versions:
        raise SchemaError(
            f"{where}: the database has no convostore schema; run `convostore upgrade` "
            "(or `alembic upgrade head`)"
        )
    newer = newer_revision(versions)
    if newer is not None:
        raise SchemaError(
            f"{where}: the database is at {newer_than_code(newer)}; upgrade convostore before "
            "opening it"
        )
    return versions[0]


async def check_schema(connection: AsyncConnection, where: str) -> str:
    """:func:`check_schema_sync` on an async connection (what ``BotStore.open`` runs)."""
    return await connection.run_sync(check_schema_sync, where)
