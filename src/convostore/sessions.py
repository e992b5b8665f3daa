"""Session boundary rules, shared by live writes and the legacy importer.

A conversation in one channel is cut into sessions: a message joins the open session when it comes
at most ``gap`` seconds after that session's last activity (or before its start) and the session,
with it, spans at most ``timeout`` seconds. Otherwise a new session starts, named after its start
time in UTC and the configured timeout.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import UTC, datetime


def fits_session(
    started_at: datetime, last_activity: datetime, at: datetime, *, gap: int, timeout: int
) -> bool:
    """Whether a message at ``at`` joins a session that started and was last active as given.

    The message must lie within ``gap`` seconds of the session's extent on either side: after its
    last activity, or (a late arrival, two writers racing) before its start. The session, grown
    to include the message, must then span at most ``timeout`` seconds. A message that joins
    before the start moves ``started_at`` back to it (see :func:`extended`); the id stays.
    """
    first, last = extended(started_at, last_activity, at)
    return (
        (at - last_activity).total_seconds() <= gap
        and (started_at - at).total_seconds() <= gap
        and (last - first).total_seconds() <= timeout
    )


def extended(
    started_at: datetime, last_activity: datetime, at: datetime
) -> tuple[datetime, datetime]:
    """(started_at, last_activity) of a session once a message at ``at`` has joined it."""
    return min(started_at, at), max(last_activity, at)


def base_session_id(started_at: datetime, timeout: int) -> str:
    """``YYYY-MM-DD_HH-MM-SS_{timeout}s`` for a session starting at ``started_at`` (aware)."""
    if started_at.tzinfo is None:
        raise ValueError("session start times must be timezone-aware")
    return f"{started_at.astimezone(UTC):%Y-%m-%d_%H-%M-%S}_{timeout}s"


def unique_session_id(base: str, taken: Collection[str]) -> str:
    """``base``, or ``base-2``, ``base-3``... whichever is first not in ``taken``."""
    if base not in taken:
        return base
    n = 2
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"


def cut(times: Sequence[datetime], *, gap: int, timeout: int) -> list[int]:
    """Where sessions start in ``times`` (sorted): the indexes of each session's first message.

    Each message joins the session before it when it comes at most ``gap`` seconds after the
    previous message and at most ``timeout`` seconds after the session's first; otherwise it
    starts the next session. This is the rule of live writes, applied to a known sequence (a
    backfill recomputes a channel's sessions with it).
    """
    starts: list[int] = []
    first = last = None
    for index, at in enumerate(times):
        if (
            first is None
            or last is None
            or (at - last).total_seconds() > gap
            or (at - first).total_seconds() > timeout
        ):
            starts.append(index)
            first = at
        last = at
    return starts
