"""What the code knows of the schema's Alembic revisions, and the check a store makes on open."""

from __future__ import annotations

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from convostore.errors import SchemaError

# Every revision under alembic/versions, oldest first; a test keeps this in step with Alembic.
KNOWN_REVISIONS: tuple[str, ...] = ("0001", "0002", "0003")
HEAD_REVISION = KNOWN_REVISIONS[-1]


def check_schema_sync(connection: Connection, where: str) -> str:
    """Return the database's revision; refuse a missing schema or one newer than this code."""
    versions: list[str] = []
    if inspect(connection).has_table("alembic_version"):
        versions = [
            row[0] for row in connection.execute(text("SELECT version_num FROM alembic_version"))
        ]
    if not versions:
        raise SchemaError(
            f"{where}: the database has no convostore schema; run `convostore upgrade` "
            "(or `alembic upgrade head`)"
        )
    unknown = [v for v in versions if v not in KNOWN_REVISIONS]
    if unknown:
        raise SchemaError(
            f"{where}: the database is at schema revision {unknown[0]}, newer than this convostore "
            f"knows (head {HEAD_REVISION}); upgrade convostore before opening it"
        )
    return versions[0]


async def check_schema(connection: AsyncConnection, where: str) -> str:
    """:func:`check_schema_sync` on an async connection (what ``BotStore.open`` runs)."""
    return await connection.run_sync(check_schema_sync, where)
