"""The import rules of legacy records, shared by the importer and the read fallback.

:func:`legacy_rows` routes each record of a parsed file to its bots (rules 1-3), converts its time
to UTC (rule 6) and gives it a message id (rule 9); :class:`LegacyNames` says which channel name
and username a row gets. The importer stages what they yield and dedupes it per channel (rule 7);
the read fallback (:mod:`convostore.legacy.transition`) does the same in memory, so a bot reading
a channel that is not imported yet sees what the import will store.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from convostore.legacy.reader import Conversation, LegacyFile, LegacyRecord, ParsedFile

SOURCE = "legacy"
"""The ``source`` of every imported row."""
UNATTRIBUTABLE = "unattributable"
CHANNEL_TYPE = "channel"
"""The ``channel_type`` of every imported row: the legacy files do not say which were DMs."""


def channel_placeholder(channel_id: str) -> str:
    """The name an imported channel gets when no legacy file named it."""
    return f"channel-{channel_id}"


def user_placeholder(user_id: str) -> str:
    """The username an imported user gets when no legacy file named them."""
    return f"user-{user_id}"


def synthetic_message_id(channel_id: str, user_id: str, role: str, content: str, at: str) -> str:
    """A deterministic id for a record without a Discord id.

    Equal records (same channel, user, role, content and instant) get the same id, so they collapse
    into one row and a second import adds nothing. The value lies in [2**126, 2**127): never a
    Discord snowflake (< 2**64) nor an id the store generates for live messages (>= 2**127).
    """
    digest = hashlib.sha256("\x1f".join((channel_id, user_id, role, content, at)).encode()).digest()
    return str((int.from_bytes(digest[:16], "big") >> 2) | (1 << 126))


def legacy_zone(name: str) -> tzinfo:
    """The zone naive legacy times are read in (``datetime.UTC`` itself for UTC: a fast path)."""
    zone = ZoneInfo(name)
    return UTC if zone.key in ("UTC", "Etc/UTC") else zone


def to_utc(value: datetime, zone: tzinfo) -> datetime:
    """Aware values convert; naive ones are wall-clock time in ``zone`` (``fold=0`` at DST gaps)."""
    if value.tzinfo is None or value.utcoffset() is None:
        value = value.replace(tzinfo=zone)
    return value.astimezone(UTC)


def utc_text(value: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SS.ffffff`` of an aware time in UTC: sorts as the instants do."""
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds")


def stored_time(value: datetime, zone: tzinfo) -> str:
    """Rule 6: :func:`utc_text` of a legacy time, naive ones read in ``zone``."""
    if zone is UTC and value.tzinfo is None:
        return value.isoformat(timespec="microseconds")
    return utc_text(to_utc(value, zone))


def conversation_bots(conversation: Conversation) -> list[str]:
    """Rule 2: the bots of a shared conversation, its participants and every bot that answered."""
    answered = (r.bot_name for r in conversation.records if r.role == "assistant" and r.bot_name)
    return list(dict.fromkeys([*conversation.participants, *answered]))


def route(file: LegacyFile, shared_bots: list[str], record: LegacyRecord) -> list[str]:
    """The bots a record goes to (rules 1-3); empty when it is unattributable."""
    if file.bot is not None:
        return [file.bot]
    if record.role == "assistant":
        return [record.bot_name] if record.bot_name else []
    return shared_bots


class LegacyRow(NamedTuple):
    """One legacy record routed to one bot and converted; ``at`` is :func:`utc_text`."""

    bot: str
    message_id: str
    channel_id: str
    user_id: str
    role: str
    content: str
    at: str
    metadata: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class Unattributable:
    """A record no bot takes (no participants, no ``bot_name``)."""

    where: str
    index: int


class LegacyNames:
    """The names the tree gives: a channel's first name seen, a user's first name as a user.

    Every row of a conversation gets the name of the conversation's user, whoever wrote it (the
    bot's replies too); a channel or user the tree never names gets a placeholder naming its id.
    """

    def __init__(self) -> None:
        self.channels: dict[str, str] = {}
        self.users: dict[str, str] = {}

    def see(self, conversation: Conversation, record: LegacyRecord) -> None:
        if record.channel_name:
            self.channels.setdefault(conversation.channel_id, record.channel_name)
        if record.username and record.role == "user":
            self.users.setdefault(conversation.user_id, record.username)

    def channel(self, channel_id: str) -> str:
        return self.channels.get(channel_id) or channel_placeholder(channel_id)

    def user(self, user_id: str) -> str:
        return self.users.get(user_id) or user_placeholder(user_id)


ZoneFor = Callable[[str, LegacyRecord], "tzinfo | None"]
"""``zone_for(bot, record)``: the zone of the bot's naive times, or None to leave the bot out."""


def legacy_rows(
    parsed: ParsedFile, zone_for: ZoneFor, names: LegacyNames
) -> Iterator[LegacyRow | Unattributable]:
    """The rows a parsed file gives, one per record and bot, in file order (rules 1-3, 6, 9).

    Names are collected from every record a bot takes, into ``names``, before its rows.
    """
    file = parsed.file
    for conversation in parsed.conversations:
        shared_bots = conversation_bots(conversation)
        channel_id, user_id = conversation.channel_id, conversation.user_id
        for record in conversation.records:
            bots = route(file, shared_bots, record)
            if not bots:
                yield Unattributable(conversation.where, record.index)
                continue
            names.see(conversation, record)
            for bot in bots:
                zone = zone_for(bot, record)
                if zone is None:
                    continue
                at = stored_time(record.timestamp, zone)
                message_id = record.message_id or synthetic_message_id(
                    channel_id, user_id, record.role, record.content, at
                )
                yield LegacyRow(
                    bot,
                    message_id,
                    channel_id,
                    user_id,
                    record.role,
                    record.content,
                    at,
                    record.metadata,
                )
