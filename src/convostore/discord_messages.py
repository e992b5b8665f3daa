"""What a ``discord.Message`` says, as the keywords of ``BotStore.add_message``.

Read by attribute, never by importing discord.py: whoever holds a message has imported it already,
and objects with the same attributes work too. The rules:

* ``role`` is ``assistant`` when the author is this bot's own user (the client's user, which
  discord.py keeps on the message's connection state and on ``channel.me`` / ``guild.me``),
  else ``user``; ``author_is_bot`` is the author's ``bot`` flag (this bot or another one).
* ``reply_to_message_id`` is the referenced message of a reply (``MessageType.reply``); the
  references of forwards, pins and thread starters are not replies.
* ``attachments`` keep ``id``, ``filename``, ``url``, ``content_type`` and ``size``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from convostore.errors import InvalidInput

_REPLY = 19  # discord.MessageType.reply
_DEFAULT_REFERENCE = 0  # discord.MessageReferenceType.default (not a forward)


def own_user_id(message: object) -> int | None:
    """The id of the bot's own user as the message knows it, ``None`` if it does not."""
    # The connection state's user is the logged-in ClientUser, set before any message arrives;
    # channel.me (DMs, groups) and guild.me (guilds, when members are cached) are the public views.
    candidates = (
        getattr(getattr(message, "_state", None), "user", None),
        getattr(getattr(message, "channel", None), "me", None),
        getattr(getattr(message, "guild", None), "me", None),
    )
    for user in candidates:
        user_id = getattr(user, "id", None)
        if isinstance(user_id, int) and not isinstance(user_id, bool):
            return user_id
    return None


def _value(enum_member: object) -> object:
    return getattr(enum_member, "value", enum_member)


def _reply_to(message: object) -> int | None:
    reference = getattr(message, "reference", None)
    if reference is None or _value(getattr(message, "type", None)) != _REPLY:
        return None
    if _value(getattr(reference, "type", _DEFAULT_REFERENCE)) != _DEFAULT_REFERENCE:
        return None
    message_id = getattr(reference, "message_id", None)
    return message_id if isinstance(message_id, int) else None


def _attachments(message: object) -> list[dict[str, Any]]:
    return [
        {
            "id": getattr(item, "id", None),
            "filename": getattr(item, "filename", None),
            "url": getattr(item, "url", None),
            "content_type": getattr(item, "content_type", None),
            "size": getattr(item, "size", None),
        }
        for item in getattr(message, "attachments", None) or ()
    ]


def message_keywords(message: object, *, role: str | None = None) -> dict[str, Any]:
    """``add_message``'s keywords (all but the channel) for a ``discord.Message``."""
    author = getattr(message, "author", None)
    author_id = getattr(author, "id", None)
    message_id = getattr(message, "id", None)
    created = getattr(message, "created_at", None)
    if author_id is None or message_id is None or not isinstance(created, datetime):
        raise InvalidInput(
            f"not a discord.py message: {type(message).__name__} lacks an author, id or created_at"
        )
    if role is None:
        own = own_user_id(message)
        role = "assistant" if own is not None and author_id == own else "user"
    name = getattr(author, "name", None)
    content = getattr(message, "content", None)
    return {
        "user_id": author_id,
        "username": name if isinstance(name, str) else "",
        "role": role,
        "content": content if isinstance(content, str) else "",
        "message_id": message_id,
        "timestamp": created,
        "reply_to_message_id": _reply_to(message),
        "attachments": _attachments(message),
        "edited_at": getattr(message, "edited_at", None),
        "author_is_bot": bool(getattr(author, "bot", False)),
    }
