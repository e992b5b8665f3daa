"""What doctor found: findings with a status and what to do, per database."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Status(enum.StrEnum):
    OK = "OK"
    WARN = "WARN"
    FAIL = "FAIL"
    SKIP = "SKIP"  # the check does not apply or cannot run here; not a problem in itself


@dataclass(frozen=True)
class Finding:
    check: str
    status: Status
    detail: str
    advice: str | None = None

    @property
    def needs_attention(self) -> bool:
        return self.status in (Status.WARN, Status.FAIL)


@dataclass(frozen=True)
class DatabaseReport:
    database: str  # the URL without its password
    bots: tuple[str, ...]
    findings: tuple[Finding, ...]
    seconds: float = 0.0

    @property
    def needs_attention(self) -> bool:
        return any(f.needs_attention for f in self.findings)


@dataclass(frozen=True)
class DoctorReport:
    databases: tuple[DatabaseReport, ...] = field(default_factory=tuple)

    @property
    def needs_attention(self) -> bool:
        return any(d.needs_attention for d in self.databases)
