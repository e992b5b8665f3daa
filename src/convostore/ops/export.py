"""Export of a bot's conversations to a tree of files a person can browse.

``DIR/{bot}/channels/{safe_name}/{session_id}.json`` and ``DIR/{bot}/dms/{safe_name}/...``, as JSON
(one document per session) or as Markdown transcripts. Everything that becomes part of a path
comes from the database and is treated as hostile: the channel folder is
:attr:`ChannelInfo.safe_name`, session ids outside a conservative pattern are replaced by a cleaned
form with a hash, and every target path is resolved and checked to lie inside ``DIR``.

The export streams: it reads one channel at a time, its messages in one ordered index range scan
(``idx_conversations_bot_channel_time``) fetched in batches, and memory holds at most a few
hundred rendered messages per session. Reading a whole channel once is cheaper than one query per
session, which would scan the channel's index range again for each of its sessions. Each channel is
read in its own short read transaction, so a long export never pins one SQLite snapshot (which
would keep the WAL from being checkpointed) nor blocks a writer.

Each file is written to a temporary name beside its target and compared with the file already
there: identical bytes leave the old file (and its modification time) untouched, anything else
replaces it atomically with ``os.replace``. A rerun therefore rewrites only changed sessions.
"""

from __future__ import annotations

import contextlib
import filecmp
import hashlib
import json
import operator
import os
import re
import tempfile
import unicodedata
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from json.encoder import encode_basestring
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

from sqlalchemy import Table, bindparam, func, select
from sqlalchemy.engine import Connection

from convostore.channels import ChannelInfo, is_windows_reserved
from convostore.config import BotConfig
from convostore.db import translate_errors
from convostore.engine import make_engine, read_only
from convostore.errors import InvalidInput, OperationError
from convostore.models import ChatSessionModel, ConversationModel
from convostore.ops import write_error
from convostore.records import MESSAGE_FIELDS
from convostore.repositories.rows import MESSAGE_INDEX, message_columns
from convostore.schema import check_schema

ExportFormat = Literal["json", "markdown"]
FORMATS: tuple[ExportFormat, ...] = ("json", "markdown")
EXTENSIONS: dict[ExportFormat, str] = {"json": ".json", "markdown": ".md"}

_S = cast(Table, ChatSessionModel.__table__)
_C = cast(Table, ConversationModel.__table__)
_T = TypeVar("_T")

FETCH_BATCH = 2000
# Unfinished sessions of one channel whose rendered text may stay in memory together; there are
# more than one only when sessions overlap in time (rows imported out of order).
_OPEN_SESSIONS = 4
# Rendered text kept in memory per session before it is appended to the session's temporary file.
_SPILL_BYTES = 256 * 1024

# Session ids the store generates look like 2024-01-08_14-30-00_3600s or ...-2: lower case, so two
# ids never differ only in case (the same file on Windows and macOS).
_SAFE_SESSION_ID = re.compile(r"[a-z0-9][a-z0-9._-]{0,149}")


# --- names -----------------------------------------------------------------------------------


def _digest(value: str, length: int = 12) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:length]


def stored_channel(channel_id: str, name: str | None, channel_type: str | None) -> ChannelInfo:
    """The :class:`ChannelInfo` of a channel as stored, whatever its columns hold.

    Ids written by the store are decimal; an id that is not (imported or hand-written rows) is
    replaced, for the file name only, by a decimal digest of it, and kept readable in the name.
    """
    kind: Literal["channel", "dm"] = "dm" if channel_type == "dm" else "channel"
    if channel_id.isascii() and channel_id.isdigit() and len(channel_id) <= 64:
        return ChannelInfo(channel_id, name or "", kind)
    substitute = str(int(_digest(channel_id, 15), 16))
    return ChannelInfo(substitute, f"{name or ''} {channel_id}", kind)


def safe_session_name(session_id: str) -> str:
    """A file-name stem for ``session_id``: itself when it is plainly safe, else cleaned + hash.

    The hashed form contains ``~``, which a plainly safe id never does, so the two kinds cannot
    collide; the hash keeps different ids apart after cleaning.
    """
    if (
        _SAFE_SESSION_ID.fullmatch(session_id)
        and not session_id.endswith(".")
        and ".." not in session_id
        and not is_windows_reserved(session_id)
    ):
        return session_id
    cleaned = "".join(
        char if char.isascii() and (char.isalnum() or char in "-_") else "-"
        for char in unicodedata.normalize("NFKC", session_id).lower()
    )
    cleaned = re.sub(r"-{2,}", "-", cleaned).strip("-_")[:80] or "session"
    return f"{cleaned}~{_digest(session_id)}"


def _inside(root: Path, *parts: str) -> Path:
    target = root.joinpath(*parts)
    resolved = target.resolve()
    if not resolved.is_relative_to(root):
        raise OperationError(f"{target}: refusing to write outside the export directory {root}")
    return resolved


# --- dates ------------------------------------------------------------------------------------


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


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat()


# --- rendering --------------------------------------------------------------------------------

_ENCODE = json.JSONEncoder(ensure_ascii=False).encode
_MESSAGE_KEYS = MESSAGE_FIELDS


@dataclass(frozen=True)
class ExportedSession:
    """A session row with the channel it belongs to, as written at the top of its file.

    ``channel`` gives the folder name; the id and name as stored are kept apart, because
    :func:`stored_channel` may have replaced an id that is not decimal.
    """

    bot_name: str
    channel: ChannelInfo
    stored_channel_id: str
    stored_channel_name: str
    session_id: str
    started_at: datetime
    last_activity: datetime
    message_count: int
    is_active: bool

    def header(self) -> dict[str, Any]:
        return {
            "bot": self.bot_name,
            "session_id": self.session_id,
            "channel_id": self.stored_channel_id,
            "channel_name": self.stored_channel_name,
            "channel_type": self.channel.type,
            "started_at": _iso(self.started_at),
            "last_activity": _iso(self.last_activity),
            "message_count": self.message_count,
            "is_active": self.is_active,
        }


def _json_head(session: ExportedSession) -> str:
    # The same bytes as json.dumps(document, indent=2, ensure_ascii=False), written piecewise
    # so that messages can stream; a test holds the two equal.
    lines = [f"  {_ENCODE(k)}: {_ENCODE(v)}," for k, v in session.header().items()]
    return "{\n" + "\n".join(lines) + '\n  "messages": ['


_FIELD_PREFIXES = tuple(f'      "{key}": ' for key in _MESSAGE_KEYS)
# Where each part of a message row of ``message_columns`` stands: the id, the text columns that
# follow it, the timestamp and the metadata (rendered as JSON).
_ID, _SESSION_ID, _TIMESTAMP, _METADATA = (
    MESSAGE_INDEX[key] for key in ("id", "session_id", "timestamp", "metadata")
)
_TEXT = slice(_ID + 1, _TIMESTAMP)
# The Discord fields after the metadata (revision 0003), rendered as json.dumps would.
_DISCORD = tuple(range(_METADATA + 1, len(_MESSAGE_KEYS)))


def _discord_value(key: str, value: Any) -> Any:
    if key == "edited_at":
        return None if value is None else _iso(_timestamp(value))
    if key == "attachments":
        return value or []
    if key == "author_is_bot":
        return bool(value)
    return value


def _json_value(value: Any) -> str:
    """``value`` as json.dumps(indent=2) writes it at a message's field depth."""
    return json.dumps(value, indent=2, ensure_ascii=False).replace("\n", "\n      ")


def _json_message(row: Sequence[Any], timestamp: str, first: bool) -> str:
    """One message of the ``messages`` array, indented as json.dumps(indent=2) would."""
    # The hot loop of a JSON export: the text columns go straight through the C string encoder
    # that json.dumps(ensure_ascii=False) uses, without a JSONEncoder call per value.
    metadata = row[_METADATA]
    if metadata is None:
        meta = "null"
    else:
        meta = json.dumps(metadata, indent=2, ensure_ascii=False).replace("\n", "\n      ")
    fields = ",\n".join(
        map(operator.add, _FIELD_PREFIXES[_TEXT], map(encode_basestring, row[_TEXT]))
    )
    return (
        ("\n    {\n" if first else ",\n    {\n")
        + f"{_FIELD_PREFIXES[_ID]}{int(row[_ID])},\n{fields},\n"
        + f"{_FIELD_PREFIXES[_TIMESTAMP]}{encode_basestring(timestamp)},\n"
        + f"{_FIELD_PREFIXES[_METADATA]}{meta}"
        + "".join(
            f",\n{_FIELD_PREFIXES[i]}{_json_value(_discord_value(_MESSAGE_KEYS[i], row[i]))}"
            for i in _DISCORD
        )
        + "\n    }"
    )


def _json_tail(messages: int) -> str:
    return "]\n}\n" if messages == 0 else "\n  ]\n}\n"


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_LINE_BREAKS = re.compile(r"\r\n|\r|\u2028|\u2029|\x85")


def visible(text: str) -> str:
    """Line breaks unified and control characters shown as their Unicode pictures (e.g. ␛)."""
    text = _LINE_BREAKS.sub("\n", text)
    return _CONTROL.sub(lambda m: "\u2421" if m[0] == "\x7f" else chr(0x2400 + ord(m[0])), text)


def _code_span(text: str) -> str:
    """``text`` as one line of inline code, whatever backticks or line breaks it holds."""
    flat = " ".join(visible(text).split()) or "(empty)"
    fence = "`" * (max((len(run) for run in re.findall(r"`+", flat)), default=0) + 1)
    pad = " " if flat.startswith("`") or flat.endswith("`") else ""
    return f"{fence}{pad}{flat}{pad}{fence}"


def _when(at: datetime) -> str:
    return f"{at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"


def _markdown_head(session: ExportedSession) -> str:
    channel = session.channel
    where = "DM" if channel.is_dm else "Channel"
    state = "open" if session.is_active else "closed"
    return (
        f"# {where} {_code_span(session.stored_channel_name)}, "
        f"session {_code_span(session.session_id)}\n\n"
        f"- Bot: {_code_span(session.bot_name)}\n"
        f"- {where} id: {_code_span(session.stored_channel_id)}\n"
        f"- From {_when(session.started_at)} to {_when(session.last_activity)}\n"
        f"- Messages: {session.message_count} (session {state})\n"
    )


def author(message: dict[str, Any], bot_name: str) -> str:
    """Who wrote a message: its username, else the bot for its own replies, else the user id."""
    username = str(message["username"] or "").strip()
    if username:
        return username
    return bot_name if message["role"] == "assistant" else f"user {message['user_id']}"


def _markdown_message(message: dict[str, Any], bot_name: str) -> str:
    content = visible(str(message["content"]))
    # A fence longer than any backtick run inside can never be closed by the content.
    fence = "`" * max(3, max((len(r) for r in re.findall(r"`+", content)), default=0) + 1)
    return (
        f"\n## {_when(message['timestamp'])} · {_code_span(author(message, bot_name))}"
        f" ({message['role']})\n\n{fence}text\n{content}\n{fence}\n"
    )


class _SessionFile:
    """One session's file under construction: buffered, spilled to a temporary file."""

    def __init__(self, target: Path, head: str, session: ExportedSession) -> None:
        self.target = target
        self.head = head
        self.session = session
        self.chunks = [head]
        self.size = len(head)
        self.messages = 0
        self.tmp: Path | None = None

    def add(self, text: str) -> None:
        self.chunks.append(text)
        self.size += len(text)
        self.messages += 1
        if self.size >= _SPILL_BYTES:
            self._spill()

    def spill(self) -> None:
        """Move the buffered text to the temporary file, freeing the memory."""
        self._spill()

    def _spill(self) -> None:
        if self.tmp is None:
            self.target.parent.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(dir=self.target.parent, prefix=".", suffix=".tmp")
            os.close(fd)
            self.tmp = Path(name)
        with self.tmp.open("a", encoding="utf-8", newline="\n") as out:
            out.write("".join(self.chunks))
        self.chunks, self.size = [], 0

    def finish(self, tail: str) -> bool:
        """Write the file into place if it changed; whether it was (re)written."""
        self.chunks.append(tail)
        if self.tmp is None:
            # The common case, a session that fits in memory: compare without a temporary file.
            data = "".join(self.chunks).encode("utf-8")
            self.chunks = []
            with contextlib.suppress(FileNotFoundError):
                if self.target.stat().st_size == len(data) and self.target.read_bytes() == data:
                    return False
            self._write_new(data)
            return True
        self._spill()
        try:
            if self.target.is_file() and filecmp.cmp(self.tmp, self.target, shallow=False):
                return False
            os.replace(self.tmp, self.target)
            self.tmp = None
            return True
        finally:
            self.discard()

    def _write_new(self, data: bytes) -> None:
        self.target.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=self.target.parent, prefix=".", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(name, self.target)
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise

    def discard(self) -> None:
        if self.tmp is not None:
            self.tmp.unlink(missing_ok=True)
            self.tmp = None


# --- reading ----------------------------------------------------------------------------------


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


def _timestamp(value: Any) -> datetime:
    if isinstance(value, str):
        try:
            at = datetime.fromisoformat(value)
        except ValueError:
            raise OperationError(f"unreadable stored timestamp {value[:40]!r}") from None
        return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    return cast(datetime, value).astimezone(UTC)


def newest_channel_names(
    connection: Connection, bot: str, channel_ids: Sequence[str]
) -> dict[str, tuple[str, str]]:
    """``{channel_id: (name, type)}`` from each channel's newest message (one index probe each)."""
    query = (
        select(_C.c.channel_name, _C.c.channel_type)
        .where(_C.c.bot_name == bot, _C.c.channel_id == bindparam("channel"))
        .order_by(_C.c.timestamp.desc(), _C.c.id.desc())
        .limit(1)
    )
    names: dict[str, tuple[str, str]] = {}
    for channel_id in channel_ids:
        row = connection.execute(query, {"channel": channel_id}).first()
        if row is not None:
            names[channel_id] = (row[0], row[1])
    return names


async def read_bot_database(config: BotConfig, work: Callable[[Connection], _T]) -> _T:
    """Run ``work`` on a read-only connection to the bot's database, errors translated.

    ``work`` may commit to end its read transaction (and start a new one) as it goes.
    """
    where = config.safe_database_url
    path = config.sqlite_path
    if path is not None and not path.is_file():
        raise OperationError(f"{path}: database file not found (bot {config.name})")
    engine = make_engine(config.database_url, null_pool=True)
    try:
        with translate_errors(where):
            async with read_only(engine).connect() as connection:
                await check_schema(connection, where)
                await connection.commit()
                return await connection.run_sync(work)
    finally:
        await engine.dispose()


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
        files: dict[str, _SessionFile] = {}
        taken: set[str] = set()
        for row in sessions:
            session = ExportedSession(
                self.bot, channel, channel_id, name, row[0], row[1], row[2], row[3], bool(row[4])
            )
            stem = safe_session_name(session.session_id)
            if stem.lower() in taken:  # same stem twice in one folder (only if hashes collide)
                stem = f"{stem}~{_digest(repr(session.session_id), 20)}"
            taken.add(stem.lower())
            target = _inside(self.root, self.bot, folder, safe_name, stem + self.extension)
            head = _json_head(session) if self.fmt == "json" else _markdown_head(session)
            files[session.session_id] = _SessionFile(target, head, session)
        if not files:
            return
        try:
            self._messages(connection, channel_id, files)
        finally:
            for file in files.values():
                file.discard()

    def _finish(self, file: _SessionFile) -> bool:
        """Put the session's file in place; whether it was (re)written."""
        written = file.finish(_json_tail(file.messages) if self.fmt == "json" else "")
        if written:
            self.written += 1
        else:
            self.unchanged += 1
        self.messages += file.messages
        self.sessions_done += 1
        if self.progress is not None:
            self.progress(self.sessions_done, self.messages, self.total)
        return written

    def _render(self, file: _SessionFile, row: Sequence[Any], at: datetime) -> None:
        if self.fmt == "json":
            file.add(_json_message(row, _iso(at), first=file.messages == 0))
        else:
            message = dict(zip(_MESSAGE_KEYS, row, strict=True))
            message["timestamp"] = at
            file.add(_markdown_message(message, self.bot))

    def _messages(
        self, connection: Connection, channel_id: str, files: dict[str, _SessionFile]
    ) -> None:
        """Stream the channel's messages into their session files, finishing sessions early.

        A channel's sessions follow each other in time, so once the stream has moved a few
        sessions further a session is complete and its file is finished, which keeps memory
        bounded however large the channel. A message that comes back to a finished session
        (timestamps that interleave sessions, e.g. imported rows) marks it for a second pass that
        renders it alone.
        """
        columns = message_columns(connection.dialect.name)
        query = (
            select(*columns)
            .where(_C.c.bot_name == self.bot, _C.c.channel_id == channel_id)
            .order_by(_C.c.timestamp, _C.c.id)
        )
        if self.since is not None and len(files) <= 500:
            # only some sessions of the channel are exported: skip the other rows in SQL
            query = query.where(_C.c.session_id.in_(list(files)))
        # Sessions that have rows and are not finished yet, most recently fed last.
        recent: OrderedDict[str, _SessionFile] = OrderedDict()
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
            at = _timestamp(row[_TIMESTAMP])
            if session_id != previous:
                previous = session_id
                recent[session_id] = file
                recent.move_to_end(session_id)
                # The store keeps every message of a session within [started_at, last_activity]
                # and counts them: once the stream is past a session's last activity and has
                # brought all of its messages, that session is complete.
                for other_id, other in list(recent.items())[:-1]:
                    if (
                        other.session.last_activity < at
                        and other.messages >= other.session.message_count
                    ):
                        del recent[other_id]
                        finished[other_id] = (self._finish(other), other.messages)
                if len(recent) > _OPEN_SESSIONS:
                    # Sessions overlap in time (rows imported out of order): keep their text on
                    # disk rather than in memory until the channel ends.
                    for other in list(recent.values())[:-_OPEN_SESSIONS]:
                        other.spill()
            self._render(file, row, at)
        for session_id, file in files.items():
            if session_id not in finished:
                finished[session_id] = (self._finish(file), file.messages)
        for session_id in sorted(revisit):
            # A row outside its session's recorded time span came after the session was
            # finished: render that session again on its own, all of its rows in order.
            was_written, partial = finished[session_id]
            first = files[session_id]
            again = files[session_id] = _SessionFile(first.target, first.head, first.session)
            for row in connection.execution_options(yield_per=FETCH_BATCH).execute(
                query.where(_C.c.session_id == session_id)
            ):
                self._render(again, row, _timestamp(row[_TIMESTAMP]))
            rewritten = again.finish(_json_tail(again.messages) if self.fmt == "json" else "")
            if rewritten and not was_written:
                self.written, self.unchanged = self.written + 1, self.unchanged - 1
            self.messages += again.messages - partial


def _prepare(out: Path, bot: str) -> Path:
    """The resolved export root, with the bot's folder created and shown to be writable."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        root = out.resolve(strict=True)
        folder = _inside(root, bot)
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
