"""Edits, revisions and deletes of one bot's messages (``conversations``, ``message_revisions``).

Plain ``UPDATE`` and ``DELETE`` statements on ``conversations``, so that anything kept in step by
triggers (a full-text index) follows. Revisions are deleted explicitly before their messages: the
foreign key's cascade would do it too, but only on connections with SQLite's foreign keys on.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import cast

from sqlalchemy import Table, bindparam, delete, func, insert, select, update
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

    def uncount(self, removed: dict[tuple[str, str], int]) -> None:
        """Take ``removed[(channel, session)]`` messages off each session; drop emptied ones."""
        for (channel_id, session_id), n in sorted(removed.items()):
            params = {"bot": self.bot_name, "channel": channel_id, "sid": session_id}
            left = self.connection.execute(_UNCOUNT, {**params, "n": n}).scalar()
            if left == 0:
                self.connection.execute(_DROP_EMPTY, params)


def count_rows(connection: Connection, bot_name: str) -> int:
    """This bot's messages (for tests and the CLI's dry runs)."""
    return int(
        connection.execute(
            select(func.count()).select_from(_C).where(_C.c.bot_name == bot_name)
        ).scalar_one()
    )
