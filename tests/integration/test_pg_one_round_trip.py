"""PostgreSQL: the common message write (the open session takes it) is one statement."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import event

from convostore import BotConfig, BotStore, ChannelInfo
from tests.conftest import _truncate

CHANNEL = ChannelInfo.channel(channel_id=5, name="general")
T0 = datetime(2026, 1, 1, tzinfo=UTC)


async def test_common_append_is_one_statement_in_autocommit(pg_template_url: str) -> None:
    _truncate(pg_template_url)
    config = BotConfig.model_validate(
        {"name": "sage", "storage": {"type": "postgresql", "url": pg_template_url}}
    )
    async with BotStore.open(config) as store:
        await store.add_message(
            CHANNEL,
            user_id=1,
            username="a",
            role="user",
            content="opens",
            message_id=1,
            timestamp=T0,
        )
        statements: list[str] = []

        def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
            statements.append(statement.split(None, 1)[0].upper())

        event.listen(store.engine.sync_engine, "before_cursor_execute", count)
        stored = await store.add_message(
            CHANNEL,
            user_id=1,
            username="a",
            role="user",
            content="joins",
            message_id=2,
            timestamp=T0 + timedelta(seconds=10),
        )
        event.remove(store.engine.sync_engine, "before_cursor_execute", count)
        assert statements == ["WITH"]
        assert stored.session_id == (await store.current_session(CHANNEL)).session_id  # type: ignore[union-attr]
        # Stored as the full unit of work would: counted in its session, read back equal.
        session = await store.current_session(CHANNEL)
        assert session is not None and session.message_count == 2
        assert session.last_activity == T0 + timedelta(seconds=10)
        assert (await store.history(CHANNEL))[-1] == stored
        # An id already stored is not counted twice: the one statement changes nothing, and the
        # full unit of work returns the stored row.
        again = await store.add_message(
            CHANNEL,
            user_id=1,
            username="a",
            role="user",
            content="joins",
            message_id=2,
            timestamp=T0 + timedelta(seconds=10),
        )
        assert again == stored
        session = await store.current_session(CHANNEL)
        assert session is not None and session.message_count == 2
