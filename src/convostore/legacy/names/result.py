"""What a name resolution did: the names changed and the ids that keep their placeholder."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Reason = Literal["not_found", "forbidden", "failed"]


@dataclass(frozen=True, slots=True)
class NameChange:
    """One placeholder replaced (or, in a dry run, that would be)."""

    kind: Literal["channel", "user"]
    id: str
    name: str
    channel_type: Literal["channel", "dm"] | None
    """For a channel, its type as Discord reports it; ``None`` for a user."""
    rows: int
    """Rows changed: those with the placeholder, and for a DM the imported rows typed channel."""


@dataclass(frozen=True, slots=True)
class Unresolved:
    """An id whose placeholder stays, and why."""

    kind: Literal["channel", "user"]
    id: str
    reason: Reason
    detail: str


@dataclass(frozen=True)
class NameResolution:
    """What :func:`resolve_names` did (or, with ``dry_run``, would do) for one bot."""

    bot_name: str
    dry_run: bool
    changes: tuple[NameChange, ...]
    unresolved: tuple[Unresolved, ...]
    lookups: int
    """REST requests made, retries after a rate limit included."""
    rate_limit_waits: int

    @property
    def channels_renamed(self) -> int:
        return sum(1 for c in self.changes if c.kind == "channel" and c.channel_type == "channel")

    @property
    def dms_found(self) -> int:
        return sum(1 for c in self.changes if c.kind == "channel" and c.channel_type == "dm")

    @property
    def users_renamed(self) -> int:
        return sum(1 for c in self.changes if c.kind == "user")

    @property
    def rows_changed(self) -> int:
        return sum(c.rows for c in self.changes)

    def count(self, reason: Reason) -> int:
        return sum(1 for u in self.unresolved if u.reason == reason)

    @property
    def not_found(self) -> int:
        return self.count("not_found")

    @property
    def forbidden(self) -> int:
        return self.count("forbidden")

    @property
    def failed(self) -> int:
        return self.count("failed")
