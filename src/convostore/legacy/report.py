"""What an import did: every file and record accounted for, per bot, and its progress callback."""

from __future__ import annotations

import json
import os
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Protocol

from convostore.legacy.reader import Problem

SHARED = "(shared files)"
"""The report's owner of the shared files (they belong to no one bot)."""


class ImportProgress(Protocol):
    """Progress of a long import, for a progress bar."""

    def start(self, phase: str, total: int) -> None: ...

    def advance(self, phase: str, amount: int = 1) -> None: ...


@dataclass
class BotReport:
    """What happened to one bot's files and records."""

    database: str
    configured: bool
    files: dict[str, int] = field(
        default_factory=lambda: {"imported": 0, "unreadable": 0, "ignored": 0}
    )
    records: dict[str, int] = field(
        default_factory=lambda: {
            "imported": 0,
            "duplicate": 0,
            "already_present": 0,
            "unattributable": 0,
            "invalid": 0,
        }
    )
    sessions: int = 0


# How the report file is formatted (to_json and write produce the same text).
_JSON_FORMAT: dict[str, Any] = {"indent": 2, "ensure_ascii": False}


@dataclass
class ImportReport:
    """Every file and every record of an import, accounted for."""

    data_dirs: list[str]
    dry_run: bool
    legacy_tz: str | None
    bots: dict[str, BotReport] = field(default_factory=dict)
    files: list[dict[str, Any]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def bot(self, name: str, database: str = "", configured: bool = False) -> BotReport:
        if name not in self.bots:
            self.bots[name] = BotReport(database, configured)
        return self.bots[name]

    @property
    def totals(self) -> dict[str, int]:
        sums: dict[str, int] = defaultdict(int)
        for report in self.bots.values():
            for key, value in report.records.items():
                sums[key] += value
        for status in ("imported", "unreadable", "ignored"):
            sums[f"files_{status}"] = sum(1 for f in self.files if f["status"] == status)
        return dict(sums)

    def to_json(self) -> str:
        """The report as the JSON file ``--report`` (and ``-x legacy_report``) writes."""
        return json.dumps(self.as_dict(), **_JSON_FORMAT) + "\n"

    def write(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`to_json`'s text to ``path``, encoded piece by piece.

        ``json.dumps`` with ``indent`` holds every piece of the text in a list before joining
        them: for a tree of 100,000 files that was 150 MB at the end of an import whose memory
        stayed flat until then. ``json.dump`` writes the pieces as they come.
        """
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(self.as_dict(), fh, **_JSON_FORMAT)
            fh.write("\n")

    def as_dict(self) -> dict[str, Any]:
        return {
            "data_dirs": self.data_dirs,
            "dry_run": self.dry_run,
            "legacy_tz": self.legacy_tz,
            "totals": self.totals,
            "bots": {
                name: {
                    "database": r.database,
                    "configured": r.configured,
                    "files": r.files,
                    "records": r.records,
                    "sessions": r.sessions,
                }
                for name, r in sorted(self.bots.items())
            },
            "files": self.files,
            "unreadable_and_invalid": [p.as_dict() for p in self.problems],
            "warnings": [w.as_dict() for w in self.warnings],
            "notes": self.notes,
        }
