"""History with odd stored values, on SQLite and PostgreSQL.

On a SQLite file, history reads through the DBAPI connection and builds its records itself; these
tests pin that it returns exactly what the Core path returns, for the values it parses by hand.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from sqlalchemy import Table, insert, null, text
from sqlalchemy.engine import Connection

from convostore import BotStore, ChannelInfo, StoredMessage
from convostore.errors import SchemaError
from convostore.models import ConversationModel
from convostore.repositories import MessageRepository
from convostore.repositories import rows as rows_module
from tests.conftest import ConfigFactory

T0 = datetime(2024, 1, 8, 14, 30, 0, 123456, tzinfo=UTC)
BIG = 2**64 + 7  # above any 64-bit integer: must stay a decimal string
CHANNEL = ChannelInfo.channel(channel_id=BIG, name="général 🧵")
CONVERSATIONS = cast(Table, ConversationModel.__table__)


async def add(
    store: BotStore,
    at: datetime,
    *,
    message_id: int | None = None,
    user_id: int = BIG,
    metadata: dict[str, Any] | None = None,
    content: str = "hi",
) -> StoredMessage:
    return await store.add_message(
        CHANNEL,
        user_id=user_id,
        username="ålice",
        role="user",
        content=content,
        message_id=message_id,
        timestamp=at,
        metadata=metadata,
    )


async def insert_raw(store: BotStore, like: StoredMessage, **values: Any) -> None:
    """Insert a row the store would not write itself (SQL NULL metadata), in ``like``'s session."""
    row = {
        "bot_name": like.bot_name,
        "channel_id": like.channel_id,
        "channel_name": like.channel_name,
        "channel_type": like.channel_type,
        "user_id": like.user_id,
        "username": like.username,
        "session_id": like.session_id,
        "role": "assistant",
        "content": "raw",
        **values,
    }
    async with store.engine.begin() as connection:
        await connection.execute(insert(CONVERSATIONS).values(**row))


async def core_newest(store: BotStore, limit: int, **filters: str) -> list[StoredMessage]:
    """The newest rows read through Core and SQLAlchemy's result processing (the async engine)."""

    def work(connection: Connection) -> list[StoredMessage]:
        return MessageRepository(connection, store.bot_name).newest(CHANNEL.id, limit, **filters)

    async with store.engine.connect() as connection:
        rows = await connection.run_sync(work)
    rows.reverse()
    return rows


async def test_odd_values_read_back_exactly(store: BotStore) -> None:
    nested = {"é": [1, 2.5, None, True], "deep": {"k": "v"}, "big": BIG}
    first = await add(store, T0, message_id=BIG, metadata=nested)
    second = await add(store, T0 + timedelta(microseconds=1), metadata=None)
    third = await add(store, T0 + timedelta(microseconds=2), metadata={})
    await insert_raw(
        store, first, message_id=str(BIG + 1), timestamp=T0 + timedelta(seconds=1), metadata=null()
    )
    rows = await store.history(CHANNEL)
    assert [r.id for r in rows[:3]] == [first.id, second.id, third.id]
    assert rows[:3] == [first, second, third]
    assert rows[0].message_id == str(BIG) and rows[0].user_id == str(BIG)
    assert rows[0].channel_id == str(BIG) and rows[0].channel_name == "général 🧵"
    assert rows[0].metadata == nested
    assert rows[1].metadata is None and rows[2].metadata == {}
    assert rows[3].metadata is None and rows[3].message_id == str(BIG + 1)
    assert [r.timestamp for r in rows] == [
        T0,
        T0 + timedelta(microseconds=1),
        T0 + timedelta(microseconds=2),
        T0 + timedelta(seconds=1),
    ]
    assert all(r.timestamp.tzinfo is UTC for r in rows)
    assert rows == await core_newest(store, 100)


async def test_attachments_read_back_exactly(store: BotStore) -> None:
    """Every stored form of ``attachments``: a list, an empty one, JSON's null, SQL NULL."""
    files = [{"id": 3, "filename": "é.txt", "size": 12}, {"id": 4, "filename": "b"}]
    listed = await store.add_message(
        CHANNEL, user_id=1, username="a", role="user", content="f", timestamp=T0, attachments=files
    )
    empty = await add(store, T0 + timedelta(seconds=1))
    at = T0 + timedelta(seconds=2)
    await insert_raw(store, listed, message_id="71", timestamp=at, attachments=None)  # JSON null
    await insert_raw(store, listed, message_id="72", timestamp=at, attachments=null())
    rows = await store.history(CHANNEL)
    assert rows[:2] == [listed, empty]
    assert [a["filename"] for a in rows[0].attachments] == ["é.txt", "b"]
    assert [r.attachments for r in rows[1:]] == [[], [], []]
    assert rows == await core_newest(store, 100)
    rows[1].attachments.append({"id": "9"})  # a fresh list per record
    assert (await store.history(CHANNEL))[1].attachments == []


async def test_records_are_frozen_and_detached(store: BotStore) -> None:
    await add(store, T0, metadata={"tags": ["a"]})
    [row] = await store.history(CHANNEL)
    assert type(row) is StoredMessage
    with pytest.raises(dataclasses.FrozenInstanceError):
        row.content = "changed"  # type: ignore[misc]
    assert row.metadata is not None
    row.metadata["tags"].append("b")
    [again] = await store.history(CHANNEL)
    assert again.metadata == {"tags": ["a"]}
    assert again == row.__class__(**{**dataclasses.asdict(row), "metadata": {"tags": ["a"]}})


async def test_equal_timestamps_order_by_id_and_limit_keeps_the_newest(store: BotStore) -> None:
    stored = [await add(store, T0, content=str(i)) for i in range(5)]
    older = await add(store, T0 - timedelta(seconds=10), content="older")
    assert [r.content for r in await store.history(CHANNEL, 3)] == ["2", "3", "4"]
    assert [r.id for r in await store.history(CHANNEL)] == [older.id, *(r.id for r in stored)]
    assert await store.history(CHANNEL, 3) == await core_newest(store, 3)


async def test_filters_and_bot_isolation(make_config: ConfigFactory) -> None:
    async with (
        BotStore.open(make_config("sage")) as sage,
        BotStore.open(make_config("echo")) as echo,
    ):
        mine = await add(sage, T0, user_id=1)
        await add(sage, T0 + timedelta(seconds=1), user_id=2)
        later = await add(sage, T0 + timedelta(hours=3), user_id=1)
        await add(echo, T0 + timedelta(seconds=2), user_id=1)
        assert [r.id for r in await sage.history(CHANNEL, user_id=1)] == [mine.id, later.id]
        assert [r.id for r in await sage.history(CHANNEL, session_id=later.session_id)] == [
            later.id
        ]
        assert await sage.history(CHANNEL, user_id=1, session_id=mine.session_id) == [mine]
        assert await sage.history(CHANNEL, user_id=3) == []
        assert {r.bot_name for r in await sage.history(CHANNEL)} == {"sage"}
        assert len(await sage.history(CHANNEL)) == 3
        assert [r.bot_name for r in await echo.history(CHANNEL)] == ["echo"]
        for filters in ({"user_id": "1"}, {"session_id": later.session_id}):
            got = await sage.history(CHANNEL, **filters)  # type: ignore[arg-type]
            assert got == await core_newest(sage, 100, **filters)


async def test_driver_errors_are_translated(store: BotStore) -> None:
    await add(store, T0)
    # Renamed and put back: the PostgreSQL database is shared by the tests that follow.
    async with store.engine.begin() as connection:
        await connection.execute(text("ALTER TABLE conversations RENAME TO conversations_away"))
    try:
        with pytest.raises(SchemaError, match="alembic upgrade head"):
            await store.history(CHANNEL)
    finally:
        async with store.engine.begin() as connection:
            await connection.execute(text("ALTER TABLE conversations_away RENAME TO conversations"))
    assert len(await store.history(CHANNEL)) == 1


async def test_sqlite_files_take_the_dbapi_path(
    store: BotStore, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[int] = []
    build = rows_module.messages_from_driver_rows

    def spy(rows: list[tuple[Any, ...]], bot_name: str, channel_id: str) -> list[StoredMessage]:
        built.append(len(rows))
        return build(rows, bot_name, channel_id)

    monkeypatch.setattr(rows_module, "messages_from_driver_rows", spy)
    await add(store, T0)
    assert len(await store.history(CHANNEL)) == 1
    assert built == ([1] if backend == "sqlite" else [])
