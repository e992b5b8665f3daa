"""Importer of the legacy JSON tree: records -> rows, Core statements over a synchronous Connection.

The import runs in two phases, so memory stays bounded whatever the size of the tree:

1. **read**: every file is read once, its records routed to bots, converted and given a message id
   (:func:`convostore.legacy.rules.legacy_rows`) and staged (:mod:`convostore.legacy.stage`);
2. **write** (:mod:`convostore.legacy.writer`): per bot and channel, the staged rows come back in
   time order, so the first copy of a message id is the earliest one and later copies are dropped
   (rule 7); the rows are cut into sessions by the bot's gap/timeout (rule 10) and written with
   ``INSERT ... ON CONFLICT DO NOTHING`` in large batches. Every imported row is marked
   ``source = 'legacy'``.

A channel is always written in one transaction, with its sessions complete, so an import that stops
half-way is finished by running it again, which adds nothing twice (message ids are the Discord ids,
or ids derived from the record's content, never random). What happened to every file and record is
in :attr:`LegacyImport.report` (:mod:`convostore.legacy.report`).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Connection

from convostore.config import BotConfig
from convostore.errors import ConfigError, LegacyImportError
from convostore.legacy.reader import LegacyFile, LegacyRecord, ParsedFile, Problem, read_file, scan
from convostore.legacy.report import SHARED, BotReport, ImportProgress, ImportReport
from convostore.legacy.rules import (
    UNATTRIBUTABLE,
    LegacyNames,
    LegacyRow,
    legacy_rows,
    legacy_zone,
)
from convostore.legacy.stage import Stage
from convostore.legacy.writer import LEDGER, Writer
from convostore.repositories.search import index_pending

logger = logging.getLogger(__name__)

_json_text = json.JSONEncoder().encode


def default_config(bot: str) -> BotConfig:
    """The configuration of a bot that has no YAML file: library defaults."""
    return BotConfig(name=bot)


class LegacyImport:
    """One import of a legacy tree: :meth:`read` it once, then :meth:`write` each database's bots.

    ``configs`` are the configured bots; a bot without a config gets :func:`default_config`.
    ``accept(bot)`` says which bots this import handles (the others are left to another run).
    ``legacy_tz`` overrides every bot's ``legacy.timezone``.
    """

    def __init__(
        self,
        data_dirs: Sequence[Path],
        configs: Mapping[str, BotConfig],
        *,
        legacy_tz: str | None = None,
        accept: Callable[[str], bool] | None = None,
        dry_run: bool = False,
        progress: ImportProgress | None = None,
    ) -> None:
        if legacy_tz is not None:
            try:
                ZoneInfo(legacy_tz)
            except (ValueError, KeyError):
                raise ConfigError(f"--legacy-tz: unknown time zone {legacy_tz!r}") from None
        self.data_dirs = [Path(d) for d in data_dirs]
        self.configs = dict(configs)
        self.legacy_tz = legacy_tz
        self.accept = accept or (lambda _bot: True)
        self.dry_run = dry_run
        self.progress = progress
        self.report = ImportReport([str(d) for d in self.data_dirs], dry_run, legacy_tz)
        # Per bot: whether this import takes it, and the zone of its naive times (None: invalid).
        self._states: dict[str, tuple[bool, tzinfo | None]] = {}
        self._config_cache: dict[str, BotConfig | None] = {}
        self._seq = 0
        self._stage = Stage()
        self._read = False

    def __enter__(self) -> LegacyImport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stage.close()

    # -- routing -------------------------------------------------------------------------------

    def config_for(self, bot: str) -> BotConfig | None:
        """The bot's config, the defaults for an unconfigured bot, or None for an invalid name."""
        if bot not in self._config_cache:
            config = self.configs.get(bot)
            if config is None:
                try:
                    config = default_config(bot)
                except ValueError:
                    config = None
            self._config_cache[bot] = config
        return self._config_cache[bot]

    def _bot_state(self, bot: str) -> tuple[bool, tzinfo | None]:
        """Whether this import takes the bot, and how its naive times are read."""
        if not self.accept(bot):
            return False, None
        config = self.config_for(bot)
        if config is None:
            return True, None
        self._owner_report(bot)
        return True, legacy_zone(self.legacy_tz or config.legacy.timezone)

    def _zone_for(self, bot: str, record: LegacyRecord) -> tzinfo | None:
        """The zone of the bot's naive times; None leaves the record out for this bot."""
        state = self._states.get(bot)
        if state is None:
            state = self._states[bot] = self._bot_state(bot)
        accepted, zone = state
        if accepted and zone is None:
            self.report.problems.append(
                Problem(
                    bot,
                    UNATTRIBUTABLE,
                    f"bot name {bot[:64]!r} is not a valid bot name",
                    record.index,
                )
            )
            self.report.bot(SHARED).records["unattributable"] += 1
        return zone if accepted else None

    # -- phase 1 -------------------------------------------------------------------------------

    def read(self) -> None:
        """Read and stage every file of every data directory."""
        files: list[LegacyFile] = []
        for folder in self.data_dirs:
            if not folder.is_dir():
                self.report.notes.append(f"{folder}: no legacy data directory, nothing to import")
                logger.info("%s: no legacy data directory, nothing to import", folder)
                continue
            files.extend(scan(folder))
        if self.progress:
            self.progress.start("reading files", len(files))
        for file in files:
            self._read_one(read_file(file))
            if self.progress:
                self.progress.advance("reading files")
        self._stage.index()
        self._read = True

    def _read_one(self, parsed: ParsedFile) -> None:
        file = parsed.file
        owner = SHARED if file.bot is None else file.bot
        entry: dict[str, Any] = {"path": file.rel, "bot": None if owner == SHARED else owner}
        if not self._readable(parsed, owner, entry):
            return
        self.report.warnings.extend(parsed.warnings)
        self.report.problems.extend(parsed.invalid)
        self._owner_report(owner).records["invalid"] += len(parsed.invalid)
        names = LegacyNames()
        rows, targets_seen = self._staged_rows(parsed, owner, names)
        self._stage.add(rows, names)
        entry.update(status="imported", records=parsed.record_count, bots=sorted(targets_seen))
        self.report.files.append(entry)
        if owner == SHARED:
            for bot in targets_seen:
                self.report.bot(bot).files["imported"] += 1
        self._owner_report(owner).files["imported"] += 1

    def _readable(self, parsed: ParsedFile, owner: str, entry: dict[str, Any]) -> bool:
        """Whether the file has records to import; an ignored or unreadable one is reported."""
        if parsed.file.ignored:
            entry["status"] = "ignored"
            self.report.files.append(entry)
            self._owner_report(owner).files["ignored"] += 1
            return False
        if parsed.unreadable is not None:
            entry.update(
                status="unreadable", reason=parsed.unreadable.kind, detail=parsed.unreadable.detail
            )
            self.report.files.append(entry)
            self.report.problems.append(parsed.unreadable)
            self._owner_report(owner).files["unreadable"] += 1
            return False
        return True

    def _staged_rows(
        self, parsed: ParsedFile, owner: str, names: LegacyNames
    ) -> tuple[list[tuple[Any, ...]], set[str]]:
        """The file's rows in the staging file's column order, and the bots they go to."""
        rows: list[tuple[Any, ...]] = []
        targets_seen: set[str] = set()
        for row in legacy_rows(parsed, self._zone_for, names):
            if not isinstance(row, LegacyRow):
                self.report.problems.append(
                    Problem(
                        row.where,
                        UNATTRIBUTABLE,
                        "no bot to give it to (no participants, no bot_name)",
                        row.index,
                    )
                )
                self._owner_report(owner).records["unattributable"] += 1
                continue
            self._seq += 1
            # The text SQLAlchemy's JSON type writes (default json.dumps), so SQLite takes it as is.
            metadata = None if row.metadata is None else _json_text(row.metadata)
            rows.append((*row[:7], metadata, self._seq))
            targets_seen.add(row.bot)
        return rows, targets_seen

    def _owner_report(self, owner: str) -> BotReport:
        if owner == SHARED or owner in self.report.bots:
            return self.report.bot(owner)
        config = self.config_for(owner)
        return self.report.bot(
            owner, config.safe_database_url if config else "", owner in self.configs
        )

    # -- phase 2 -------------------------------------------------------------------------------

    def staged_bots(self) -> list[str]:
        return self._stage.bots()

    def bots_to_write(self) -> list[str]:
        """The staged bots, and the bots whose only files were unreadable.

        Writing the second kind stores no rows, only their ledger entry: the import saw and
        reported their files, so doctor and the stores stop calling them "not imported yet".
        """
        staged = self.staged_bots()
        unreadable_only = [
            bot
            for bot, report in self.report.bots.items()
            if bot != SHARED
            and bot not in staged
            and report.files["unreadable"]
            and self.accept(bot)
            and self.config_for(bot) is not None
        ]
        return sorted([*staged, *unreadable_only])

    def write(
        self, connection: Connection, bots: Iterable[str], *, commit_every: int | None = None
    ) -> None:
        """Write the staged rows of ``bots`` through ``connection`` (nothing when a dry run).

        With ``commit_every`` the connection is committed after each channel once that many rows
        are pending (the CLI); without, the caller owns the one transaction (Alembic).
        """
        if not self._read:
            raise LegacyImportError("the legacy tree must be read before it is written")
        bots = list(bots)
        if self.progress:
            self.progress.start("writing messages", self._stage.count(bots))
        writer = Writer(
            connection,
            self._stage,
            self.report,
            dry_run=self.dry_run,
            commit_every=commit_every,
            progress=self.progress,
        )
        try:
            for bot in bots:
                config = self.config_for(bot)
                assert config is not None
                writer.write_bot(bot, config)
            writer.flush()
            writer.wait()
            if not self.dry_run and bots:
                self._finish_ledger(connection, bots)
            writer.finish()
        finally:
            writer.close()

    def _finish_ledger(self, connection: Connection, bots: list[str]) -> None:
        # The ledger tells stores and `convostore doctor` which files are newer than the import.
        finished = datetime.now(UTC)
        connection.execute(
            LEDGER.insert(),
            [
                {
                    "bot_name": bot,
                    "finished_at": finished,
                    "data_dir": os.pathsep.join(str(d) for d in self.data_dirs),
                    "messages": self.report.bot(bot).records["imported"],
                }
                for bot in bots
            ],
        )
        # The search index takes the imported rows in one batch (SQLite; nothing to do on
        # PostgreSQL or before revision 0005).
        index_pending(connection)
