"""How an export renders a session: JSON (streamed piecewise) or a Markdown transcript."""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from json.encoder import encode_basestring
from typing import Any, Literal, cast

from convostore.channels import ChannelInfo
from convostore.errors import OperationError
from convostore.records import MESSAGE_FIELDS
from convostore.repositories.rows import MESSAGE_INDEX

ExportFormat = Literal["json", "markdown"]
FORMATS: tuple[ExportFormat, ...] = ("json", "markdown")
EXTENSIONS: dict[ExportFormat, str] = {"json": ".json", "markdown": ".md"}


def iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat()


_ENCODE = json.JSONEncoder(ensure_ascii=False).encode
MESSAGE_FIELDS = MESSAGE_FIELDS


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
            "started_at": iso(self.started_at),
            "last_activity": iso(self.last_activity),
            "message_count": self.message_count,
            "is_active": self.is_active,
        }


def json_head(session: ExportedSession) -> str:
    # The same bytes as json.dumps(document, indent=2, ensure_ascii=False), written piecewise
    # so that messages can stream; a test holds the two equal.
    lines = [f"  {_ENCODE(k)}: {_ENCODE(v)}," for k, v in session.header().items()]
    return "{\n" + "\n".join(lines) + '\n  "messages": ['


_FIELD_PREFIXES = tuple(f'      "{key}": ' for key in MESSAGE_FIELDS)
# Where each part of a message row of ``message_columns`` stands: the id, the text columns that
# follow it, the timestamp and the metadata (rendered as JSON).
_ID, _SESSION_ID, _TIMESTAMP, _METADATA = (
    MESSAGE_INDEX[key] for key in ("id", "session_id", "timestamp", "metadata")
)
_TEXT = slice(_ID + 1, _TIMESTAMP)
# The Discord fields after the metadata (revision 0003), rendered as json.dumps would.
_DISCORD = tuple(range(_METADATA + 1, len(MESSAGE_FIELDS)))


def stored_timestamp(value: Any) -> datetime:
    """A stored time as aware UTC: SQLite's text (read as text for speed) or a datetime."""
    if isinstance(value, str):
        try:
            at = datetime.fromisoformat(value)
        except ValueError:
            raise OperationError(f"unreadable stored timestamp {value[:40]!r}") from None
        return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    return cast(datetime, value).astimezone(UTC)


def _discord_value(key: str, value: Any) -> Any:
    if key == "edited_at":
        return None if value is None else iso(stored_timestamp(value))
    if key == "attachments":
        return value or []
    if key == "author_is_bot":
        return bool(value)
    return value


def _json_value(value: Any) -> str:
    """``value`` as json.dumps(indent=2) writes it at a message's field depth."""
    return json.dumps(value, indent=2, ensure_ascii=False).replace("\n", "\n      ")


def json_message(row: Sequence[Any], timestamp: str, first: bool) -> str:
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
            f",\n{_FIELD_PREFIXES[i]}{_json_value(_discord_value(MESSAGE_FIELDS[i], row[i]))}"
            for i in _DISCORD
        )
        + "\n    }"
    )


def json_tail(messages: int) -> str:
    return "]\n}\n" if messages == 0 else "\n  ]\n}\n"


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_LINE_BREAKS = re.compile(r"\r\n|\r|\u2028|\u2029|\x85")


def visible(text: str) -> str:
    """Line breaks unified and control characters shown as their Unicode pictures (e.g. ␛)."""
    text = _LINE_BREAKS.sub("\n", text)
    return _CONTROL.sub(lambda m: "\u2421" if m[0] == "\x7f" else chr(0x2400 + ord(m[0])), text)


def code_span(text: str) -> str:
    """``text`` as one line of inline code, whatever backticks or line breaks it holds."""
    flat = " ".join(visible(text).split()) or "(empty)"
    fence = "`" * (max((len(run) for run in re.findall(r"`+", flat)), default=0) + 1)
    pad = " " if flat.startswith("`") or flat.endswith("`") else ""
    return f"{fence}{pad}{flat}{pad}{fence}"


def when(at: datetime) -> str:
    return f"{at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"


def markdown_head(session: ExportedSession) -> str:
    channel = session.channel
    where = "DM" if channel.is_dm else "Channel"
    state = "open" if session.is_active else "closed"
    return (
        f"# {where} {code_span(session.stored_channel_name)}, "
        f"session {code_span(session.session_id)}\n\n"
        f"- Bot: {code_span(session.bot_name)}\n"
        f"- {where} id: {code_span(session.stored_channel_id)}\n"
        f"- From {when(session.started_at)} to {when(session.last_activity)}\n"
        f"- Messages: {session.message_count} (session {state})\n"
    )


def author(message: dict[str, Any], bot_name: str) -> str:
    """Who wrote a message: its username, else the bot for its own replies, else the user id."""
    username = str(message["username"] or "").strip()
    if username:
        return username
    return bot_name if message["role"] == "assistant" else f"user {message['user_id']}"


def markdown_message(message: dict[str, Any], bot_name: str) -> str:
    content = visible(str(message["content"]))
    # A fence longer than any backtick run inside can never be closed by the content.
    fence = "`" * max(3, max((len(r) for r in re.findall(r"`+", content)), default=0) + 1)
    return (
        f"\n## {when(message['timestamp'])} · {code_span(author(message, bot_name))}"
        f" ({message['role']})\n\n{fence}text\n{content}\n{fence}\n"
    )
