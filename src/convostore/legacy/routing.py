"""Phase 1 of the import for one file: parse it, route and convert its records, in staging form.

:meth:`Routing.stage` does everything phase 1 does to a file except touch the report or the
staging file: it returns a :class:`StagedFile` (rows, names, problems, counts) that the import's
own process applies in the tree's order. The same code runs in that process for a small tree
and, for a large one, in worker processes (:mod:`convostore.legacy.workers`), which parse the JSON
and convert the records in parallel while the import's process stages what they return.
Everything a worker needs is plain data (:class:`Routing`, :class:`BotFilter`), sent to it once.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import tzinfo
from typing import Any, NamedTuple

from convostore.config import BotConfig
from convostore.legacy.reader import LegacyFile, LegacyRecord, Problem, read_file
from convostore.legacy.rules import (
    UNATTRIBUTABLE,
    LegacyNames,
    LegacyRow,
    legacy_rows,
    legacy_zone,
)

_json_text = json.JSONEncoder().encode

# Rows of one file are numbered from ``ordinal << SEQ_BITS``: the staging order is the tree's.
SEQ_BITS = 32
# Worker processes pay off from this much JSON on (each starts in about half a second).
PARALLEL_MIN_BYTES = 16 * 1024 * 1024
# Each worker holds about 90 MB at its peak, and a container limited to a few CPUs may still see
# all of its host's: past four processes the write phase, one connection, is the limit anyway.
MAX_WORKERS = 3


def default_config(bot: str) -> BotConfig:
    """The configuration of a bot that has no YAML file: library defaults."""
    return BotConfig(name=bot)


@dataclass(frozen=True, slots=True)
class BotFilter:
    """Which bots an import takes: the configured ones whose storage is enabled, the others if
    ``others``; with ``only``, that bot alone. Plain data, so worker processes get it too."""

    enabled: Mapping[str, bool] = field(default_factory=dict)
    others: bool = True
    only: str | None = None

    def __call__(self, bot: str) -> bool:
        if self.only is not None and bot != self.only:
            return False
        known = self.enabled.get(bot)
        return self.others if known is None else known


class StagedFile(NamedTuple):
    """What phase 1 makes of one file, for the import's process to report and stage."""

    file: LegacyFile
    unreadable: Problem | None
    records: int
    warnings: list[Problem]
    problems: list[Problem]
    """Invalid records first, then unattributable records in record order."""
    invalid: int
    unattributable: int
    """Records no bot takes: counted for the file's owner."""
    bad_bot_names: int
    """Record-bot pairs refused for an invalid bot name: counted for the shared files."""
    rows: list[tuple[Any, ...]]
    """The ``stage`` columns of each row, ``seq`` last."""
    names: LegacyNames
    bots: list[str]
    """The bots the rows go to, sorted."""
    taken: list[str]
    """The bots this import takes that the file's records name (each gets a report)."""


class Routing:
    """The bots an import takes and the zones their naive times are read in.

    ``configs`` are the configured bots; a bot without a config gets :func:`default_config`.
    ``accept(bot)`` says which bots the import handles; ``legacy_tz`` overrides every bot's
    ``legacy.timezone``. Worker processes get a copy; each keeps its own caches.
    """

    def __init__(
        self, configs: Mapping[str, BotConfig], legacy_tz: str | None, accept: BotFilter
    ) -> None:
        self.configs = dict(configs)
        self.legacy_tz = legacy_tz
        self.accept = accept
        self._configs: dict[str, BotConfig | None] = {}
        self._states: dict[str, tuple[bool, tzinfo | None]] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {"configs": self.configs, "legacy_tz": self.legacy_tz, "accept": self.accept}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["configs"], state["legacy_tz"], state["accept"])  # type: ignore[misc]

    def config_for(self, bot: str) -> BotConfig | None:
        """The bot's config, the defaults for an unconfigured bot, or None for an invalid name."""
        if bot not in self._configs:
            config = self.configs.get(bot)
            if config is None:
                try:
                    config = default_config(bot)
                except ValueError:
                    config = None
            self._configs[bot] = config
        return self._configs[bot]

    def state(self, bot: str) -> tuple[bool, tzinfo | None]:
        """Whether the import takes the bot, and the zone of its naive times (None: invalid)."""
        found = self._states.get(bot)
        if found is None:
            if not self.accept(bot):
                found = (False, None)
            elif (config := self.config_for(bot)) is None:
                found = (True, None)
            else:
                found = (True, legacy_zone(self.legacy_tz or config.legacy.timezone))
            self._states[bot] = found
        return found

    def stage(self, file: LegacyFile, ordinal: int) -> StagedFile:
        """Read ``file``, the ``ordinal``-th of the tree, and route and convert its records."""
        parsed = read_file(file)
        problems = list(parsed.invalid)
        names = LegacyNames()
        rows: list[tuple[Any, ...]] = []
        bots: set[str] = set()
        taken: set[str] = set()
        unattributable = bad_bot_names = 0

        def zone_for(bot: str, record: LegacyRecord) -> tzinfo | None:
            nonlocal bad_bot_names
            accepted, zone = self.state(bot)
            if accepted and zone is None:
                problems.append(
                    Problem(
                        bot,
                        UNATTRIBUTABLE,
                        f"bot name {bot[:64]!r} is not a valid bot name",
                        record.index,
                    )
                )
                bad_bot_names += 1
            elif accepted:
                taken.add(bot)
            return zone if accepted else None

        seq = ordinal << SEQ_BITS
        if parsed.unreadable is None and not parsed.file.ignored:
            for row in legacy_rows(parsed, zone_for, names):
                if not isinstance(row, LegacyRow):
                    problems.append(
                        Problem(
                            row.where,
                            UNATTRIBUTABLE,
                            "no bot to give it to (no participants, no bot_name)",
                            row.index,
                        )
                    )
                    unattributable += 1
                    continue
                seq += 1
                # The text SQLAlchemy's JSON type writes (json.dumps): SQLite takes it as is.
                metadata = None if row.metadata is None else _json_text(row.metadata)
                rows.append((*row[:7], metadata, seq))
                bots.add(row.bot)
        return StagedFile(
            parsed.file,
            parsed.unreadable,
            parsed.record_count,
            parsed.warnings,
            problems,
            len(parsed.invalid),
            unattributable,
            bad_bot_names,
            rows,
            names,
            sorted(bots),
            sorted(taken),
        )


def staged_here(routing: Routing, files: Sequence[LegacyFile]) -> Generator[StagedFile, None, None]:
    """Each file's :class:`StagedFile`, in order, made in this process."""
    for ordinal, file in enumerate(files):
        yield routing.stage(file, ordinal)


def worker_count(files: Sequence[LegacyFile]) -> int:
    """How many worker processes should read ``files`` beside this process: 0 (this process
    alone) for a small tree, a machine with one CPU, a system without POSIX pipes or an
    interpreter that cannot be started again, else one per further CPU this process may use, at
    most :data:`MAX_WORKERS`."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if not cpus or cpus < 2 or os.name != "posix" or not sys.executable:
        return 0  # (no interpreter to start: Python embedded in another program)
    size = 0
    for file in files:
        if not (file.ignored or file.temp):
            try:
                size += file.path.stat().st_size
            except OSError:
                continue
        if size >= PARALLEL_MIN_BYTES:
            return min(cpus - 1, MAX_WORKERS)
    return 0
