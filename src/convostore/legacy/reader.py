"""Reader of the legacy JSON tree: files -> typed records, plus the problems found on the way.

Three layouts live side by side under the legacy data directory (see docs/migration.md):

- era 0: ``<bot>/<channel>_<user>.json``, a JSON array of ``{role, content, timestamp}``;
- era 1: ``multi_bot_conversations/<channel>_<user>.json`` (one conversation object) and
  ``multi_bot_conversations/shared_conversations.json`` (key ``<channel>_<user>`` -> object);
- era 2: ``multi_bot_conversations/<bot>/<channel>_<user>.json`` (one conversation object).

The reader never writes and never guesses: a file it cannot read is returned with its
:data:`UNREADABLE` reason, a record it cannot use with its index. Files are read one at a time,
so memory is bounded by the largest file.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from convostore.records import ROLES

SHARED_DIR = "multi_bot_conversations"
SHARED_INDEX = "shared_conversations.json"
# A directory of the shared tree that is not a bot: written by a non-bot component.
NOT_BOTS = frozenset({"coordinator"})

TEMP_FILE = "temp_file"
EMPTY_FILE = "empty_file"
INVALID_UTF8 = "invalid_utf8"
INVALID_JSON = "invalid_json"
INVALID_SHAPE = "invalid_shape"
BAD_FILENAME = "bad_filename"
UNREADABLE = (TEMP_FILE, EMPTY_FILE, INVALID_UTF8, INVALID_JSON, INVALID_SHAPE, BAD_FILENAME)

KNOWN_RECORD_KEYS = frozenset({"role", "content", "timestamp", "bot_name", "metadata"})
_KEY = re.compile(r"^(\d{1,20})_(\d{1,20})$")

Era = Literal[0, 1, 2]


@dataclass(frozen=True, slots=True)
class LegacyFile:
    """A file found in the tree: where it is, which era's layout, and the bot its folder names.

    ``root`` is the data directory, one object shared by every file of the tree, and ``rel`` the
    path under it: a tree of 100,000 files held 69 MB as one ``Path`` per file, 35 MB so.
    """

    root: Path
    rel: str
    era: Era | None
    bot: str | None
    ignored: bool = False
    temp: bool = False

    @property
    def path(self) -> Path:
        return self.root / self.rel


@dataclass(slots=True)  # not frozen: a frozen __init__ costs a third of reading a record
class LegacyRecord:
    """One message record; ``timestamp`` is as written (naive or aware), ids are decimal strings."""

    index: int
    role: str
    content: str
    timestamp: datetime
    bot_name: str | None
    message_id: str | None
    username: str | None
    channel_name: str | None
    metadata: dict[str, Any] | None


@dataclass(slots=True)
class Conversation:
    """The records of one ``<channel>_<user>`` conversation of a file (or of one index entry)."""

    where: str
    channel_id: str
    user_id: str
    participants: tuple[str, ...]
    records: list[LegacyRecord]


@dataclass(frozen=True, slots=True)
class Problem:
    """Something the operator must hear of: an unreadable file, an invalid record, a warning."""

    path: str
    kind: str
    detail: str
    index: int | None = None

    def as_dict(self) -> dict[str, Any]:
        found: dict[str, Any] = {"path": self.path, "kind": self.kind, "detail": self.detail}
        if self.index is not None:
            found["index"] = self.index
        return found


@dataclass(slots=True)
class ParsedFile:
    """What one file holds: conversations, or the reason it is unreadable; plus record problems."""

    file: LegacyFile
    unreadable: Problem | None = None
    conversations: list[Conversation] = field(default_factory=list)
    invalid: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)

    @property
    def record_count(self) -> int:
        return sum(len(c.records) for c in self.conversations)


def _is_bot_folder(folder: Path) -> bool:
    return any(p.suffix in (".json", ".tmp") and p.is_file() for p in folder.iterdir())


def scan(data_dir: Path, *, skip: frozenset[str] = frozenset({"backups"})) -> Iterator[LegacyFile]:
    """Every file of the legacy tree under ``data_dir``, in a stable order; names only, no reads.

    Top-level folders other than ``multi_bot_conversations`` are era-0 bot folders when they hold
    ``.json`` or ``.tmp`` files (``skip`` names folders that never are, such as backups). Files at
    the top level (the database itself) are not part of the legacy tree.
    """
    shared = data_dir / SHARED_DIR
    if shared.is_dir():
        yield from _scan_shared(data_dir, shared)
    for folder in sorted(p for p in data_dir.iterdir() if p.is_dir()):
        if folder.name == SHARED_DIR or folder.name in skip or not _is_bot_folder(folder):
            continue
        for path in _files(folder):
            yield classify(data_dir, path, era=0, bot=folder.name, depth_ok=path.parent == folder)


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def _scan_shared(data_dir: Path, shared: Path) -> Iterator[LegacyFile]:
    for path in _files(shared):
        parts = path.relative_to(shared).parts
        if len(parts) == 1:
            yield classify(data_dir, path, era=1, bot=None, depth_ok=True)
        elif parts[0] in NOT_BOTS:
            yield classify(data_dir, path, era=None, bot=None, depth_ok=False)
        else:
            yield classify(data_dir, path, era=2, bot=parts[0], depth_ok=len(parts) == 2)


def classify(
    data_dir: Path, path: Path, *, era: Era | None, bot: str | None, depth_ok: bool = True
) -> LegacyFile:
    """A file of the tree as the reader sees it, given the layout its folder belongs to."""
    rel = path.relative_to(data_dir).as_posix()
    if not depth_ok or era is None:
        return LegacyFile(data_dir, rel, None, None, ignored=True)
    if path.name.endswith(".tmp"):
        return LegacyFile(data_dir, rel, era, bot, temp=True)
    if path.suffix != ".json":
        return LegacyFile(data_dir, rel, None, None, ignored=True)
    return LegacyFile(data_dir, rel, era, bot)


def parse_id(value: object) -> str | None:
    """A Discord id as a decimal string; JSON integers stay exact, digit strings are accepted."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and value >= 0:
        return str(value)
    if isinstance(value, str):
        text = value.strip()
        if text.isascii() and text.isdigit() and len(text) <= 20:
            return text.lstrip("0") or "0"
    return None


def _key_ids(name: str) -> tuple[str, str] | None:
    match = _KEY.match(name)
    return (str(int(match[1])), str(int(match[2]))) if match else None


def read_file(file: LegacyFile) -> ParsedFile:
    """Read one file; never raises for what the file holds."""
    parsed = ParsedFile(file)
    if file.ignored:
        return parsed
    if file.temp:
        parsed.unreadable = Problem(file.rel, TEMP_FILE, "unfinished save (.tmp), not imported")
        return parsed
    path = file.path
    data = path.read_bytes()
    if not data.strip():
        parsed.unreadable = Problem(file.rel, EMPTY_FILE, f"{len(data)} bytes, no JSON")
        return parsed
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        parsed.unreadable = Problem(
            file.rel,
            INVALID_UTF8,
            f"not UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start})",
        )
        return parsed
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        parsed.unreadable = Problem(
            file.rel, INVALID_JSON, f"{exc.msg} at line {exc.lineno} column {exc.colno}"
        )
        return parsed
    stem = path.name[: -len(".json")]
    if file.era == 1 and path.name == SHARED_INDEX:
        _read_index(parsed, value)
    elif isinstance(value, list):
        ids = _key_ids(stem)
        if ids is None:
            parsed.unreadable = Problem(
                file.rel, BAD_FILENAME, "a message list whose name is not <channel_id>_<user_id>"
            )
            return parsed
        if file.era != 0:
            parsed.warnings.append(
                Problem(file.rel, "list_in_object_era", "a plain message list; read as era 0")
            )
        parsed.conversations.append(_conversation(parsed, file.rel, ids, (), value))
    elif isinstance(value, dict):
        conversation = _object(parsed, file.rel, stem, value)
        if conversation is not None:
            parsed.conversations.append(conversation)
    else:
        parsed.unreadable = Problem(
            file.rel, INVALID_SHAPE, f"top level is a JSON {type(value).__name__}"
        )
    if parsed.unreadable is not None:
        parsed.conversations.clear()
        parsed.invalid.clear()
        parsed.warnings.clear()
    return parsed


def _read_index(parsed: ParsedFile, value: object) -> None:
    rel = parsed.file.rel
    if not isinstance(value, dict):
        parsed.unreadable = Problem(
            rel, INVALID_SHAPE, f"top level is a JSON {type(value).__name__}, expected an object"
        )
        return
    for key, entry in value.items():
        where = f"{rel}#{key}"
        if not isinstance(entry, dict):
            parsed.invalid.append(
                Problem(where, INVALID_SHAPE, f"entry is a JSON {type(entry).__name__}")
            )
            continue
        conversation = _object(parsed, where, key, entry, entry_of_index=True)
        if conversation is not None:
            parsed.conversations.append(conversation)


def _object(
    parsed: ParsedFile,
    where: str,
    name: str,
    value: dict[str, Any],
    *,
    entry_of_index: bool = False,
) -> Conversation | None:
    def refuse(kind: str, detail: str) -> None:
        # A bad entry of the index file is one invalid item; a bad file is unreadable as a whole.
        problem = Problem(where, kind, detail)
        if entry_of_index:
            parsed.invalid.append(problem)
        else:
            parsed.unreadable = problem

    messages = value.get("messages")
    if not isinstance(messages, list):
        refuse(INVALID_SHAPE, "no 'messages' list in the conversation object")
        return None
    inner = (parse_id(value.get("channel_id")), parse_id(value.get("user_id")))
    named = _key_ids(name)
    if inner[0] is not None and inner[1] is not None:
        ids = (inner[0], inner[1])
        if named is None:
            parsed.warnings.append(
                Problem(
                    where,
                    "odd_filename",
                    f"name {name!r} is not <channel_id>_<user_id>; "
                    f"ids {ids[0]}_{ids[1]} taken from the file",
                )
            )
        elif named != ids:
            parsed.warnings.append(
                Problem(
                    where,
                    "id_mismatch",
                    f"name says {named[0]}_{named[1]}, the file says "
                    f"{ids[0]}_{ids[1]}; the file's ids are used",
                )
            )
    elif named is not None:
        ids = named
    else:
        refuse(BAD_FILENAME, "no channel/user ids inside and none in the name")
        return None
    raw_participants = value.get("participants")
    participants = tuple(
        p
        for p in (raw_participants if isinstance(raw_participants, list) else ())
        if isinstance(p, str) and p
    )
    return _conversation(parsed, where, ids, participants, messages)


def _conversation(
    parsed: ParsedFile,
    where: str,
    ids: tuple[str, str],
    participants: tuple[str, ...],
    messages: list[Any],
) -> Conversation:
    records: list[LegacyRecord] = []
    for index, raw in enumerate(messages):
        record = _record(parsed, where, index, raw)
        if record is not None:
            records.append(record)
    return Conversation(where, ids[0], ids[1], participants, records)


def _name(value: object) -> str | None:
    """A name from metadata, if usable as one (a NUL could not be stored on PostgreSQL)."""
    return value if isinstance(value, str) and value and "\x00" not in value else None


def _record(parsed: ParsedFile, where: str, index: int, raw: object) -> LegacyRecord | None:
    def invalid(detail: str) -> None:
        parsed.invalid.append(Problem(where, "invalid_record", detail, index))

    if not isinstance(raw, dict):
        invalid(f"record is a JSON {type(raw).__name__}, not an object")
        return None
    role = raw.get("role")
    if role not in ROLES:
        invalid("missing role" if role is None else f"invalid role {str(role)[:40]!r}")
        return None
    content = raw.get("content")
    if not isinstance(content, str):
        invalid("missing content" if content is None else f"content is a {type(content).__name__}")
        return None
    if "\x00" in content:
        invalid("content contains a NUL character (\\u0000), which PostgreSQL cannot store")
        return None
    stamp = raw.get("timestamp")
    try:
        if not isinstance(stamp, str):
            raise ValueError
        timestamp = datetime.fromisoformat(stamp)
    except ValueError:
        invalid("missing timestamp" if stamp is None else f"invalid timestamp {str(stamp)[:40]!r}")
        return None
    bot_name = raw.get("bot_name")
    meta = raw.get("metadata")
    stored: dict[str, Any] = {}
    if isinstance(meta, dict):
        stored.update(meta)
    elif meta is not None:
        stored["legacy_metadata"] = meta
    if not raw.keys() <= KNOWN_RECORD_KEYS:
        stored["legacy_extra"] = {k: v for k, v in raw.items() if k not in KNOWN_RECORD_KEYS}
    message_id = None
    username = channel_name = None
    if isinstance(meta, dict):
        raw_id = meta.get("message_id")
        message_id = parse_id(raw_id)
        if raw_id is not None and message_id is None:
            parsed.warnings.append(
                Problem(
                    where,
                    "bad_message_id",
                    f"message_id {str(raw_id)[:40]!r} is not an id; a generated id is used",
                    index,
                )
            )
        username = _name(meta.get("username"))
        channel_name = _name(meta.get("channel_name"))
    return LegacyRecord(
        index=index,
        role=role,
        content=content,
        timestamp=timestamp,
        bot_name=bot_name if isinstance(bot_name, str) and bot_name else None,
        message_id=message_id,
        username=username,
        channel_name=channel_name,
        metadata=stored or None,
    )
