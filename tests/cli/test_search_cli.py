"""convostore search: table and JSON output, --bot and --channel, hostile queries, help."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from convostore import BotStore, ChannelInfo, load_config
from convostore.cli import main
from tests.legacy.test_import import write_configs

T0 = datetime(2024, 1, 8, 14, 30, tzinfo=UTC)
GENERAL = ChannelInfo.channel(channel_id=123, name="general")
RANDOM = ChannelInfo.channel(channel_id=124, name="random")


@pytest.fixture
def configs(db_url: str, tmp_path: Path) -> Path:
    folder = write_configs(tmp_path / "bots", db_url, tmp_path / "legacy", sage={}, spark={})

    async def fill() -> None:
        for bot, channel, content in (
            ("sage", GENERAL, "the release date is friday"),
            ("sage", RANDOM, "release notes are\nready"),
            ("spark", GENERAL, "spark knows the release date too"),
        ):
            async with BotStore.open(load_config(folder / f"{bot}.yaml")) as store:
                await store.add_message(
                    channel,
                    user_id=42,
                    username="alice",
                    role="user",
                    content=content,
                    timestamp=T0 + timedelta(minutes=len(content)),
                )

    asyncio.run(fill())
    return folder


def test_table_lists_every_bots_hits(configs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["search", "release", "--config-dir", str(configs)]) == 0
    out = capsys.readouterr().out
    assert "[release] date is friday" in out
    assert "[release] notes are ready" in out  # one line per hit
    assert "spark knows the [release] date too" in out
    assert "#general (123)" in out and "alice" in out


def test_json_bot_and_channel(configs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["search", '"release date"', "--bot", "sage", "--channel", "123", "--json"]
    assert main([*argv, "--config-dir", str(configs)]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["query"] == '"release date"'
    [hit] = document["hits"]
    assert hit["bot"] == "sage" and hit["rank"] > 0
    assert hit["snippet"] == "the [release] [date] is friday"
    assert hit["message"]["content"] == "the release date is friday"
    assert hit["message"]["channel_id"] == "123"
    assert hit["message"]["timestamp"].endswith("+00:00")


@pytest.mark.parametrize("query", ['"', "NEAR(", "*", "-", ":", "'"])
def test_hostile_query_is_no_error(
    configs: Path, query: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["search", query, "--config-dir", str(configs), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["hits"] == []


def test_nothing_found_and_bad_channel(configs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["search", "nothing-like-this", "--config-dir", str(configs)]) == 0
    assert "no messages found" in capsys.readouterr().out
    assert main(["search", "release", "--channel", "general", "--config-dir", str(configs)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "channel" in err


def test_help_has_description_and_example(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["search", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "Example:" in out and "convostore search" in out
    assert "--json" in out and "--channel" in out and "--bot" in out
