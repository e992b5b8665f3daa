"""A bot's own ORM queries: ``store.orm_session()`` and ``store.own(Model)``, on both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from convostore import BotStore, ChannelInfo
from convostore.models import ChatSessionModel, ConversationModel
from tests.conftest import ConfigFactory

T0 = datetime(2024, 1, 8, 14, 30, tzinfo=UTC)
GENERAL = ChannelInfo.channel(channel_id=1, name="general")


async def test_orm_queries_see_the_rows_the_store_wrote_and_keep_to_the_bot(
    make_config: ConfigFactory,
) -> None:
    async with (
        BotStore.open(make_config("sage")) as sage,
        BotStore.open(make_config("echo")) as echo,
    ):
        for i, store in enumerate((sage, sage, echo)):
            await store.add_message(
                GENERAL,
                user_id=7,
                username="alice",
                role="user",
                content=f"hello {i}",
                timestamp=T0 + timedelta(seconds=i),
            )
        async with sage.orm_session() as db_session:
            rows = (
                await db_session.scalars(
                    select(ConversationModel)
                    .where(sage.own(ConversationModel))
                    .order_by(ConversationModel.id)
                )
            ).all()
            assert [r.content for r in rows] == ["hello 0", "hello 1"]
            assert {r.bot_name for r in rows} == {"sage"}
            everyone = await db_session.scalar(select(func.count()).select_from(ConversationModel))
            assert everyone == 3  # the filter is what keeps a query to the bot's rows
            # A write through the ORM, committed by the caller; loaded state stays readable.
            session = await db_session.scalar(
                select(ChatSessionModel).where(sage.own(ChatSessionModel))
            )
            assert session is not None and session.message_count == 2
            session.is_active = False
            await db_session.commit()
            assert session.is_active is False
        assert await sage.current_session(GENERAL) is None
        assert (await echo.current_session(GENERAL)) is not None
