"""The one mapping between stored rows and records, and the value a write stores.

Every reader that turns a ``conversations`` row into a :class:`StoredMessage` (history, browse,
the store's writes, the legacy read fallback) and every writer of a message goes through here.
The field list is the record's own, :data:`convostore.records.MESSAGE_FIELDS`, in column order:
a column added to the table and to ``StoredMessage`` (and to :class:`NewMessage`) is selected and
mapped everywhere. A field whose stored value is not the record's value as it comes (times stored
as text on SQLite, JSON, booleans) gets one line in the conversion tables below.

Building records is the larger half of a history read's cost on SQLite. A frozen dataclass's
``__init__`` sets each field through ``object.__setattr__``; the slot descriptors set the same
fields in half the time. So the builders are generated once, from the field list, as straight-line
code over the slot descriptors (as :mod:`dataclasses` generates ``__init__``). The records are the
same ``StoredMessage``, equal to ones built by ``__init__`` (a test checks it).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from operator import attrgetter
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, Text, type_coerce

from convostore.models import ChatSessionModel, ConversationModel
from convostore.records import MESSAGE_FIELDS, ChatSession, HistoryItem, StoredMessage

MESSAGES = cast(Table, ConversationModel.__table__)
SESSIONS = cast(Table, ChatSessionModel.__table__)

# --- messages ---------------------------------------------------------------------------------

MESSAGE_COLUMNS: tuple[ColumnElement[Any], ...] = tuple(MESSAGES.c[name] for name in MESSAGE_FIELDS)
"""The select list of a message row, in field order (values processed by Core)."""

MESSAGE_INDEX: Mapping[str, int] = {name: i for i, name in enumerate(MESSAGE_FIELDS)}
"""The position of each field in a row of :data:`MESSAGE_COLUMNS` or :func:`message_columns`."""

# Columns SQLite stores as naive UTC ISO 8601 text. Its readers select that text and parse it with
# ``datetime.fromisoformat``: per row, several times cheaper than the generic DATETIME processor
# followed by UTCDateTime's.
TIME_FIELDS: frozenset[str] = frozenset({"timestamp", "edited_at"})

# How a value becomes the record's, per source, for the fields not taken as they come. ``{v}`` is
# the stored value. Core's JSON processing hands out a fresh object; it is copied all the same, so
# a record never shares a mutable value with anything else.
_FROM_CORE: dict[str, str] = {
    "metadata": "None if {v} is None else dict({v})",
    "attachments": "[] if {v} is None else [dict(a) for a in {v}]",
    "author_is_bot": "bool({v})",
}
_TEXT_TIME = "_fromisoformat({v} + '+00:00')"  # an aware datetime in datetime.UTC
_FROM_SQLITE_TEXT: dict[str, str] = {**_FROM_CORE, **{f: _TEXT_TIME for f in TIME_FIELDS}}
# Rows read through the DBAPI: JSON arrives as its text. JSON's null is how the JSON column stores
# a None; SQL NULL comes from bulk imports.
_FROM_DRIVER: dict[str, str] = {
    **{f: _TEXT_TIME for f in TIME_FIELDS},
    "metadata": "None if {v} is None or {v} == 'null' else _loads({v})",
    # Most messages have none: their text is taken as such, without a JSON parse.
    "attachments": "[] if {v} is None or {v} == 'null' or {v} == '[]' else _loads({v})",
    "author_is_bot": "bool({v})",
}


# Rows read straight through asyncpg on a connection of the store's pool: times arrive as aware UTC
# datetimes. The JSON columns are selected as their text (:data:`ASYNCPG_SELECT`) and decoded as
# the DBAPI's are, JSON's null and [] without a parse. Decoded by the json codec SQLAlchemy's
# asyncpg dialect installs, every value (most are null or []) cost a json.loads: about half the
# Python time of a 100-row read.
_FROM_ASYNCPG: dict[str, str] = {
    "metadata": _FROM_DRIVER["metadata"],
    "attachments": _FROM_DRIVER["attachments"],
    "author_is_bot": "bool({v})",
}


def metadata_from_driver(value: str | None) -> dict[str, Any] | None:
    """A ``metadata`` value as the DBAPI hands it, by ``_FROM_DRIVER``'s rule (the generated
    record builders inline that rule rather than call this per row). For readers that build no
    records."""
    return None if value is None or value == "null" else cast(dict[str, Any], json.loads(value))


def items_from_driver_rows(found: Iterable[Sequence[Any]]) -> list[HistoryItem]:
    """:class:`HistoryItem` records from driver rows of its four fields, ``metadata`` as text
    (SQLite's DBAPI, or asyncpg with the column selected ``::text``)."""
    return [
        HistoryItem(message_id, role, content, metadata_from_driver(metadata))
        for message_id, role, content, metadata in found
    ]


# The fields a history read through the DBAPI selects: bot and channel are the caller's own values.
DRIVER_FIELDS: tuple[str, ...] = tuple(
    f for f in MESSAGE_FIELDS if f not in ("bot_name", "channel_id")
)
DRIVER_SELECT = f"SELECT {', '.join(DRIVER_FIELDS)} FROM conversations"
"""The select list of :func:`messages_from_driver_rows`' rows, as SQL for the DBAPI."""
JSON_FIELDS: tuple[str, ...] = ("metadata", "attachments")


def as_text_on_postgresql(fields: Sequence[str]) -> str:
    """The select list of ``fields`` for asyncpg, the JSON columns as their stored text."""
    return ", ".join(f"{f}::text AS {f}" if f in JSON_FIELDS else f for f in fields)


ASYNCPG_SELECT = f"SELECT {as_text_on_postgresql(DRIVER_FIELDS)} FROM conversations"
"""The select list of :func:`messages_from_asyncpg_rows`' rows (PostgreSQL)."""


def _expression(name: str, convert: Mapping[str, str]) -> str:
    template = convert.get(name)
    if template is None:
        return f"v_{name}"
    expression = template.format(v=f"v_{name}")
    if name in TIME_FIELDS and MESSAGES.c[name].nullable:
        expression = f"None if v_{name} is None else {expression}"
    return expression


def _generate(name: str, many: bool, unpack: Sequence[str], convert: Mapping[str, str]) -> Any:
    """A builder ``name``, generated from the field list (see the module's docstring)."""
    body = ["    record = _new(_StoredMessage)"]
    body += [f"    _set_{field}(record, {_expression(field, convert)})" for field in MESSAGE_FIELDS]
    if many:
        loop = f"    for {', '.join(f'v_{f}' for f in unpack)} in rows:"
        lines = [loop, *("    " + line for line in body), "        records.append(record)"]
        source = f"def {name}(rows, v_bot_name, v_channel_id):\n    records = []\n"
        source += "\n".join(lines) + "\n    return records\n"
    else:
        source = f"def {name}(row):\n    {', '.join(f'v_{f}' for f in unpack)}, = row\n"
        source += "\n".join(body) + "\n    return record\n"
    namespace: dict[str, Any] = {
        "_new": object.__new__,
        "_StoredMessage": StoredMessage,
        "_fromisoformat": datetime.fromisoformat,
        "_loads": json.loads,
        **{f"_set_{f}": vars(StoredMessage)[f].__set__ for f in MESSAGE_FIELDS},
    }
    exec(compile(source, f"<convostore.repositories.rows.{name}>", "exec"), namespace)
    return namespace[name]


message_from_row: Callable[[Sequence[Any]], StoredMessage] = _generate(
    "message_from_row", False, MESSAGE_FIELDS, _FROM_CORE
)
"""A record from a row of :data:`MESSAGE_COLUMNS` (values processed by Core)."""

message_from_sqlite_row: Callable[[Sequence[Any]], StoredMessage] = _generate(
    "message_from_sqlite_row", False, MESSAGE_FIELDS, _FROM_SQLITE_TEXT
)
"""A record from a row of ``message_columns("sqlite")`` (times as their stored text)."""

messages_from_driver_rows: Callable[[Sequence[Sequence[Any]], str, str], list[StoredMessage]] = (
    _generate("messages_from_driver_rows", True, DRIVER_FIELDS, _FROM_DRIVER)
)
"""``messages_from_driver_rows(rows, bot_name, channel_id)``: records from DBAPI rows of
:data:`DRIVER_SELECT` (SQLite: times as naive UTC text, JSON as text)."""

messages_from_asyncpg_rows: Callable[[Sequence[Sequence[Any]], str, str], list[StoredMessage]] = (
    _generate("messages_from_asyncpg_rows", True, DRIVER_FIELDS, _FROM_ASYNCPG)
)
"""``messages_from_asyncpg_rows(rows, bot_name, channel_id)``: records from asyncpg rows of
:data:`DRIVER_SELECT` (PostgreSQL, on a connection of the store's pool)."""


def message_columns(dialect: str) -> tuple[ColumnElement[Any], ...]:
    """:data:`MESSAGE_COLUMNS`, with the time columns read as their stored text on SQLite."""
    if dialect != "sqlite":
        return MESSAGE_COLUMNS
    return tuple(
        type_coerce(column, Text).label(column.key) if column.key in TIME_FIELDS else column
        for column in MESSAGE_COLUMNS
    )


def message_reader(dialect: str) -> Callable[[Sequence[Any]], StoredMessage]:
    """The builder for rows of ``message_columns(dialect)``."""
    return message_from_sqlite_row if dialect == "sqlite" else message_from_row


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A message to store: every column of a ``conversations`` row but ``id`` and ``bot_name``."""

    channel_id: str
    channel_name: str
    channel_type: str
    user_id: str
    username: str
    session_id: str
    message_id: str
    role: str
    content: str
    timestamp: datetime
    metadata: dict[str, Any] | None
    parent_id: str | None = None
    reply_to_message_id: str | None = None
    attachments: list[dict[str, Any]] = field(default_factory=list)
    edited_at: datetime | None = None
    author_is_bot: bool = False

    def params(self, bot_name: str) -> dict[str, Any]:
        """The bound parameters of an insert of this message for ``bot_name``."""
        values = dict(zip(NEW_MESSAGE_FIELDS, _new_message_values(self), strict=True))
        values["bot_name"] = bot_name
        return values

    def stored(self, id: int, bot_name: str) -> StoredMessage:
        """The record of this message once stored as row ``id`` of ``bot_name``."""
        return message_from_row((id, bot_name, *_new_message_values(self)))


NEW_MESSAGE_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(NewMessage))
INSERT_COLUMNS = f"bot_name, {', '.join(NEW_MESSAGE_FIELDS)}"
"""The column list of an insert whose values :func:`sqlite_values` gives."""
INSERT_WIDTH = len(NEW_MESSAGE_FIELDS) + 1
"""Values per row of :func:`sqlite_values`."""
_new_message_values = cast(Callable[[NewMessage], tuple[Any, ...]], attrgetter(*NEW_MESSAGE_FIELDS))

# --- a batch of new messages (a backfill) -------------------------------------------------------
# Straight-line code generated from the field list, as for the readers above: per message, the
# frozen dataclass's ``__init__`` and a tuple per row cost more than SQLite's own work for it.

_STORED_FROM_NEW = {f: "{v}" for f in NEW_MESSAGE_FIELDS} | _FROM_CORE
# A column's value as SQLite stores it (UTCDateTime: naive UTC text with microseconds; JSON: its
# text, None as JSON's null, as Core's JSON type stores it; booleans: 0/1).
_SQLITE_TIME = (
    "({v} if {v}.tzinfo is _UTC else {v}.astimezone(_UTC)).isoformat(' ', 'microseconds')[:-6]"
)
_TO_SQLITE: dict[str, str] = {
    "timestamp": _SQLITE_TIME,
    "edited_at": f"None if {{v}} is None else {_SQLITE_TIME}",
    "metadata": "_json_text({v})",
    "attachments": "_json_text({v})",
    "author_is_bot": "1 if {v} else 0",
}


def json_text(value: Any) -> str:
    """The text Core's JSON type stores for ``value`` (``None`` as JSON's null)."""
    return "null" if value is None else "[]" if value == [] else json.dumps(value)


def _generate_batch_builders() -> dict[str, Any]:
    new_fields = NEW_MESSAGE_FIELDS
    read = [f"        v_{f} = m.{f}" for f in new_fields if f != "session_id"]
    stored = [
        "def stored_messages(news, session_ids, row_ids, v_bot_name):",
        "    records = []",
        "    for m, v_session_id, v_id in zip(news, session_ids, row_ids, strict=True):",
        *read,
        "        record = _new(_StoredMessage)",
        *(
            f"        _set_{f}(record, {_STORED_FROM_NEW.get(f, '{v}').format(v=f'v_{f}')})"
            for f in MESSAGE_FIELDS
        ),
        "        records.append(record)",
        "    return records",
    ]
    sqlite_row = ", ".join(
        ["v_bot_name", *(_TO_SQLITE.get(f, "{v}").format(v=f"v_{f}") for f in new_fields)]
    )
    to_sqlite = [
        "def sqlite_values(news, session_ids, order, v_bot_name):",
        "    values = []",
        "    for index in order:",
        "        m = news[index]",
        "        v_session_id = session_ids[index]",
        *read,
        f"        values.extend(({sqlite_row}))",
        "    return values",
    ]
    new = [
        f"def new_message({', '.join(f'v_{f}' for f in new_fields)}):",
        "    message = _new(_NewMessage)",
        *(f"    _setnew_{f}(message, v_{f})" for f in new_fields),
        "    return message",
    ]
    namespace: dict[str, Any] = {
        "_new": object.__new__,
        "_StoredMessage": StoredMessage,
        "_NewMessage": NewMessage,
        "_UTC": UTC,
        "_json_text": json_text,
        **{f"_set_{f}": vars(StoredMessage)[f].__set__ for f in MESSAGE_FIELDS},
        **{f"_setnew_{f}": vars(NewMessage)[f].__set__ for f in new_fields},
    }
    source = "\n".join([*stored, "", *to_sqlite, "", *new]) + "\n"
    exec(compile(source, "<convostore.repositories.rows.batch>", "exec"), namespace)
    return namespace


_batch = _generate_batch_builders()
new_message: Callable[..., NewMessage] = _batch["new_message"]
"""``new_message(*values)``: a :class:`NewMessage` from its field values in field order, equal to
``NewMessage(*values)``."""
stored_messages: Callable[
    [Sequence[NewMessage], Sequence[str], Sequence[int], str], list[StoredMessage]
] = _batch["stored_messages"]
"""``stored_messages(news, session_ids, row_ids, bot_name)``: the records of new messages once
stored with those session ids and row ids (equal to ``NewMessage.stored``'s)."""
sqlite_values: Callable[[Sequence[NewMessage], Sequence[str], Iterable[int], str], list[Any]] = (
    _batch["sqlite_values"]
)
"""``sqlite_values(news, session_ids, order, bot_name)``: the bound values of a multi-row insert
on SQLite of ``news[i]`` for ``i`` in ``order``, ``bot_name`` and :data:`NEW_MESSAGE_FIELDS` per
row, converted as the column types would store them."""


# --- sessions ---------------------------------------------------------------------------------

SESSION_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(ChatSession))
SESSION_COLUMNS: tuple[ColumnElement[Any], ...] = tuple(SESSIONS.c[name] for name in SESSION_FIELDS)
"""The select list of a session row, in the order of :class:`ChatSession`'s fields."""


def session_from_row(row: Sequence[Any]) -> ChatSession:
    """A record from a row of :data:`SESSION_COLUMNS` (values processed by Core)."""
    session_id, channel_id, started_at, last_activity, message_count, is_active = row
    return ChatSession(
        session_id, channel_id, started_at, last_activity, message_count, bool(is_active)
    )
