"""The export, browse and stats commands on both backends: help, success, one-line failures."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest

from convostore import BotStore, ChannelInfo
from convostore.cli import main
from tests.conftest import ConfigFactory
from tests.helpers.configs import write_bot_yaml
from tests.helpers.rows import GENERAL, add, fill


@pytest.fixture
def config_dir(make_config: ConfigFactory, db_url: str, tmp_path: Path) -> Path:
    """Two bots, sage and echo, sharing the test database, with data for both."""

    async def filled() -> None:
        await fill(make_config, "sage")
        await fill(make_config, "echo")

    asyncio.run(filled())
    directory = tmp_path / "bots"
    for bot in ("sage", "echo"):
        write_bot_yaml(directory, bot, url=db_url, backups=tmp_path / "backups", keep=3)
    return directory


@pytest.mark.parametrize("command", ["export", "browse", "stats"])
def test_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--config-dir" in out and "--bot" in out
    if command == "export":
        assert "--out" in out and "--format" in out and "--since" in out
    if command == "browse":
        assert "--channel" in out and "--session" in out


def test_export_then_rerun(
    config_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "export"
    args = ["export", "--out", str(out), "--config-dir", str(config_dir)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "sage: 3 session files in 2 channels (3 written, 0 unchanged), 7 messages" in printed
    assert "echo: 3 session files in 2 channels (3 written, 0 unchanged), 7 messages" in printed
    assert sorted(p.name for p in out.iterdir()) == ["echo", "sage"]
    assert main([*args, "--bot", "sage"]) == 0
    assert "(0 written, 3 unchanged)" in capsys.readouterr().out

    assert main([*args, "--bot", "sage", "--format", "markdown", "--since", "2026-11-20"]) == 0
    assert "3 session files" in capsys.readouterr().out
    transcripts = list((out / "sage").rglob("*.md"))
    assert len(transcripts) == 3
    assert any("sage general 2" in p.read_text(encoding="utf-8") for p in transcripts)
    data = json.loads(next((out / "sage" / "dms").rglob("*.json")).read_text(encoding="utf-8"))
    assert data["bot"] == "sage"


def test_browse_levels(config_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["browse", "--config-dir", str(config_dir)]
    assert main(base) == 0
    out = capsys.readouterr().out
    assert "sage" in out and "echo" in out and "general" in out and "alice_42" in out

    assert main([*base, "--bot", "sage", "--channel", "general"]) == 0
    out = capsys.readouterr().out
    assert GENERAL.safe_name in out
    assert "2026-11-20_09-00-00_3600s" in out and "2026-11-20_12-00-00_3600s" in out
    assert "closed" in out and "open" in out

    assert main([*base, "--bot", "sage", "--session", "2026-11-20_09-00-00_3600s"]) == 0
    out = capsys.readouterr().out
    assert "3 messages" in out
    for minute in (0, 1, 2):
        assert f"sage general {minute}" in out
    assert "alice (user)" in out


def test_transcript_prints_content_literally(
    config_dir: Path, make_config: ConfigFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    async def add_odd() -> None:
        async with BotStore.open(make_config("sage")) as store:
            await add(
                store, ChannelInfo.channel(77, "[b]odd"), 60 * 24, "[red]not markup[/] :fire:"
            )
            await add(store, ChannelInfo.channel(77, "[b]odd"), 60 * 24 + 1, "bell\x07 esc\x1b[2J")

    asyncio.run(add_odd())
    args = ["browse", "--config-dir", str(config_dir), "--bot", "sage"]
    assert main([*args, "--session", "2026-11-21_09-00-00_3600s"]) == 0
    out = capsys.readouterr().out
    assert "[red]not markup[/] :fire:" in out and "[b]odd" in out
    assert "\x1b" not in out and "\x07" not in out and "esc\u241b[2J" in out


def test_stats(config_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stats", "--config-dir", str(config_dir)]) == 0
    out = capsys.readouterr().out
    # Piped: plain columns (no box drawing), at least two spaces apart.
    assert not any(ch in out for ch in "─━│┃")
    cells = {
        parts[0]: parts[1:]
        for line in out.splitlines()
        if len(parts := re.split(r"\s{2,}", line.strip())) == 3
    }
    assert cells["messages"] == ["7", "7"]
    assert cells["channels"] == cells["DMs"] == ["1", "1"]
    assert cells["open sessions"] == ["2", "2"] and cells["closed sessions"] == ["1", "1"]
    assert cells["first activity (UTC)"] == ["2026-11-20 09:00", "2026-11-20 09:00"]
    assert "no backup found" in out and "(echo, sage)" in out


def test_stats_and_browse_json(config_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    common = ["--config-dir", str(config_dir)]
    assert main(["stats", "--json", *common]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert [b["bot"] for b in stats["bots"]] == ["echo", "sage"]
    sage = stats["bots"][1]
    assert (sage["messages"], sage["channels"], sage["dms"]) == (7, 1, 1)
    assert (sage["sessions_open"], sage["sessions_closed"]) == (2, 1)
    assert sage["first_activity"] == "2026-11-20T09:00:00+00:00"
    [database] = stats["databases"]
    assert database["bots"] == ["echo", "sage"] and database["backend"] in ("sqlite", "postgresql")
    assert database["backup"] is None and database["size_bytes"] > 0

    assert main(["browse", "--json", "--bot", "sage", *common]) == 0
    [bot] = json.loads(capsys.readouterr().out)["bots"]
    assert bot["bot"] == "sage"
    assert sorted(c["type"] for c in bot["channels"]) == ["channel", "dm"]
    channel = next(c for c in bot["channels"] if c["type"] == "channel")
    assert (
        main(["browse", "--json", "--bot", "sage", "--channel", channel["channel_id"], *common])
        == 0
    )
    listing = json.loads(capsys.readouterr().out)["bots"][0]
    assert listing["channel"]["channel_id"] == channel["channel_id"]
    session = listing["sessions"][0]
    assert sum(s["messages"] for s in listing["sessions"]) == channel["messages"]
    assert (
        main(["browse", "--json", "--bot", "sage", "--session", session["session_id"], *common])
        == 0
    )
    transcript = json.loads(capsys.readouterr().out)
    assert transcript["session"]["session_id"] == session["session_id"]
    assert len(transcript["messages"]) == session["messages"]
    assert {"content", "username", "timestamp", "role"} <= set(transcript["messages"][0])


def _one_line_error(capsys: pytest.CaptureFixture[str], command: str, *needles: str) -> None:
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith(f"convostore {command}: error:"), err
    assert len(err.splitlines()) == 1 and "Traceback" not in captured.err + captured.out
    for needle in needles:
        assert needle in err


def test_failures_are_one_line(
    config_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["--config-dir", str(config_dir)]
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    assert main(["export", "--out", str(blocker / "out"), *common]) == 1
    _one_line_error(capsys, "export", "a-file", "export directory")

    assert main(["export", "--out", str(tmp_path / "o"), "--bot", "nobody", *common]) == 1
    _one_line_error(capsys, "export", "nobody")

    assert main(["export", "--out", str(tmp_path / "o"), "--since", "last week", *common]) == 1
    _one_line_error(capsys, "export", "last week", "ISO date")

    assert main(["browse", "--bot", "sage", "--channel", "nowhere", *common]) == 1
    _one_line_error(capsys, "browse", "nowhere")

    assert main(["browse", "--session", "2026-11-20_09-00-00_3600s", *common]) == 1
    _one_line_error(capsys, "browse", "--bot")

    assert main(["browse", "--bot", "sage", "--session", "nope", *common]) == 1
    _one_line_error(capsys, "browse", "no session 'nope'")

    assert main(["stats", "--bot", "nobody", *common]) == 1
    _one_line_error(capsys, "stats", "nobody")

    assert main(["stats", "--config-dir", str(tmp_path / "missing")]) == 1
    _one_line_error(capsys, "stats", "does not exist")

    with pytest.raises(SystemExit) as exit_info:
        main(["export", "--out", str(tmp_path / "o"), "--format", "html", *common])
    assert exit_info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
