"""The export job: one bot's sessions, channel by channel, streamed into their files."""

from __future__ import annotations

import os
import re
import tempfile
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Select, Table, func, select
from sqlalchemy.engine import Connection

from convostore.config import BotConfig
from convostore.errors import InvalidInput, OperationError
from convostore.models import ChatSessionModel, ConversationModel
from convostore.ops import write_error
from convostore.ops.database import newest_channel_names, read_bot_database
from convostore.ops.export.files import SessionFile
from convostore.ops.export.paths import digest, inside, safe_session_name, stored_channel
from convostore.ops.export.render import (
    EXTENSIONS,
    FORMATS,
    ExportedSession,
    ExportFormat,
    iso,
    json_head,
    json_message,
    json_tail,
    markdown_head,
    markdown_message,
    stored_timestamp,
)
from convostore.records import MESSAGE_FIELDS
from convostore.repositories.rows import MESSAGE_INDEX, message_columns

_S = cast(Table, ChatSessionModel.__table__)
_C = cast(Table, ConversationModel.__table__)

FETCH_BATCH = 2000
# Unfinished sessions of one channel whose rendered text may stay in memory together; there are
# more than one only when sessions overlap in time (rows imported out of order).
_OPEN_SESSIONS = 4
_SESSION_ID, _TIMESTAMP = MESSAGE_INDEX["session_id"], MESSAGE_INDEX["timestamp"]


def parse_since(value: str | date | datetime) -> datetime:
    """An ISO date (midnight UTC) or datetime (naive means UTC) as an aware UTC datetime."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, date):
        return datetime.combine(value, time(), UTC)
    text = value.strip()
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            return datetime.combine(date.fromisoformat(text), time(), UTC)
        return parse_since(datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError:
        raise InvalidInput(
            f"{value!r} is not an ISO date or datetime such as 2026-01-31 or 2026-01-31T12:00"
        ) from None


@dataclass(frozen=True)
class ExportResult:
    """What one bot's export did."""

    bot_name: str
    directory: Path
    sessions_written: int
    sessions_unchanged: int
    messages: int
    channels: int

    @property
    def files(self) -> int:
        """Files the export holds for the bot (written now or already up to date)."""
        return self.sessions_written + self.sessions_unchanged


ExportProgress = Callable[[int, int, int], None]
"""``progress(sessions_done, messages_done, sessions_total)``, called after each session."""


def _os_error(exc: OSError, where: Path | str) -> OperationError:
    return write_error(
        exc,
        where,
        job="export",
        unfinished="export incomplete",
        failed="cannot write the export directory",
    )


class _Export:
    def __init__(
        self,
        config: BotConfig,
        root: Path,
        fmt: ExportFormat,
        since: datetime | None,
        progress: ExportProgress | None,
    ) -> None:
        self.bot = config.name
        self.root = root
        self.fmt = fmt
        self.extension = EXTENSIONS[fmt]
        self.since = since
        self.progress = progress
        self.written = self.unchanged = self.messages = self.channels = self.sessions_done = 0
        self.total = 0

    def _session_filter(self) -> list[Any]:
        clauses = [_S.c.bot_name == self.bot]
        if self.since is not None:
            clauses.append(_S.c.last_activity >= self.since)
        return clauses

    def run(self, connection: Connection) -> None:
        # File errors are turned into OperationError here: the database layer around this work
        # would report any OSError as an unreachable database.
        try:
            self._run(connection)
        except OSError as exc:
            raise _os_error(exc, exc.filename or self.root) from exc

    def _run(self, connection: Connection) -> None:
        self.total = int(
            connection.execute(
                select(func.count()).select_from(_S).where(*self._session_filter())
            ).scalar_one()
        )
        channel_ids = [
            row[0]
            for row in connection.execute(
                select(_S.c.channel_id)
                .where(*self._session_filter())
                .distinct()
                .order_by(_S.c.channel_id)
            )
        ]
        connection.commit()
        for channel_id in channel_ids:
            self._channel(connection, channel_id)
            connection.commit()  # ends this channel's read transaction: no long snapshot
            self.channels += 1

    def _channel(self, connection: Connection, channel_id: str) -> None:
        name, kind = newest_channel_names(connection, self.bot, [channel_id]).get(
            channel_id, ("", "channel")
        )
        channel = stored_channel(channel_id, name, kind)
        folder = "dms" if channel.is_dm else "channels"
        safe_name = channel.safe_name  # computed, not stored: once per channel
        sessions = connection.execute(
            select(
                _S.c.session_id,
                _S.c.started_at,
                _S.c.last_activity,
                _S.c.message_count,
                _S.c.is_active,
            )
            .where(*self._session_filter(), _S.c.channel_id == channel_id)
            .order_by(_S.c.started_at, _S.c.id)
        ).all()
        files: dict[str, SessionFile] = {}
        taken: set[str] = set()
        for row in sessions:
            session = ExportedSession(
                self.bot, channel, channel_id, name, row[0], row[1], row[2], row[3], bool(row[4])
            )
            stem = safe_session_name(session.session_id)
            if stem.lower() in taken:  # same stem twice in one folder (only if hashes collide)
                stem = f"{stem}~{digest(repr(session.session_id), 20)}"
            taken.add(stem.lower())
            target = inside(self.root, self.bot, folder, safe_name, stem + self.extension)
            head = json_head(session) if self.fmt == "json" else markdown_head(session)
            files[session.session_id] = SessionFile(target, head, session)
        if not files:
            return
        try:
            self._messages(connection, channel_id, files)
        finally:
            for file in files.values():
                file.discard()

    def _finish(self, file: SessionFile) -> bool:
        """Put the session's file in place; whether it was (re)written."""
        written = file.finish(json_tail(file.messages) if self.fmt == "json" else "")
        if written:
            self.written += 1
        else:
            self.unchanged += 1
        self.messages += file.messages
        self.sessions_done += 1
        if self.progress is not None:
            self.progress(self.sessions_done, self.messages, self.total)
        return written

    def _render(self, file: SessionFile, row: Sequence[Any], at: datetime) -> None:
        if self.fmt == "json":
            file.add(json_message(row, iso(at), first=file.messages == 0))
        else:
            message = dict(zip(MESSAGE_FIELDS, row, strict=True))
            message["timestamp"] = at
            file.add(markdown_message(message, self.bot))

    def _messages(
        self, connection: Connection, channel_id: str, files: dict[str, SessionFile]
    ) -> None:
        """Stream the channel's messages into their session files, finishing sessions early.

        A channel's sessions follow each other in time, so once the stream has moved a few
        sessions further a session is complete and its file is finished, which keeps memory
        bounded however large the channel. A message that comes back to a finished session
        (timestamps that interleave sessions, e.g. imported rows) marks it for a second pass that
        renders it alone.
        """
        query = self._channel_query(connection, channel_id, files)
        # Sessions that have rows and are not finished yet, most recently fed last.
        recent: OrderedDict[str, SessionFile] = OrderedDict()
        finished: dict[str, tuple[bool, int]] = {}  # written?, messages
        revisit: set[str] = set()
        previous: str | None = None
        result = connection.execution_options(yield_per=FETCH_BATCH).execute(query)
        for row in result:
            session_id = row[_SESSION_ID]
            if session_id in finished:
                revisit.add(session_id)
                continue
            file = files.get(session_id)
            if file is None:
                continue
            at = stored_timestamp(row[_TIMESTAMP])
            if session_id != previous:
                previous = session_id
                recent[session_id] = file
                recent.move_to_end(session_id)
                self._finish_complete(recent, finished, at)
            self._render(file, row, at)
        for session_id, file in files.items():
            if session_id not in finished:
                finished[session_id] = (self._finish(file), file.messages)
        for session_id in sorted(revisit):
            self._render_again(connection, query, files, session_id, finished[session_id])

    def _channel_query(
        self, connection: Connection, channel_id: str, files: dict[str, SessionFile]
    ) -> Select[Any]:
        """The channel's rows in time order (only the exported sessions' when that is cheap)."""
        query = (
            select(*message_columns(connection.dialect.name))
            .where(_C.c.bot_name == self.bot, _C.c.channel_id == channel_id)
            .order_by(_C.c.timestamp, _C.c.id)
        )
        if self.since is not None and len(files) <= 500:
            # only some sessions of the channel are exported: skip the other rows in SQL
            query = query.where(_C.c.session_id.in_(list(files)))
        return query

    def _finish_complete(
        self,
        recent: OrderedDict[str, SessionFile],
        finished: dict[str, tuple[bool, int]],
        at: datetime,
    ) -> None:
        """Finish the sessions the stream (now at ``at``) is done with; spill overlapping ones."""
        # The store keeps every message of a session within [started_at, last_activity] and
        # counts them: once the stream is past a session's last activity and has brought all of
        # its messages, that session is complete.
        for other_id, other in list(recent.items())[:-1]:
            if other.session.last_activity < at and other.messages >= other.session.message_count:
                del recent[other_id]
                finished[other_id] = (self._finish(other), other.messages)
        if len(recent) > _OPEN_SESSIONS:
            # Sessions overlap in time (rows imported out of order): keep their text on disk
            # rather than in memory until the channel ends.
            for other in list(recent.values())[:-_OPEN_SESSIONS]:
                other.spill()

    def _render_again(
        self,
        connection: Connection,
        query: Select[Any],
        files: dict[str, SessionFile],
        session_id: str,
        first_pass: tuple[bool, int],
    ) -> None:
        """Render one session again on its own, all of its rows in order.

        A row outside its session's recorded time span came after the session was finished.
        """
        was_written, partial = first_pass
        first = files[session_id]
        again = files[session_id] = SessionFile(first.target, first.head, first.session)
        for row in connection.execution_options(yield_per=FETCH_BATCH).execute(
            query.where(_C.c.session_id == session_id)
        ):
            self._render(again, row, stored_timestamp(row[_TIMESTAMP]))
        rewritten = again.finish(json_tail(again.messages) if self.fmt == "json" else "")
        if rewritten and not was_written:
            self.written, self.unchanged = self.written + 1, self.unchanged - 1
        self.messages += again.messages - partial


def _prepare(out: Path, bot: str) -> Path:
    """The resolved export root, with the bot's folder created and shown to be writable."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        root = out.resolve(strict=True)
        folder = inside(root, bot)
        folder.mkdir(exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise _os_error(exc, out) from exc
    return root


async def export_bot(
    config: BotConfig,
    out: str | os.PathLike[str],
    *,
    fmt: ExportFormat = "json",
    since: str | date | datetime | None = None,
    progress: ExportProgress | None = None,
) -> ExportResult:
    """Export the bot's sessions (last active on or after ``since``) under ``out/{bot}/``.

    The work is plain blocking file IO interleaved with database reads; it is meant for a
    command or a worker thread, not for a bot's event loop.
    """
    if fmt not in FORMATS:
        raise InvalidInput(f"unknown export format {fmt!r}; use json or markdown")
    since_at = None if since is None else parse_since(since)
    root = _prepare(Path(out), config.name)
    job = _Export(config, root, fmt, since_at, progress)
    await read_bot_database(config, job.run)
    return ExportResult(
        config.name, root / config.name, job.written, job.unchanged, job.messages, job.channels
    )
