"""Checks of a database on both backends: schema revision, drift from the models, query plans."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Index
from sqlalchemy.engine import Connection
from sqlalchemy.schema import CreateIndex

from convostore.models import Base
from convostore.ops.doctor.report import Finding, Status
from convostore.ops.plans import QueryPlan, explain_hot_queries
from convostore.schema import (
    HEAD_REVISION,
    include_name,
    include_object_for,
    newer_revision,
    newer_than_code,
    stored_revisions,
)


def _revision(connection: Connection) -> tuple[Finding, bool]:
    """The revision finding, and whether the schema is at head (drift is only meaningful there)."""
    versions = stored_revisions(connection)
    if versions is None:
        return (
            Finding(
                "schema revision",
                Status.FAIL,
                "no convostore schema (no alembic_version table)",
                "run `convostore upgrade` (or `alembic upgrade head`)",
            ),
            False,
        )
    if not versions:
        return (
            Finding(
                "schema revision",
                Status.FAIL,
                "no revision recorded",
                "run `convostore upgrade` (or `alembic upgrade head`)",
            ),
            False,
        )
    current = versions[0]
    newer = newer_revision(versions)
    if newer is not None:
        return (
            Finding(
                "schema revision",
                Status.FAIL,
                newer_than_code(newer).removeprefix("schema revision "),
                "upgrade convostore on this machine; do not open the database with this version",
            ),
            False,
        )
    if current != HEAD_REVISION:
        return (
            Finding(
                "schema revision",
                Status.WARN,
                f"{current}, head is {HEAD_REVISION}",
                "stop the bots and run `convostore upgrade` (or `alembic upgrade head`; SQLite: "
                "a verified backup is taken first)",
            ),
            False,
        )
    return Finding("schema revision", Status.OK, f"{current} (head)"), True


def _describe_diff(diff: Any) -> str:
    if isinstance(diff, list):  # column modifications come grouped
        return "; ".join(_describe_diff(d) for d in diff)
    operation = str(diff[0])
    if operation.startswith("modify_"):
        return f"{operation} {diff[2]}.{diff[3]}"
    obj = diff[1] if len(diff) > 1 else None
    name = getattr(obj, "name", None) or str(obj)
    table = getattr(getattr(obj, "table", None), "name", None)
    return (
        f"{operation} {table}.{name}"
        if table and operation.endswith("_index")
        else (f"{operation} {name}")
    )


def _drift(connection: Connection) -> Finding:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    context = MigrationContext.configure(
        connection,
        opts={
            "compare_type": True,
            "include_name": include_name,
            "include_object": include_object_for(connection.dialect.name),
        },
    )
    diffs = compare_metadata(context, Base.metadata)
    if not diffs:
        return Finding("model drift", Status.OK, "the schema matches the models")
    missing = [d[1] for d in diffs if isinstance(d, tuple) and d[0] == "add_index"]
    if missing and len(missing) == len(diffs):
        ddl = "; ".join(
            str(CreateIndex(index).compile(dialect=connection.dialect)).strip()
            for index in missing
            if isinstance(index, Index)
        )
        advice = f"recreate the missing index (bots may keep running): {ddl}"
    else:
        advice = (
            "the schema was changed outside Alembic: restore it to the revision's definition "
            "(alembic/versions) or restore a verified backup"
        )
    shown = "; ".join(_describe_diff(d) for d in diffs[:5])
    more = f" (+{len(diffs) - 5} more)" if len(diffs) > 5 else ""
    return Finding("model drift", Status.WARN, f"{len(diffs)} difference(s): {shown}{more}", advice)


def _plan_findings(plans: Sequence[QueryPlan]) -> list[Finding]:
    findings = []
    for plan in plans:
        name = f"index use: {plan.query.name}"
        used = plan.index_used
        if plan.uses_expected_index:
            findings.append(Finding(name, Status.OK, f"{plan.query.table} via {used}"))
            continue
        if plan.query.table in plan.full_scans and used is None:
            detail = f"full scan of {plan.query.table}"
        elif plan.query.table in plan.full_scans:
            detail = f"scans all of {used} on {plan.query.table}"
        else:
            detail = f"{plan.query.table} via {used}, not {plan.query.preferred_index}"
        findings.append(
            Finding(
                name,
                Status.WARN,
                detail,
                f"check that index {plan.query.preferred_index} exists (see the model drift "
                "line), then run `ANALYZE` so the planner has current statistics",
            )
        )
    return findings


def schema_findings(connection: Connection, bot_name: str) -> list[Finding]:
    revision, at_head = _revision(connection)
    findings = [revision]
    if revision.status is Status.FAIL and revision.detail.startswith("no convostore schema"):
        return findings
    if at_head:
        findings.append(_drift(connection))
    else:
        findings.append(Finding("model drift", Status.SKIP, "compared only at the head revision"))
    findings.extend(_plan_findings(explain_hot_queries(connection, bot_name=bot_name)))
    return findings
