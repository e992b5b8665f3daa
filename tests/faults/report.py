"""One experiment's outcome, and the table the suite prints."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Outcome:
    """What an experiment did and what it found.

    ``failures`` counts attempts where the user saw an error that was *not* the expected clear
    message (a traceback, a wrong diagnosis) or where the data ended up wrong; ``lost`` counts
    acknowledged writes missing afterwards (must be 0).
    """

    experiment: str
    backend: str
    attempts: int = 0
    failures: int = 0
    acknowledged: int = 0
    lost: int = 0
    seen: Counter[str] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)

    def saw(self, message: str) -> None:
        """Record what the user saw (one line, shortened to its kind)."""
        self.seen[message] += 1

    def row(self) -> list[str]:
        saw = "; ".join(f"{text} (x{n})" for text, n in self.seen.most_common(4)) or "-"
        return [
            self.experiment,
            self.backend,
            str(self.attempts),
            str(self.failures),
            str(self.acknowledged),
            str(self.lost),
            saw,
        ]


HEADER = ["experiment", "backend", "attempts", "failures", "acknowledged", "lost", "user saw"]


def markdown_table(outcomes: list[Outcome]) -> str:
    rows = [HEADER, ["---"] * len(HEADER), *(o.row() for o in outcomes)]
    return "\n".join("| " + " | ".join(cell.replace("|", "/") for cell in r) + " |" for r in rows)
