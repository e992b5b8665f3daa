"""Reads and writes of the ``sessions`` table for one bot."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import and_, case, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession as AsyncDBSession

from convostore.models import ChatSessionModel
from convostore.records import ChatSession

_S = ChatSessionModel


def to_record(row: ChatSessionModel) -> ChatSession:
    return ChatSession(
        session_id=row.session_id,
        channel_id=row.channel_id,
        started_at=row.started_at,
        last_activity=row.last_activity,
        message_count=row.message_count,
        is_active=row.is_active,
    )


class SessionRepository:
    def __init__(self, db_session: AsyncDBSession, bot_name: str) -> None:
        self.db_session = db_session
        self.bot_name = bot_name

    async def open_session(self, channel_id: str) -> ChatSessionModel | None:
        """The session of ``channel_id`` that is open in the database, if any."""
        result = await self.db_session.scalars(
            select(_S).where(
                _S.bot_name == self.bot_name, _S.channel_id == channel_id, _S.is_active.is_(True)
            )
        )
        return result.first()

    async def ids_like(self, channel_id: str, base: str) -> set[str]:
        """Session ids of the channel equal to ``base`` or suffixed ``base-N``."""
        result = await self.db_session.scalars(
            select(_S.session_id).where(
                _S.bot_name == self.bot_name,
                _S.channel_id == channel_id,
                or_(_S.session_id == base, _S.session_id.startswith(f"{base}-", autoescape=True)),
            )
        )
        return set(result.all())

    async def start(self, channel_id: str, session_id: str, at: datetime) -> ChatSessionModel:
        row = ChatSessionModel(
            bot_name=self.bot_name,
            channel_id=channel_id,
            session_id=session_id,
            started_at=at,
            last_activity=at,
            message_count=1,
            is_active=True,
        )
        self.db_session.add(row)
        await self.db_session.flush()
        return row

    async def close(self, row: ChatSessionModel) -> None:
        row.is_active = False
        await self.db_session.flush()

    async def record_message(self, row: ChatSessionModel, at: datetime) -> None:
        """Count one more message; the counter is incremented in SQL, so no update is lost."""
        await self.db_session.execute(
            update(_S)
            .where(_S.id == row.id)
            .values(
                message_count=_S.message_count + 1,
                last_activity=case((_S.last_activity < at, at), else_=_S.last_activity),
            )
            .execution_options(synchronize_session=False)
        )
        await self.db_session.refresh(row, ["message_count", "last_activity"])

    async def list(self, channel_id: str) -> Sequence[ChatSessionModel]:
        """The channel's sessions, newest first."""
        result = await self.db_session.scalars(
            select(_S)
            .where(_S.bot_name == self.bot_name, _S.channel_id == channel_id)
            .order_by(_S.started_at.desc(), _S.id.desc())
        )
        return result.all()

    async def close_expired(self, now: datetime, *, gap: int, max_span: int) -> int:
        """Close every open session of this bot past its gap or timeout at ``now``."""
        result = await self.db_session.execute(
            update(_S)
            .where(
                _S.bot_name == self.bot_name,
                _S.is_active.is_(True),
                or_(
                    _S.last_activity < now - timedelta(seconds=gap),
                    _S.started_at < now - timedelta(seconds=max_span),
                ),
            )
            .values(is_active=False)
            .execution_options(synchronize_session=False)
        )
        return int(getattr(result, "rowcount", 0) or 0)

    async def count_open(self) -> int:
        result = await self.db_session.scalar(
            select(func.count()).where(and_(_S.bot_name == self.bot_name, _S.is_active.is_(True)))
        )
        return int(result or 0)
