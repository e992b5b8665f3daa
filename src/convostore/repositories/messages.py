"""Reads and writes of the ``conversations`` table for one bot."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession as AsyncDBSession

from convostore.models import ConversationModel
from convostore.records import StoredMessage

_C = ConversationModel


def to_record(row: ConversationModel) -> StoredMessage:
    return StoredMessage(
        id=row.id,
        bot_name=row.bot_name,
        channel_id=row.channel_id,
        channel_name=row.channel_name,
        channel_type=row.channel_type,
        user_id=row.user_id,
        username=row.username,
        session_id=row.session_id,
        message_id=row.message_id,
        role=row.role,
        content=row.content,
        timestamp=row.timestamp,
        metadata=dict(row.metadata_) if row.metadata_ is not None else None,
    )


class MessageRepository:
    def __init__(self, db_session: AsyncDBSession, bot_name: str) -> None:
        self.db_session = db_session
        self.bot_name = bot_name

    async def by_message_id(self, message_id: str) -> ConversationModel | None:
        result = await self.db_session.scalars(
            select(_C).where(_C.bot_name == self.bot_name, _C.message_id == message_id)
        )
        return result.first()

    async def add(
        self,
        *,
        channel_id: str,
        channel_name: str,
        channel_type: str,
        user_id: str,
        username: str,
        session_id: str,
        message_id: str,
        role: str,
        content: str,
        timestamp: datetime,
        metadata: dict[str, Any] | None,
    ) -> ConversationModel:
        row = ConversationModel(
            bot_name=self.bot_name,
            channel_id=channel_id,
            channel_name=channel_name,
            channel_type=channel_type,
            user_id=user_id,
            username=username,
            session_id=session_id,
            message_id=message_id,
            role=role,
            content=content,
            timestamp=timestamp,
            metadata_=metadata,
        )
        self.db_session.add(row)
        await self.db_session.flush()
        return row

    async def newest(
        self,
        channel_id: str,
        limit: int,
        *,
        user_id: str | None = None,
        session_id: str | None = None,
    ) -> Sequence[ConversationModel]:
        """The newest ``limit`` messages of the channel, newest first (one index range scan)."""
        query = select(_C).where(_C.bot_name == self.bot_name, _C.channel_id == channel_id)
        if user_id is not None:
            query = query.where(_C.user_id == user_id)
        if session_id is not None:
            query = query.where(_C.session_id == session_id)
        result = await self.db_session.scalars(
            query.order_by(_C.timestamp.desc(), _C.id.desc()).limit(limit)
        )
        return result.all()
