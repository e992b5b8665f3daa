"""Revision 0003's message columns through add_message and history, on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from convostore import BotStore, ChannelInfo, InvalidInput
from tests.conftest import PostgresDatabases, upgrade

T0 = datetime(2024, 1, 8, 14, 30, tzinfo=UTC)
THREAD = ChannelInfo("500", "help-thread", "channel", parent_id="400")
ATTACHMENT = {
    "id": 9001,
    "filename": "cat.png",
    "url": "https://cdn.discordapp.com/attachments/500/9001/cat.png",
    "content_type": "image/png",
    "size": 1234,
}


async def test_new_columns_round_trip(store: BotStore) -> None:
    stored = await store.add_message(
        THREAD,
        user_id=42,
        username="alice",
        role="user",
        content="look",
        message_id=1,
        timestamp=T0,
        reply_to_message_id=777,
        attachments=[ATTACHMENT],
        edited_at=T0 + timedelta(seconds=5),
        author_is_bot=True,
    )
    plain = await store.add_message(
        THREAD,
        user_id=42,
        username="alice",
        role="user",
        content="x",
        message_id=2,
        timestamp=T0 + timedelta(seconds=1),
    )
    [first, second] = await store.history(THREAD)
    assert first == stored
    assert second == plain
    assert first.parent_id == "400"  # from the channel
    assert first.reply_to_message_id == "777"
    assert first.attachments == [{**ATTACHMENT, "id": "9001"}]
    assert first.edited_at == T0 + timedelta(seconds=5)
    assert first.edited_at.tzinfo is UTC
    assert first.author_is_bot is True
    assert (second.reply_to_message_id, second.attachments, second.edited_at) == (None, [], None)
    assert second.author_is_bot is False
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.author_is_bot = False  # type: ignore[misc]


async def test_explicit_parent_id_wins_over_the_channel(store: BotStore) -> None:
    stored = await store.add_message(
        THREAD, user_id=1, username="a", role="user", content="x", message_id=5, parent_id=401
    )
    assert stored.parent_id == "401"


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("parent_id", "12a", "parent_id"),
        ("reply_to_message_id", -3, "reply_to_message_id"),
        ("attachments", "cat.png", "attachments"),
        ("attachments", [{"id": "x"}], "attachments[0].id"),
        ("attachments", [ATTACHMENT, {**ATTACHMENT, "size": -1}], "attachments[1].size"),
        ("attachments", [{**ATTACHMENT, "colour": "red"}], "unknown key"),
        ("attachments", [{**ATTACHMENT, "filename": "a\x00b"}], "NUL"),
        ("edited_at", datetime(2024, 1, 1), "edited_at must be timezone-aware"),
        ("author_is_bot", 1, "author_is_bot"),
    ],
)
async def test_bad_values_are_refused_and_nothing_is_stored(
    store: BotStore, field: str, value: Any, words: str
) -> None:
    with pytest.raises(InvalidInput, match=words.replace("[", r"\[").replace("]", r"\]")):
        await store.add_message(
            THREAD, user_id=1, username="a", role="user", content="x", **{field: value}
        )
    assert await store.history(THREAD) == []


@pytest.mark.parametrize("backend_name", ["sqlite", "postgresql"])
def test_upgrade_from_0002_keeps_rows_with_defaults(
    backend_name: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if backend_name == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
        sync_url = f"sqlite:///{tmp_path / 'old.db'}"
    else:
        databases: PostgresDatabases = request.getfixturevalue("pg_databases")
        url = databases.create()
        sync_url = url.replace("+asyncpg", "+psycopg")
    upgrade(url, "0002")
    engine = create_engine(sync_url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO sessions (bot_name, channel_id, session_id, started_at, last_activity,"
                " message_count, is_active) VALUES ('sage', '1', 's', :t, :t, 1, true)"
            ),
            {"t": T0},
        )
        conn.execute(
            text(
                "INSERT INTO conversations (bot_name, channel_id, channel_name, channel_type,"
                " user_id, username, session_id, message_id, role, content, timestamp)"
                " VALUES ('sage', '1', 'general', 'channel', '42', 'alice', 's', '10', 'user',"
                " 'old', :t)"
            ),
            {"t": T0},
        )
    upgrade(url)
    with engine.begin() as conn:
        row = conn.execute(
            text(
                "SELECT parent_id, reply_to_message_id, attachments, edited_at, author_is_bot"
                " FROM conversations"
            )
        ).one()
        assert tuple(row) in {(None, None, None, None, False), (None, None, None, None, 0)}
        assert conn.execute(text("SELECT count(*) FROM message_revisions")).scalar() == 0
    engine.dispose()


def test_a_channels_parent_id_is_a_decimal_id() -> None:
    assert ChannelInfo("5", "t", "channel", parent_id=400).parent_id == "400"  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="parent_id"):
        ChannelInfo("5", "t", "channel", parent_id="general")
