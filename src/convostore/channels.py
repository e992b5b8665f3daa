"""Channels as the store sees them, and the file-name-safe form of a channel.

A :class:`ChannelInfo` keeps the channel name exactly as Discord sent it, because that is what
people recognise when they browse their history. Discord puts almost no limits on names: they can be
empty, emoji-only, 300 characters long, ``../..``, ``CON`` or full of control and bidirectional
characters. Backups, exports and the legacy JSON layout turn channels into file and folder names, so
:attr:`ChannelInfo.safe_name` derives one path component from the name and the id. Its rules, and
why each one exists:

* **The id is always the suffix, after the last ``_``.** Ids are digits only and names never end in
  ``_``, so two different ids can never give the same safe name, not even on case-insensitive or
  normalisation-insensitive file systems (Windows, macOS) where ``General`` and ``general`` are the
  same file. It also makes every safe name end in a digit, so it is never empty, ``.`` or ``..``,
  never ends in the dot or space that Windows silently drops, and never has a reserved stem such as
  ``CON`` or ``LPT1`` (checked once more in code, because Windows opens the device instead of the
  file).
* **NFKC first, then letters and digits only.** NFKC folds the composed and decomposed forms of
  ``é`` into one, and the full-width and "bold" mathematical letters popular in channel names into
  plain ones, so a name that looks the same gives the same file name. After it, every character
  that is not a letter or digit (``str.isalnum``) besides ``-`` and ``_`` becomes ``-``. That
  removes path separators, the characters Windows forbids (``<>:"|?*``), control and format
  characters (zero-width joiners, right-to-left overrides that make a name display reversed), the
  invisible Hangul fillers used for "blank" names, and emoji, which some tools and file systems
  still mangle. Combining marks are kept after a letter, so scripts such as Devanagari stay
  readable instead of being cut into pieces.
* **Runs of separators collapse and the ends are trimmed**, so ``"my  cool / channel"`` reads
  ``my-cool-channel`` rather than ``my--cool---channel``. A name with nothing left falls back to
  ``channel`` or ``dm``; the id keeps it unique.
* **Length is bounded in bytes, not characters.** Linux limits a component to 255 bytes of UTF-8 and
  macOS (HFS+) to 255 UTF-16 units of the *decomposed* form, so the name part is cut on a character
  boundary until its decomposed UTF-8 size fits, which bounds all of them. The whole safe name stays
  within :data:`MAX_SAFE_NAME_BYTES` (240) to leave room for an extension such as ``.json``.
* **No randomness and no hashing**: the same channel always maps to the same file, across
  processes, machines and versions, so exports and backups can be found again.
"""

from __future__ import annotations

import sys
import unicodedata
from dataclasses import dataclass
from typing import Literal

from convostore.errors import InvalidInput

ChannelType = Literal["channel", "dm"]
_CHANNEL_TYPES = ("channel", "dm")

MAX_SAFE_NAME_BYTES = 240
"""Upper bound of ``len(safe_name.encode("utf-8"))``; 15 bytes below the usual 255-byte limit."""

_MAX_NAME_PART_BYTES = 200
_MAX_ID_LENGTH = 64
_SEPARATORS = "-_"
WINDOWS_RESERVED = frozenset(
    {"CON", "PRN", "AUX", "NUL"}
    | {f"COM{n}" for n in "0123456789¹²³"}
    | {f"LPT{n}" for n in "0123456789¹²³"}
)
"""Device names Windows reserves in any folder, with or without an extension (upper case)."""

# discord.ChannelType values (fixed by the Discord API). Compared by value so that this module
# never imports discord.py, and so that minimal stand-ins with a ``type`` attribute work too.
_GUILD_CHANNEL_TYPES = frozenset(
    {
        0,  # text
        2,  # voice (its text chat)
        5,  # news / announcement
        10,  # news_thread
        11,  # public_thread
        12,  # private_thread
        13,  # stage_voice (its text chat)
        15,  # forum
        16,  # media
    }
)
_THREAD_TYPES = frozenset({10, 11, 12})  # news_thread, public_thread, private_thread
_DM_TYPE = 1  # private
_GROUP_TYPE = 3  # group

# Unicode's Default_Ignorable_Code_Point ranges: invisible in file managers and terminals. A few are
# letters or combining marks to str.isalnum / unicodedata (the Hangul fillers that Discord users put
# in "blank" names, variation selectors), so they are excluded by code point.
_INVISIBLE_RANGES = (
    (0x00AD, 0x00AD),
    (0x034F, 0x034F),
    (0x061C, 0x061C),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x206F),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0),
    (0xFFF0, 0xFFF8),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
)

UNKNOWN_DM_USER = "unknown_user"
"""Username used for a DM whose recipient discord.py does not know (see :meth:`from_discord`)."""
UNKNOWN_DM_USER_ID = "unknown"
UNNAMED_GROUP = "unnamed_group"
UNKNOWN_DM_NAME = f"{UNKNOWN_DM_USER}_{UNKNOWN_DM_USER_ID}"
"""The name of a DM whose human the message cannot tell; the store keeps the name it knows."""


def decimal_id(value: object, what: str) -> str:
    """A Discord id (int or decimal string) as its decimal string; ``what`` names it in errors."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise InvalidInput(f"{what} must be an int or a decimal string, not {type(value).__name__}")
    text = str(value).strip()
    if not text or not text.isascii() or not text.isdigit() or len(text) > _MAX_ID_LENGTH:
        raise InvalidInput(f"{what} must be a non-empty decimal id, got {str(value)[:40]!r}")
    return text


def _is_invisible(char: str) -> bool:
    point = ord(char)
    return any(low <= point <= high for low, high in _INVISIBLE_RANGES)


def _component_cost(char: str) -> int:
    # The larger of the stored (composed) and the macOS (decomposed) UTF-8 size; UTF-16 units are
    # never more than UTF-8 bytes, so this bounds every file system's notion of length.
    return max(len(char.encode("utf-8")), len(unicodedata.normalize("NFD", char).encode("utf-8")))


def _readable_part(name: str) -> str:
    chars: list[str] = []
    for char in unicodedata.normalize("NFKC", name):
        if _is_invisible(char):
            chars.append("-")
        elif char.isalnum() or char in _SEPARATORS:
            chars.append(char)
        elif unicodedata.category(char).startswith("M") and chars and chars[-1] not in _SEPARATORS:
            chars.append(char)  # a combining mark belongs to the letter before it
        else:
            chars.append("-")
    # Collapse each run of separators: only underscores stay one "_", any mixture becomes "-".
    collapsed: list[str] = []
    run = ""
    for char in [*chars, ""]:
        if char in _SEPARATORS and char:
            run += char
            continue
        if run:
            collapsed.append("_" if set(run) == {"_"} else "-")
            run = ""
        collapsed.append(char)
    return "".join(collapsed).strip(_SEPARATORS)


def _truncate(text: str, budget: int) -> str:
    used = 0
    for index, char in enumerate(text):
        used += _component_cost(char)
        if used > budget:
            return text[:index].rstrip(_SEPARATORS)
    return text


def is_windows_reserved(component: str) -> bool:
    """Whether a path component names a Windows device (``con``, ``COM1.txt``, ``nul .x`` …)."""
    stem = component.split(".", 1)[0].rstrip(" ")
    return stem.upper() in WINDOWS_RESERVED


def _channel_type_value(kind: object) -> int | None:
    # Only a discord.ChannelType will do: a Message also has an int-valued ``type`` (MessageType).
    # Looked up, not imported: whoever holds a discord.py object has imported discord already, and
    # importing it here would cost start-up time (and a DeprecationWarning) to every other user.
    channel_type = getattr(sys.modules.get("discord"), "ChannelType", None)
    if channel_type is None or not isinstance(kind, channel_type):
        return None
    value = getattr(kind, "value", None)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _user_name(user: object) -> str:
    name = getattr(user, "name", None)
    return name if isinstance(name, str) else ""


@dataclass(frozen=True, slots=True)
class ChannelInfo:
    """A Discord channel (or DM) that messages are stored under.

    ``id`` is the channel id as a decimal string, ``name`` the name exactly as given (a DM is named
    ``{username}_{user_id}``), ``type`` is ``"channel"`` or ``"dm"``, ``parent_id`` the parent
    channel of a thread (``None`` otherwise). Build one with
    :meth:`channel`, :meth:`dm` or :meth:`from_discord`, which validate the id.
    """

    id: str
    name: str
    type: ChannelType
    parent_id: str | None = None
    """A thread's parent channel (decimal id); ``None`` for anything that is not a thread."""

    def __post_init__(self) -> None:
        # Checked here, not only in the factories, so that a bad channel fails where it is built
        # rather than as a constraint violation in the database.
        identifier = decimal_id(self.id, "channel id")
        if identifier != self.id:
            object.__setattr__(self, "id", identifier)
        if self.type not in _CHANNEL_TYPES:
            raise InvalidInput(f"channel type must be 'channel' or 'dm', got {self.type!r}")
        if not isinstance(self.name, str):
            raise InvalidInput(f"channel name must be a str, not {type(self.name).__name__}")
        if self.parent_id is not None:
            parent = decimal_id(self.parent_id, "parent_id")
            if parent != self.parent_id:
                object.__setattr__(self, "parent_id", parent)

    @property
    def is_dm(self) -> bool:
        """True for direct messages and group DMs."""
        return self.type == "dm"

    @property
    def safe_name(self) -> str:
        """One file-name component for this channel, e.g. ``general_123`` or ``alice_42_456``.

        Stable, readable, at most :data:`MAX_SAFE_NAME_BYTES` bytes, and different for different
        ids; see the module docstring for the rules.
        """
        budget = min(_MAX_NAME_PART_BYTES, MAX_SAFE_NAME_BYTES - 1 - len(self.id.encode("utf-8")))
        readable = _truncate(_readable_part(self.name), budget) or self.type
        result = f"{readable}_{self.id}"
        if is_windows_reserved(result):  # cannot happen with the id suffix; kept as a guard
            result = f"_{result}"
        return result

    @classmethod
    def channel(cls, channel_id: int | str, name: str | None) -> ChannelInfo:
        """A guild text channel, thread, or the text chat of a voice or stage channel."""
        return cls(decimal_id(channel_id, "channel_id"), name or "", "channel")

    @classmethod
    def dm(cls, channel_id: int | str, user_id: int | str, username: str | None) -> ChannelInfo:
        """A direct message channel, named ``{username}_{user_id}`` (``alice_42``)."""
        channel = decimal_id(channel_id, "channel_id")
        user = decimal_id(user_id, "user_id")
        return cls(channel, f"{username or ''}_{user}", "dm")

    @classmethod
    def from_discord(cls, channel: object, *, recipient: object | None = None) -> ChannelInfo:
        """Describe a discord.py channel (``message.channel``).

        Dispatches on ``channel.type`` (a :class:`discord.ChannelType`), so any object with the
        same attributes works:

        * text, news, voice, stage, forum and media channels and all threads become ``"channel"``
          with the channel's ``name``; a thread's ``parent_id`` is its parent channel;
        * a :class:`discord.DMChannel` becomes :meth:`dm` with the recipient's id and username.
          discord.py builds the channel of an incoming DM without its recipient, so in
          ``on_message`` ``channel.recipient`` is usually ``None``: use :meth:`from_message`
          there, which names the DM after the human author. Without any recipient the name is
          ``unknown_user_unknown``; the channel id still identifies the conversation;
        * a :class:`discord.GroupChannel` becomes ``"dm"`` named after the group, else after its
          recipients' usernames joined with ``", "``, else ``unnamed_group``.

        Anything else (a category, a guild, a message, an unknown or missing type) raises
        :class:`~convostore.errors.InvalidInput`. ``recipient`` is only used for a DM channel that
        has none of its own.
        """
        kind = getattr(channel, "type", None)
        value = _channel_type_value(kind)
        if value is None:
            hint = " (pass message.channel)" if hasattr(channel, "channel") else ""
            raise InvalidInput(f"not a discord.py channel: {type(channel).__name__}{hint}")
        channel_id = getattr(channel, "id", None)
        if not isinstance(channel_id, int | str):
            raise InvalidInput(f"not a discord.py channel: {type(channel).__name__} has no id")

        if value in _GUILD_CHANNEL_TYPES:
            name = getattr(channel, "name", None)
            info = cls.channel(channel_id, name if isinstance(name, str) else "")
            parent_id = getattr(channel, "parent_id", None)
            if value in _THREAD_TYPES and isinstance(parent_id, int | str):
                return cls(info.id, info.name, info.type, decimal_id(parent_id, "parent_id"))
            return info
        if value == _DM_TYPE:
            user = getattr(channel, "recipient", None) or recipient
            user_id = getattr(user, "id", None)
            if user is None or not isinstance(user_id, int | str):
                return cls(decimal_id(channel_id, "channel_id"), UNKNOWN_DM_NAME, "dm")
            return cls.dm(channel_id, user_id, _user_name(user))
        if value == _GROUP_TYPE:
            name = getattr(channel, "name", None)
            if not (isinstance(name, str) and name):
                members = getattr(channel, "recipients", None) or []
                names = [_user_name(user) for user in members]
                name = ", ".join(filter(None, names)) or UNNAMED_GROUP
            return cls(decimal_id(channel_id, "channel_id"), name, "dm")
        raise InvalidInput(
            f"cannot store messages of a {getattr(kind, 'name', value)} channel "
            f"({type(channel).__name__})"
        )

    @classmethod
    def from_message(cls, message: object) -> ChannelInfo:
        """Describe the channel of a discord.py message (``on_message``, ``channel.history()``).

        As :meth:`from_discord`, and a DM is named after its human whenever the message can
        tell: the channel's recipient, or else the author when the author is not the bot itself
        (discord.py's own user, ``channel.me``). A bot's reply in a DM whose channel has no
        recipient cannot tell and gets ``unknown_user_unknown``;
        :meth:`BotStore.add_discord_message` then keeps the name the channel's earlier rows
        carry. A thread keeps its parent channel in :attr:`parent_id`.
        """
        channel = getattr(message, "channel", None)
        if channel is None:
            raise InvalidInput(f"not a discord.py message: {type(message).__name__}")
        if _channel_type_value(getattr(channel, "type", None)) != _DM_TYPE:
            return cls.from_discord(channel)
        if getattr(channel, "recipient", None) is not None:
            return cls.from_discord(channel)
        author = getattr(message, "author", None)
        me = getattr(getattr(channel, "me", None), "id", None)
        if me is None:
            me = getattr(getattr(getattr(message, "_state", None), "user", None), "id", None)
        author_id = getattr(author, "id", None)
        if author_id is None or (me is not None and author_id == me):
            return cls.from_discord(channel)
        if me is None and getattr(author, "bot", False):
            return cls.from_discord(channel)  # without knowing the bot, a bot author is no human
        return cls.from_discord(channel, recipient=author)


__all__ = ["MAX_SAFE_NAME_BYTES", "ChannelInfo", "ChannelType"]
