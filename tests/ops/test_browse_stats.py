"""Browse (channels, sessions, transcripts) and stats on both backends."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from convostore import BotStore, ChannelInfo
from convostore.errors import OperationError
from convostore.ops.backup import backup_bot
from convostore.ops.browse import (
    bot_stats,
    human_age,
    human_size,
    list_channels,
    list_sessions,
    newest_backup,
    session_transcript,
)
from convostore.ops.export import export_bot
from tests.conftest import ConfigFactory
from tests.helpers.rows import GENERAL, T0, add, fill


async def test_list_channels_counts_and_spans(make_config: ConfigFactory) -> None:
    await fill(make_config, "sage")
    await fill(make_config, "echo")
    channels = await list_channels(make_config("sage"))
    assert [(c.type, c.name, c.sessions, c.messages) for c in channels] == [
        ("channel", "general", 2, 5),
        ("dm", "alice_42", 1, 2),
    ]
    general = channels[0]
    assert general.safe_name == GENERAL.safe_name and general.channel_id == "100"
    assert general.first_message == T0
    assert general.last_message == T0 + timedelta(minutes=181)
    async with BotStore.open(make_config("other")) as store:
        await add(store, ChannelInfo.channel(5, "x"), 0)
    assert [c.name for c in await list_channels(make_config("echo"))] == ["general", "alice_42"]


async def test_list_sessions_by_name_safe_name_or_id(make_config: ConfigFactory) -> None:
    await fill(make_config)
    config = make_config()
    for wanted in ("general", "GENERAL", GENERAL.safe_name, "100"):
        channel, sessions = await list_sessions(config, wanted)
        assert channel.channel_id == "100"
        assert [(s.session_id, s.messages, s.is_active) for s in sessions] == [
            ("2026-11-20_09-00-00_3600s", 3, False),
            ("2026-11-20_12-00-00_3600s", 2, True),
        ]
        assert sessions[0].first_message == T0
        assert sessions[0].last_message == T0 + timedelta(minutes=2)
    with pytest.raises(OperationError, match="no channel or DM 'nowhere'"):
        await list_sessions(config, "nowhere")
    async with BotStore.open(config) as store:
        await add(store, ChannelInfo.channel(101, "general"), 0)
    with pytest.raises(OperationError, match="matches 2 channels"):
        await list_sessions(config, "general")
    channel, _ = await list_sessions(config, "101")
    assert channel.name == "general"


async def test_session_transcript(make_config: ConfigFactory) -> None:
    await fill(make_config)
    config = make_config()
    transcript = await session_transcript(config, "2026-11-20_09-05-00_3600s")
    assert transcript.channel.type == "dm" and transcript.session.messages == 2
    assert [m.content for m in transcript.messages] == ["sage dm hello", "sage dm reply"]
    assert transcript.messages[0].timestamp == T0 + timedelta(minutes=5)
    with pytest.raises(OperationError, match="no session 'nope'"):
        await session_transcript(config, "nope")
    # the same session id in two channels needs the channel to pick one
    async with BotStore.open(config) as store:
        await add(store, ChannelInfo.channel(102, "random"), 5, "random first")
    with pytest.raises(OperationError, match="exists in 2 channels; add --channel"):
        await session_transcript(config, "2026-11-20_09-05-00_3600s")
    picked = await session_transcript(config, "2026-11-20_09-05-00_3600s", "random")
    assert [m.content for m in picked.messages] == ["random first"]
    with pytest.raises(OperationError, match="in channel 'general'"):
        await session_transcript(config, "2026-11-20_09-05-00_3600s", "general")


async def test_stats_equal_what_export_wrote(
    make_config: ConfigFactory, tmp_path: Path, backend: str
) -> None:
    await fill(make_config, "sage")
    await fill(make_config, "echo")
    config = make_config("sage")
    stats = await bot_stats(config)
    exported = await export_bot(config, tmp_path / "export")
    assert stats.messages == exported.messages == 7
    assert stats.sessions == exported.files == 3
    assert (stats.sessions_active, stats.sessions_closed) == (2, 1)
    assert (stats.channels, stats.dms) == (1, 1)
    folders = {p.parent for p in (tmp_path / "export" / "sage").rglob("*.json")}
    assert stats.channels + stats.dms == len(folders) == exported.channels
    assert stats.first_activity == T0 and stats.last_activity == T0 + timedelta(minutes=181)
    assert stats.database.size_bytes > 0
    if backend == "sqlite":
        assert stats.database.backend == "sqlite" and stats.database.wal_bytes is not None
    else:
        assert stats.database.wal_bytes is None
        assert set(stats.database.tables) == {"conversations", "sessions"}
        assert all(size > 0 for size in stats.database.tables.values())
    assert stats.backup is None

    empty = await bot_stats(make_config("nobody"))
    assert (empty.messages, empty.channels, empty.sessions, empty.first_activity) == (0, 0, 0, None)


def write_foreign_backup(path: Path) -> None:
    path.write_bytes(b"x")
    Path(f"{path}.manifest.json").write_text(
        json.dumps({"source": "/elsewhere.db", "created_at": "2030-01-01T00:00:00+00:00"}),
        encoding="utf-8",
    )


async def test_stats_report_the_newest_backup(
    make_config: ConfigFactory, tmp_path: Path, backend: str
) -> None:
    await fill(make_config)
    config = make_config(backups={"dir": str(tmp_path / "backups"), "keep": 5})
    taken = datetime.now(UTC) - timedelta(hours=3)
    result = backup_bot(config, now=taken)  # PostgreSQL: pg_dump -Fc, whose manifest has no check
    stats = await bot_stats(config, now=taken + timedelta(hours=3))
    assert stats.backup is not None and stats.backup.path == result.path
    assert stats.backup.age == timedelta(hours=3)
    assert stats.backup.verified is (backend == "sqlite")
    # another database's backup in the same directory does not count
    write_foreign_backup(tmp_path / "backups" / "conversations_2030-01-01.db")
    assert newest_backup(config, now=taken + timedelta(hours=3)) == stats.backup


def test_human_formats() -> None:
    assert human_size(None) == "-" and human_size(512) == "512 B"
    assert human_size(263_000_000) == "263.0 MB"
    assert human_age(timedelta(minutes=5)) == "5 min"
    assert human_age(timedelta(hours=3, minutes=2)) == "3 h 2 min"
    assert human_age(timedelta(days=9)) == "9 days"
