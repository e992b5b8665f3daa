"""Stored messages made ready for a language model: a token estimate and chat message formats.

Everything here is pure (no I/O) and dependency-free, so a bot can call it on any list of records.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from typing import Any, Literal

from convostore.errors import InvalidInput
from convostore.records import StoredMessage

__all__ = ["estimate_tokens", "to_chat_messages"]

# Runs of ASCII letters, runs of digits, and any other visible character on its own.
_PIECES = re.compile(r"[A-Za-z]+|[0-9]+|\S")


def estimate_tokens(text: str) -> int:
    """A dependency-free estimate of how many tokens ``text`` costs a BPE tokenizer.

    The rule: a run of ASCII letters costs one token per started 4 letters, a run of digits one
    per started 3 digits (tokenizers split numbers in groups of three), and every other visible
    character one token (punctuation, CJK, accented letters), two for characters outside the
    Basic Multilingual Plane (emoji). Whitespace is free (tokenizers glue it to the next word).
    It errs on the high side for English prose (a word of 5-8 letters is often one real token)
    and is never far below what cl100k/o200k-style tokenizers count, so a budget made with it is
    rarely exceeded. Pass ``count_tokens=`` your model's own tokenizer when you have one.
    """
    total = 0
    for piece in _PIECES.findall(text):
        first = piece[0]
        if first.isascii() and first.isalpha():
            total += (len(piece) + 3) // 4
        elif first.isascii() and first.isdigit():
            total += (len(piece) + 2) // 3
        else:
            total += 2 if ord(first) > 0xFFFF else 1
    return total


# OpenAI's ``name`` field: letters, digits, underscores and hyphens, at most 64 characters.
_NAME_LENGTH = 64
_NOT_NAME = re.compile(r"[^A-Za-z0-9_-]+")
_SPACES = re.compile(r"\s+")


def _openai_name(username: str, user_id: str) -> str:
    """``username`` within OpenAI's allowed characters; lossy names keep the user apart by id."""
    folded = unicodedata.normalize("NFKD", username).encode("ascii", "ignore").decode("ascii")
    name = _NOT_NAME.sub("_", folded).strip("_")
    if name == username and name:
        return name[:_NAME_LENGTH]
    # Something was dropped: "Bob!" and "Bob?" must not become one speaker. The user id (decimal,
    # unique) tells them apart and keeps the name stable from one call to the next.
    suffix = f"_{user_id}" if user_id else ""
    if not name:
        return f"user{suffix}"[:_NAME_LENGTH]
    return name[: _NAME_LENGTH - len(suffix)] + suffix


def _prefix_name(username: str, user_id: str) -> str:
    """``username`` as a one-line speaker label: no control characters, no line breaks."""
    # Control and format characters (line breaks, escapes, bidi overrides) could fake a turn.
    visible = "".join(" " if unicodedata.category(c)[0] in "CZ" else c for c in username)
    name = _SPACES.sub(" ", visible).strip()[:_NAME_LENGTH].strip()
    return name or f"user {user_id}"


def _named(record: StoredMessage, name_users: bool) -> bool:
    # A DM has one human speaker; in a channel the model must know who said what.
    return name_users and record.role == "user" and record.channel_type == "channel"


def _openai(records: Iterable[StoredMessage], name_users: bool) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    for record in records:
        message: dict[str, Any] = {"role": record.role, "content": record.content}
        if _named(record, name_users):
            message["name"] = _openai_name(record.username, record.user_id)
        messages.append(message)
    return messages


def _anthropic(records: Iterable[StoredMessage], name_users: bool) -> list[dict[str, Any]]:
    # The Messages API has no system role inside ``messages`` (the bot's own instructions go in
    # its top-level ``system`` parameter) and wants user and assistant turns to alternate, so a
    # stored system message becomes a marked note in the user's turn, and consecutive messages
    # of one role are merged into one turn, one text block per stored message.
    messages: list[dict[str, Any]] = []
    for record in records:
        if record.role == "assistant":
            role, text = "assistant", record.content
        elif record.role == "system":
            role, text = "user", f"[system] {record.content}"
        else:
            role, text = "user", record.content
            if _named(record, name_users):
                text = f"{_prefix_name(record.username, record.user_id)}: {text}"
        block = {"type": "text", "text": text}
        if messages and messages[-1]["role"] == role:
            messages[-1]["content"].append(block)
        else:
            messages.append({"role": role, "content": [block]})
    return messages


def to_chat_messages(
    records: Iterable[StoredMessage],
    *,
    style: Literal["openai", "anthropic"] = "openai",
    name_users: bool = True,
) -> list[dict[str, Any]]:
    """Records (oldest first, as ``history`` returns them) as plain dicts for a chat API.

    ``style="openai"``: one ``{"role", "content"}`` dict per record, roles unchanged. With
    ``name_users``, user messages from channels (not DMs) carry ``name``: the username folded to
    ASCII letters, digits, ``_`` and ``-`` (at most 64); a name that lost characters on the way
    ends with ``_<user_id>`` so two users never share one.

    ``style="anthropic"``: the Messages API's ``messages``: user and assistant turns, consecutive
    messages of one role merged into one turn with one text block each, system records as
    ``[system] …`` notes in the user's turn (put the bot's own instructions in ``system=``).
    With ``name_users``, user messages from channels start with ``username: `` (one line, no
    control characters).
    """
    if style == "openai":
        return _openai(records, name_users)
    if style == "anthropic":
        return _anthropic(records, name_users)
    raise InvalidInput(f"style must be 'openai' or 'anthropic', got {style!r}")
