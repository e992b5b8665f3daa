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

import contextlib
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Connection

from convostore.config import BotConfig
from convostore.errors import ConfigError, LegacyImportError
from convostore.legacy.reader import LegacyFile, scan
from convostore.legacy.report import SHARED, BotReport, ImportProgress, ImportReport
from convostore.legacy.routing import (
    BotFilter,
    Routing,
    StagedFile,
    staged_here,
    worker_count,
)
from convostore.legacy.stage import Stage
from convostore.legacy.workers import staged_in_workers
from convostore.legacy.writer import LEDGER, Writer
from convostore.repositories.search import index_pending

logger = logging.getLogger(__name__)


class LegacyImport:
    """One import of a legacy tree: :meth:`read` it once, then :meth:`write` each database's bots.

    ``configs`` are the configured bots; a bot without a config gets
    :func:`~convostore.legacy.routing.default_config`.
    ``accept`` says which bots this import handles (the others are left to another run; all by
    default). ``legacy_tz`` overrides every bot's ``legacy.timezone``. ``workers`` is how many
    processes parse the tree: None chooses (:func:`~convostore.legacy.routing.worker_count`:
    none for a small tree), 0 reads it in this process.
    """

    def __init__(
        self,
        data_dirs: Sequence[Path],
        configs: Mapping[str, BotConfig],
        *,
        legacy_tz: str | None = None,
        accept: BotFilter | None = None,
        dry_run: bool = False,
        progress: ImportProgress | None = None,
        workers: int | None = None,
    ) -> None:
        if legacy_tz is not None:
            try:
                ZoneInfo(legacy_tz)
            except (ValueError, KeyError):
                raise ConfigError(f"--legacy-tz: unknown time zone {legacy_tz!r}") from None
        self.data_dirs = [Path(d) for d in data_dirs]
        self.routing = Routing(configs, legacy_tz, accept or BotFilter())
        self.dry_run = dry_run
        self.progress = progress
        self.workers = workers
        self.report = ImportReport([str(d) for d in self.data_dirs], dry_run, legacy_tz)
        self._stage = Stage()
        self._read = False

    def __enter__(self) -> LegacyImport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stage.close()

    def config_for(self, bot: str) -> BotConfig | None:
        """The bot's config, the defaults for an unconfigured bot, or None for an invalid name."""
        return self.routing.config_for(bot)

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
        workers = worker_count(files) if self.workers is None else self.workers
        staged = (
            staged_in_workers(self.routing, files, workers, self._stage)
            if workers > 0
            else staged_here(self.routing, files)
        )
        # Closed on the way out, also on an error: the workers stop before the stage is removed.
        with contextlib.closing(staged):
            for one in staged:
                self._apply(one)
                if self.progress:
                    self.progress.advance("reading files")
        self._stage.index()
        self._read = True

    def _apply(self, staged: StagedFile) -> None:
        """Report one file and stage its rows, in the tree's order."""
        file = staged.file
        owner = SHARED if file.bot is None else file.bot
        entry: dict[str, Any] = {"path": file.rel, "bot": None if owner == SHARED else owner}
        if not self._readable(staged, owner, entry):
            return
        for bot in staged.taken:
            self._owner_report(bot)
        self.report.warnings.extend(staged.warnings)
        self.report.problems.extend(staged.problems)
        records = self._owner_report(owner).records
        records["invalid"] += staged.invalid
        records["unattributable"] += staged.unattributable
        if staged.bad_bot_names:
            self.report.bot(SHARED).records["unattributable"] += staged.bad_bot_names
        self._stage.add(staged.rows, staged.names)
        entry.update(status="imported", records=staged.records, bots=staged.bots)
        self.report.files.append(entry)
        if owner == SHARED:
            for bot in staged.bots:
                self.report.bot(bot).files["imported"] += 1
        self._owner_report(owner).files["imported"] += 1

    def _readable(self, staged: StagedFile, owner: str, entry: dict[str, Any]) -> bool:
        """Whether the file has records to import; an ignored or unreadable one is reported."""
        if staged.file.ignored:
            entry["status"] = "ignored"
            self.report.files.append(entry)
            self._owner_report(owner).files["ignored"] += 1
            return False
        if staged.unreadable is not None:
            entry.update(
                status="unreadable", reason=staged.unreadable.kind, detail=staged.unreadable.detail
            )
            self.report.files.append(entry)
            self.report.problems.append(staged.unreadable)
            self._owner_report(owner).files["unreadable"] += 1
            return False
        return True

    def _owner_report(self, owner: str) -> BotReport:
        if owner == SHARED or owner in self.report.bots:
            return self.report.bot(owner)
        config = self.config_for(owner)
        return self.report.bot(
            owner, config.safe_database_url if config else "", owner in self.routing.configs
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
            and self.routing.accept(bot)
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
        index_pending(connection, bulk=True)
