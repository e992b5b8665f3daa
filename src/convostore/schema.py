"""What the code knows of the schema's Alembic revisions, and the check a store makes on open."""

from __future__ import annotations

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from convostore.errors import SchemaError

# Every revision under alembic/versions, oldest first; a test keeps this in step with Alembic.
KNOWN_REVISIONS: tuple[str, ...] = ("0001", "0002")
HEAD_REVISION = KNOWN_REVISIONS[-1]


async def check_schema(connection: AsyncConnection, where: str) -> str:
    """Return the database's revision; refuse a missing schema or one newer than this code."""

    def read(sync_connection: Connection) -> list[str] | None:
        if not inspect(sync_connection).has_table("alembic_version"):
            return None
        return [
            row[0]
            for row in sync_connection.execute(text("SELECT version_num FROM alembic_version"))
        ]

    versions = await connection.run_sync(read)
    if not versions:
        raise SchemaError(
            f"{where}: the database has no convostore schema; run `alembic upgrade head`"
        )
    unknown = [v for v in versions if v not in KNOWN_REVISIONS]
    if unknown:
        raise SchemaError(
            f"{where}: the database is at schema revision {unknown[0]}, newer than this convostore "
            f"knows (head {HEAD_REVISION}); upgrade convostore before opening it"
        )
    return versions[0]
