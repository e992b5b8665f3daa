"""Edits, revisions and deletes of one bot's messages (``conversations``, ``message_revisions``).

Plain ``UPDATE`` and ``DELETE`` statements on ``conversations``, so that anything kept in step by
triggers (a full-text index) follows. Revisions are deleted explicitly before their messages: the
foreign key's cascade would do it too, but only on connections with SQLite's foreign keys on.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    ScalarSelect,
    Table,
    bindparam,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Connection

from convostore.models import ChatSessionModel, ConversationModel, MessageRevisionModel
from convostore.records import MessageRevision

_C = cast(Table, ConversationModel.__table__)
_R = cast(Table, MessageRevisionModel.__table__)
_S = cast(Table, ChatSessionModel.__table__)
# Ids per statement: well under SQLite's bound-parameter limit, and short IN lists for PostgreSQL.
CHUNK = 500

_EDIT = (
    update(_C)
    .where(_C.c.id == bindparam("row_id"))
    .values(content=bindparam("new_content"), edited_at=bindparam("new_edited_at"))
)
_ADD_REVISION = insert(_R)
_REVISIONS = (
    select(_C.c.message_id, _R.c.content, _R.c.edited_at, _R.c.replaced_at)
    .join(_C, _C.c.id == _R.c.conversation_id)
    .where(_C.c.bot_name == bindparam("bot"), _C.c.message_id == bindparam("message_id"))
    .order_by(_R.c.id)
)
_ROW_IDS = select(_C.c.id).where(
    _C.c.bot_name == bindparam("bot"), _C.c.message_id.in_(bindparam("ids", expanding=True))
)
_DELETE_REVISIONS = delete(_R).where(_R.c.conversation_id.in_(_ROW_IDS.scalar_subquery()))
_DELETE_MESSAGES = (
    delete(_C)
    .where(_C.c.bot_name == bindparam("bot"), _C.c.message_id.in_(bindparam("ids", expanding=True)))
    .returning(_C.c.channel_id, _C.c.session_id)
)
# Decrement rather than recount: on PostgreSQL a concurrent writer that counted a message in the
# same session holds the row until it commits, and the decrement then applies to its count.
_UNCOUNT = (
    update(_S)
    .where(
        _S.c.bot_name == bindparam("bot"),
        _S.c.channel_id == bindparam("channel"),
        _S.c.session_id == bindparam("sid"),
    )
    .values(message_count=_S.c.message_count - bindparam("n"))
    .returning(_S.c.message_count)
)
_DROP_EMPTY = delete(_S).where(
    _S.c.bot_name == bindparam("bot"),
    _S.c.channel_id == bindparam("channel"),
    _S.c.session_id == bindparam("sid"),
    _S.c.message_count == 0,
    ~select(_C.c.id)
    .where(
        _C.c.bot_name == _S.c.bot_name,
        _C.c.channel_id == _S.c.channel_id,
        _C.c.session_id == _S.c.session_id,
    )
    .exists(),
)


def chunks(values: Sequence[str]) -> Iterator[list[str]]:
    for start in range(0, len(values), CHUNK):
        yield list(values[start : start + CHUNK])


class LifecycleRepository:
    """Edits and deletes of one bot's messages; it executes, never commits."""

    def __init__(self, connection: Connection, bot_name: str) -> None:
        self.connection = connection
        self.bot_name = bot_name

    def edit(
        self,
        row_id: int,
        *,
        old_content: str,
        old_edited_at: datetime | None,
        content: str,
        edited_at: datetime,
    ) -> None:
        """Keep the current version as a revision and replace it with ``content``."""
        self.connection.execute(
            _ADD_REVISION,
            {
                "conversation_id": row_id,
                "content": old_content,
                "edited_at": old_edited_at,
                "replaced_at": edited_at,
            },
        )
        self.connection.execute(
            _EDIT, {"row_id": row_id, "new_content": content, "new_edited_at": edited_at}
        )

    def revisions(self, message_id: str) -> list[MessageRevision]:
        rows = self.connection.execute(_REVISIONS, {"bot": self.bot_name, "message_id": message_id})
        return [MessageRevision(*row) for row in rows]

    def delete(self, message_ids: Sequence[str]) -> int:
        """Delete the messages (and their revisions); keep their sessions' counts exact.

        A session left without messages is deleted too. Returns the messages deleted.
        """
        touched: dict[tuple[str, str], int] = {}
        for chunk in chunks(message_ids):
            params = {"bot": self.bot_name, "ids": chunk}
            self.connection.execute(_DELETE_REVISIONS, params)
            for channel_id, session_id in self.connection.execute(_DELETE_MESSAGES, params):
                key = (channel_id, session_id)
                touched[key] = touched.get(key, 0) + 1
        self.uncount(touched)
        return sum(touched.values())

    def forget(self, user_id: str) -> int:
        """Erase :func:`user_data`'s rows and the username from the names of shared DMs."""
        data = user_data(self.connection, self.bot_name, user_id)
        erased = self.delete(data.message_ids)
        if data.group_dms and data.usernames:
            names = set(data.usernames)
            for channel_id, name in self.connection.execute(
                _DM_NAMES, {"bot": self.bot_name, "channels": data.group_dms}
            ).all():
                renamed = _without(name, names)
                if renamed != name:
                    self.connection.execute(
                        _RENAME,
                        {
                            "bot": self.bot_name,
                            "channel": channel_id,
                            "old_name": name,
                            "new_name": renamed,
                        },
                    )
        return erased

    def uncount(self, removed: dict[tuple[str, str], int]) -> None:
        """Take ``removed[(channel, session)]`` messages off each session; drop emptied ones."""
        for (channel_id, session_id), n in sorted(removed.items()):
            params = {"bot": self.bot_name, "channel": channel_id, "sid": session_id}
            left = self.connection.execute(_UNCOUNT, {**params, "n": n}).scalar()
            if left == 0:
                self.connection.execute(_DROP_EMPTY, params)


# One pass over the user's rows (idx_conversations_bot_user_time): their ids and channels.
_USER_ROWS = select(_C.c.message_id, _C.c.channel_id, _C.c.channel_type).where(
    _C.c.bot_name == bindparam("bot"), _C.c.user_id == bindparam("user")
)
# A DM named after the user ({username}_{user_id}) is theirs even if only the bot wrote in it.
# Every row of a DM carries the channel's one name, so the newest row of each of the bot's
# channels (listed from its sessions, one index probe each) tells: no scan of the messages.
_BOT_CHANNELS = (
    select(_S.c.channel_id).where(_S.c.bot_name == bindparam("bot")).distinct().subquery()
)


def _newest(column: ColumnElement[Any]) -> ScalarSelect[Any]:
    return (
        select(column)
        .where(_C.c.bot_name == bindparam("bot"), _C.c.channel_id == _BOT_CHANNELS.c.channel_id)
        .order_by(_C.c.timestamp.desc(), _C.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )


_NAMED_DM_CHANNELS = select(_BOT_CHANNELS.c.channel_id).where(
    _newest(_C.c.channel_type) == "dm",
    _newest(_C.c.channel_name).endswith(bindparam("suffix"), escape="\\"),
)
# Another human in a DM channel (a group DM): its rows are not the user's to erase.
_OTHER_HUMAN = (
    select(_C.c.id)
    .where(
        _C.c.bot_name == bindparam("bot"),
        _C.c.channel_id == bindparam("channel"),
        _C.c.user_id != bindparam("user"),
        _C.c.role == "user",
        _C.c.author_is_bot.is_(False),
    )
    .limit(1)
)
_CHANNEL_MESSAGE_IDS = select(_C.c.message_id).where(
    _C.c.bot_name == bindparam("bot"), _C.c.channel_id == bindparam("channel")
)
_USERNAMES = (
    select(_C.c.username)
    .where(_C.c.bot_name == bindparam("bot"), _C.c.user_id == bindparam("user"))
    .distinct()
)
_DM_NAMES = (
    select(_C.c.channel_id, _C.c.channel_name)
    .where(
        _C.c.bot_name == bindparam("bot"),
        _C.c.channel_id.in_(bindparam("channels", expanding=True)),
    )
    .distinct()
)
_RENAME = (
    update(_C)
    .where(
        _C.c.bot_name == bindparam("bot"),
        _C.c.channel_id == bindparam("channel"),
        _C.c.channel_name == bindparam("old_name"),
    )
    .values(channel_name=bindparam("new_name"))
)
ERASED_NAME = "deleted-user"
"""What replaces an erased user's username in the names of group DMs that remain."""


@dataclass(frozen=True)
class UserData:
    """What this bot stores about one user: the rows :meth:`BotStore.forget_user` erases."""

    message_ids: list[str]
    """The user's messages everywhere, and every message of their own DM channels."""
    dm_channels: list[str]
    """The user's own DM channels (erased entirely, the bot's replies too)."""
    group_dms: list[str]
    """DM channels shared with other people (only the user's messages there are erased)."""
    usernames: list[str]


def user_data(connection: Connection, bot_name: str, user_id: str) -> UserData:
    """Find everything this bot stores about ``user_id`` (one consistent read in the caller's
    transaction)."""
    params = {"bot": bot_name, "user": user_id}
    ids: set[str] = set()
    dms: set[str] = set()
    for message_id, channel_id, channel_type in connection.execute(_USER_ROWS, params):
        ids.add(message_id)
        if channel_type == "dm":
            dms.add(channel_id)
    own, shared = [], []
    dms.update(
        connection.execute(_NAMED_DM_CHANNELS, {**params, "suffix": f"\\_{user_id}"}).scalars()
    )
    for channel_id in sorted(dms):
        if connection.execute(_OTHER_HUMAN, {**params, "channel": channel_id}).first() is None:
            own.append(channel_id)
            ids.update(
                connection.execute(
                    _CHANNEL_MESSAGE_IDS, {**params, "channel": channel_id}
                ).scalars()
            )
        else:
            shared.append(channel_id)
    usernames = sorted(set(connection.execute(_USERNAMES, params).scalars()) - {""})
    return UserData(sorted(ids), own, shared, usernames)


def _without(name: str, usernames: set[str]) -> str:
    # Group DMs are named after their members' usernames joined with ", " (ChannelInfo).
    parts = name.split(", ")
    return ", ".join(ERASED_NAME if part in usernames else part for part in parts)


def count_rows(connection: Connection, bot_name: str) -> int:
    """This bot's messages (for tests and the CLI's dry runs)."""
    return int(
        connection.execute(
            select(func.count()).select_from(_C).where(_C.c.bot_name == bot_name)
        ).scalar_one()
    )
