"""The transition: a store warns of legacy files not imported, and can serve them read-only."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from convostore import BotConfig, BotStore, ChannelInfo, StoredMessage
from convostore.config import LegacyConfig
from convostore.legacy.run import migrate_legacy
from tests.conftest import ConfigFactory
from tests.legacy.tree import BIG, C1, C2, C3, EXOTIC, M1, U1, U2, messy_tree

GENERAL = ChannelInfo.channel(channel_id=C1, name="general")


@pytest.fixture
def config(make_config: ConfigFactory, tmp_path: Path) -> BotConfig:
    messy_tree(tmp_path / "legacy")
    base = make_config("sage")
    legacy = LegacyConfig(
        dir=str(tmp_path / "legacy"), timezone="Europe/Berlin", read_fallback=True
    )
    return base.model_copy(update={"legacy": legacy})


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


async def test_open_warns_once_until_the_files_are_imported(
    config: BotConfig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="convostore")
    async with BotStore.open(config):
        pass
    (warning,) = warnings_of(caplog)
    assert "not imported yet" in warning and "convostore migrate-legacy --bot sage" in warning
    caplog.clear()
    await asyncio.to_thread(migrate_legacy, {"sage": config}, only_bot="sage")
    async with BotStore.open(config):
        pass
    assert warnings_of(caplog) == []
    # The old bot saved a file after the import: the store says so again.
    newer = Path(config.legacy.dir) / "multi_bot_conversations" / "sage" / f"{C1}_{U1}.json"
    later = time.time() + 10 * 365 * 86400
    os.utime(newer, (later, later))
    async with BotStore.open(config):
        pass
    assert len(warnings_of(caplog)) == 1


async def test_no_warning_without_legacy_files(
    make_config: ConfigFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="convostore")
    async with BotStore.open(make_config("sage")):
        pass
    assert warnings_of(caplog) == []


async def test_history_falls_back_to_the_files_until_the_database_has_rows(
    config: BotConfig,
) -> None:
    async with BotStore.open(config) as store:
        served = await store.history(GENERAL)
        assert [m.content for m in served] == [BIG, "first", "second", "claims spark", EXOTIC]
        assert served[1].message_id == str(M1)
        assert served[1].timestamp == datetime(2025, 7, 8, 12, 58, 16, 123456, tzinfo=UTC)
        assert all(m.session_id == "legacy" and m.id == 0 for m in served)
        assert [m.content for m in await store.history(GENERAL, limit=1)] == [served[-1].content]
        # Shared files are split as the import splits them; the copy stored twice counts once.
        shared = ChannelInfo.channel(channel_id=C2, name="help")
        assert [m.content for m in await store.history(shared)] == ["question", "sage answer"]
        assert await store.history(shared, user_id=U1) == []
        assert len(await store.history(shared, user_id=U2)) == 2
        await store.add_message(
            GENERAL, user_id=U1, username="alice", role="user", content="now in the database"
        )
        assert [m.content for m in await store.history(GENERAL)] == ["now in the database"]


async def test_no_fallback_unless_configured(make_config: ConfigFactory, tmp_path: Path) -> None:
    messy_tree(tmp_path / "legacy")
    async with BotStore.open(make_config("sage")) as store:
        assert await store.history(GENERAL) == []


async def test_imported_rows_read_back_through_the_store_like_live_ones(
    config: BotConfig, db_url: str
) -> None:
    await asyncio.to_thread(migrate_legacy, {"sage": config}, only_bot="sage")
    async with BotStore.open(config.model_copy(update={"legacy": LegacyConfig()})) as store:
        rows = await store.history(GENERAL)
        assert [m.content for m in rows] == [BIG, "first", "second", "claims spark", EXOTIC]
        assert rows[1].timestamp == datetime(2025, 7, 8, 12, 58, 16, 123456, tzinfo=UTC)
        assert rows[1].metadata == {
            "username": "alice",
            "channel_name": "general",
            "message_id": M1,
        }
        assert rows[-1].metadata == {"legacy_extra": {"mood": "happy"}}
        assert all(r.id > 0 and r.username == "alice" for r in rows)
        assert await store.current_session(GENERAL) is None  # imported sessions are closed
        live = await store.add_message(
            GENERAL,
            user_id=U1,
            username="alice",
            role="user",
            content="live",
            timestamp=datetime(2025, 10, 26, 0, 31, tzinfo=UTC),
        )
        # A live message never joins an imported session, even one it would fit in time.
        assert live.session_id not in {r.session_id for r in rows}
        assert (await store.sessions(GENERAL))[0].session_id == live.session_id
    if db_url.startswith("sqlite"):
        from tests.helpers.rows import query

        stamps = query(
            db_url,
            "SELECT source, timestamp, metadata FROM conversations"
            " WHERE content IN ('first', 'live')",
        )
        # The same text forms as SQLAlchemy's types write for a live message.
        assert {s for s, _, _ in stamps} == {"legacy", None}
        assert all(len(t) == 26 and t[10] == " " for _, t, _ in stamps)


async def test_fallback_serves_exactly_the_rows_the_import_stores(
    config: BotConfig, tmp_path: Path
) -> None:
    # Both go through convostore.legacy.rules; only the row id and the session differ.
    channels = [ChannelInfo.channel(channel_id=c, name="as the bot calls it") for c in (C1, C2, C3)]
    async with BotStore.open(config) as store:
        served = {c.id: await store.history(c, limit=1000) for c in channels}
    await asyncio.to_thread(migrate_legacy, {"sage": config}, only_bot="sage")
    async with BotStore.open(config.model_copy(update={"legacy": LegacyConfig()})) as store:
        imported = {c.id: await store.history(c, limit=1000) for c in channels}

    def comparable(rows: list[StoredMessage]) -> list[tuple[object, ...]]:
        return [dataclasses.astuple(replace(r, id=0, session_id="")) for r in rows]

    assert sum(len(rows) for rows in imported.values()) >= 6
    for channel in channels[:2]:
        assert comparable(served[channel.id]) == comparable(imported[channel.id]), channel.id
    # The one known difference: the fallback reads only the channel's own files, so a user named
    # only in another channel's files (alice, in C1's) keeps the placeholder there.
    assert {r.username for r in served[channels[2].id]} == {f"user-{U1}"}
    assert {r.username for r in imported[channels[2].id]} == {"alice"}
    named = [replace(r, username="alice") for r in served[channels[2].id]]
    assert comparable(named) == comparable(imported[channels[2].id])
    # Every row of a conversation carries the conversation user's name, the bot's replies too.
    assert {r.username for r in imported[channels[0].id]} == {"alice"}
    assert {r.channel_name for r in imported[channels[0].id]} == {"general"}


def test_import_convostore_does_not_load_the_legacy_code() -> None:
    code = (
        "import convostore, sys; "
        "loaded = [m for m in sys.modules if m.startswith('convostore.legacy')]; "
        "assert not loaded, loaded"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


async def test_history_items_fall_back_to_the_files_as_history_does(config: BotConfig) -> None:
    async with BotStore.open(config) as store:
        served = await store.history(GENERAL)
        items = await store.history_items(GENERAL)
        assert [(i.message_id, i.role, i.content, i.metadata) for i in items] == [
            (m.message_id, m.role, m.content, m.metadata) for m in served
        ]
        assert [i.content for i in items] == [BIG, "first", "second", "claims spark", EXOTIC]
