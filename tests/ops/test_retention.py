"""Cleanup and close-sessions on both backends; never another bot's rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from convostore import BotStore, ChannelInfo
from convostore.errors import InvalidInput
from convostore.ops.retention import cleanup, close_sessions, parse_age
from tests.conftest import ConfigFactory

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
GENERAL = ChannelInfo(id="100", name="general", type="channel")
DM = ChannelInfo(id="200", name="alice_42", type="dm")


async def fill(config_factory: ConfigFactory, bot: str) -> None:
    async with BotStore.open(config_factory(bot)) as store:
        for days_ago in (200, 100, 10):
            for channel in (GENERAL, DM):
                at = NOW - timedelta(days=days_ago)
                for k in range(3):
                    await store.add_message(
                        channel,
                        user_id=42,
                        username="alice",
                        role="user",
                        content=f"{days_ago}-{k}",
                        timestamp=at + timedelta(seconds=k),
                    )


async def counts(config_factory: ConfigFactory, bot: str) -> tuple[int, int]:
    async with BotStore.open(config_factory(bot)) as store:
        messages = sessions = 0
        for channel in (GENERAL, DM):
            messages += len(await store.history(channel, limit=1000))
            sessions += len(await store.sessions(channel))
        return messages, sessions


def test_parse_age() -> None:
    assert parse_age("90d") == timedelta(days=90)
    assert parse_age("12h") == timedelta(hours=12)
    assert parse_age("2w") == timedelta(days=14)
    assert parse_age("30") == timedelta(days=30)
    for bad in ("", "0d", "-1d", "90 days", "d"):
        with pytest.raises(InvalidInput):
            parse_age(bad)


async def test_cleanup_dry_run_then_delete(make_config: ConfigFactory) -> None:
    await fill(make_config, "sage")
    await fill(make_config, "echo")
    dry = await cleanup(make_config("sage"), older_than=timedelta(days=90), dry_run=True, now=NOW)
    assert dry.dry_run and dry.sessions == 4 and dry.messages == 12
    assert {(d.channel_type, d.message_count) for d in dry.doomed} == {("channel", 3), ("dm", 3)}
    assert await counts(make_config, "sage") == (18, 6), "dry run deletes nothing"

    done = await cleanup(make_config("sage"), older_than=timedelta(days=90), now=NOW, batch_size=1)
    assert (done.sessions, done.messages) == (4, 12)
    assert await counts(make_config, "sage") == (6, 2)
    assert await counts(make_config, "echo") == (18, 6), "another bot's rows are untouched"
    again = await cleanup(make_config("sage"), older_than=timedelta(days=90), now=NOW)
    assert (again.sessions, again.messages) == (0, 0)


async def test_cleanup_uses_yaml_retention_per_channel_type(make_config: ConfigFactory) -> None:
    await fill(make_config, "sage")
    config = make_config("sage", retention={"max_age_days": 150, "dms_max_age_days": 30})
    result = await cleanup(config, now=NOW)
    # channels: older than 150 days (the 200-day session); DMs: older than 30 days (200 and 100)
    assert (result.sessions, result.messages) == (3, 9)
    async with BotStore.open(config) as store:
        assert len(await store.sessions(GENERAL)) == 2
        assert len(await store.sessions(DM)) == 1


async def test_cleanup_without_retention_keeps_everything(make_config: ConfigFactory) -> None:
    await fill(make_config, "sage")
    result = await cleanup(make_config("sage"), now=NOW)
    assert result.sessions == 0 and result.cutoffs == {"channel": None, "dm": None}
    assert await counts(make_config, "sage") == (18, 6)


async def test_close_sessions(make_config: ConfigFactory) -> None:
    await fill(make_config, "sage")
    await fill(make_config, "echo")
    assert await close_sessions(make_config("sage"), now=NOW) == 2
    assert await close_sessions(make_config("sage"), now=NOW) == 0
    async with BotStore.open(make_config("echo")) as store:
        assert await store.current_session(GENERAL) is not None
