"""Checks of a PostgreSQL database: reachable, schema."""

from __future__ import annotations

from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from convostore.db import translate
from convostore.engine import (
    make_engine,
)
from convostore.ops.doctor.report import Finding, Status
from convostore.ops.doctor.schema_checks import schema_findings


async def postgresql_findings(url: str, where: str, bot_name: str) -> list[Finding]:
    engine = make_engine(url, null_pool=True)
    try:
        async with engine.connect() as connection:

            def checks(sync_connection: Connection) -> list[Finding]:
                findings = schema_findings(sync_connection, bot_name)
                sync_connection.rollback()  # ends SET LOCAL enable_seqscan = off
                return findings

            findings = await connection.run_sync(checks)
    except (DBAPIError, OSError) as exc:
        return [Finding("connection", Status.FAIL, str(translate(exc, where)))]
    finally:
        await engine.dispose()
    findings.append(
        Finding(
            "integrity",
            Status.SKIP,
            "no integrity check on PostgreSQL here (the server checksums pages if "
            "initdb --data-checksums; pg_amcheck checks indexes)",
        )
    )
    return findings
