"""`convostore resolve-names`: output, dry run, token handling, one-line errors; no network."""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

import convostore.cli.names as names_cli
from convostore.cli import main
from tests.helpers.configs import write_bot_yaml
from tests.legacy.test_names import (
    StandInDiscord,
    add_rows,
    by_message,
    discord_world,
    read_rows,
    text_channel,
)

with warnings.catch_warnings():
    # discord.py imports the deprecated audioop module; filterwarnings=error would fail collection.
    warnings.simplefilter("ignore", DeprecationWarning)
    import discord

SAGE_TOKEN = "MTA5ODc2NTQzMjEwOTg3NjU0.GxYz12.sage-secret-part"
SPARK_TOKEN = "MTA5ODc2NTQzMjEwOTg3NjU1.AbCd34.spark-secret-part"


class StandInFactory:
    """Replaces the real client factory: hands out a stand-in per run, remembers the tokens."""

    def __init__(self) -> None:
        self.channels: dict[int, object] = {}
        self.tokens: list[tuple[str, str]] = []
        self.clients: list[StandInDiscord] = []

    @asynccontextmanager
    async def __call__(self, token: str, token_env: str) -> AsyncIterator[StandInDiscord]:
        self.tokens.append((token_env, token))
        client = discord_world()
        # Short waits: the real sleep runs in the command.
        client.rate_limits = {106: [0.01], 46: [0.02]}
        client.channels.update(self.channels)
        self.clients.append(client)
        yield client


@pytest.fixture
def factory(monkeypatch: pytest.MonkeyPatch) -> StandInFactory:
    stand_in = StandInFactory()
    monkeypatch.setattr(names_cli, "client_factory", stand_in)
    return stand_in


@pytest.fixture
def config_dir(db_url: str, backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    asyncio.run(add_rows(db_url))
    directory = tmp_path / "bots"
    for bot in ("sage", "spark"):
        write_bot_yaml(directory, bot, url=db_url, legacy={"token_env": f"{bot.upper()}_TOKEN"})
    monkeypatch.setenv("SAGE_TOKEN", SAGE_TOKEN)
    monkeypatch.setenv("SPARK_TOKEN", SPARK_TOKEN)
    return directory


def assert_no_token(*texts: str) -> None:
    for text in texts:
        for secret in (SAGE_TOKEN, SPARK_TOKEN, "secret-part"):
            assert secret not in text


def summary(out: str, label: str) -> list[str]:
    """The figures per bot of one line of the summary table."""
    [line] = [line for line in out.splitlines() if line.strip().startswith(label + " ")]
    return [cell for cell in line.strip().removeprefix(label).split() if cell != "│"]


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["resolve-names", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--dry-run" in out and "--config-dir" in out and "--bot" in out
    assert "legacy.token_env" in out


def test_resolve_names_for_every_bot(
    config_dir: Path, db_url: str, factory: StandInFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["resolve-names", "--config-dir", str(config_dir)]) == 0

    out, err = capsys.readouterr()
    assert factory.tokens == [("SAGE_TOKEN", SAGE_TOKEN), ("SPARK_TOKEN", SPARK_TOKEN)]
    assert_no_token(out, err)
    assert "Traceback" not in out + err
    assert "sage: channel 104 keeps its placeholder: not found (HTTP 404: Unknown Channel)" in out
    assert "sage: channel 105 keeps its placeholder: forbidden (HTTP 403: Missing Access)" in out
    assert "sage: user 45 keeps its placeholder: not found (HTTP 404: Unknown User)" in out
    assert summary(out, "channels renamed") == ["3", "1"]
    assert summary(out, "DMs found") == ["3", "0"]
    assert summary(out, "users renamed") == ["4", "1"]
    assert summary(out, "rows changed") == ["15", "2"]
    assert summary(out, "not found") == ["2", "0"]
    assert summary(out, "forbidden") == ["1", "0"]
    assert summary(out, "rate-limit waits") == ["2", "0"]

    rows = by_message(asyncio.run(read_rows(db_url)))
    assert rows[4] == ("alice_42", "dm", "alice")
    assert rows[13] == ("général 🎉", "channel", "alice")
    assert rows[2] == ("channel-101", "channel", "user-42"), "live rows stay"
    sage, spark = factory.clients
    assert spark.channel_calls == [101] and spark.user_calls == [42]
    assert sorted(set(sage.channel_calls)) == [101, 102, 103, 104, 105, 106, 107, 108]


def test_dry_run_shows_the_changes_and_writes_nothing(
    config_dir: Path, db_url: str, factory: StandInFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    before = asyncio.run(read_rows(db_url))
    # A name from a Discord user is shown, never interpreted as markup or terminal control.
    factory.channels[106] = text_channel(106, "[red]ops\u202egnp.exe")

    assert (
        main(["resolve-names", "--config-dir", str(config_dir), "--bot", "sage", "--dry-run"]) == 0
    )

    out = capsys.readouterr().out
    assert asyncio.run(read_rows(db_url)) == before
    assert len(factory.clients) == 1, "--bot sage: spark is not asked"
    assert "sage: would change" in out and "dry run: nothing was written" in out
    for shown in ("général 🎉", "alice_42", "carol_44", "alice, bob", "dave"):
        assert shown in out
    assert "[red]ops\\u202egnp" in out and "\u202e" not in out
    assert_no_token(out)


def test_missing_token_variable_is_one_line_and_nothing_is_asked(
    config_dir: Path,
    db_url: str,
    factory: StandInFactory,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    before = asyncio.run(read_rows(db_url))
    monkeypatch.delenv("SPARK_TOKEN")

    assert main(["resolve-names", "--config-dir", str(config_dir)]) == 1

    out, err = capsys.readouterr()
    assert err == (
        f"convostore resolve-names: error: {config_dir / 'spark.yaml'}: legacy.token_env: "
        "environment variable SPARK_TOKEN is not set or empty; set it to the Discord bot token "
        "of 'spark'\n"
    )
    assert factory.tokens == [], "no bot is resolved while one token is missing"
    assert asyncio.run(read_rows(db_url)) == before
    assert_no_token(out, err)

    monkeypatch.setenv("SPARK_TOKEN", "")
    assert main(["resolve-names", "--config-dir", str(config_dir), "--bot", "spark"]) == 1
    assert "SPARK_TOKEN is not set or empty" in capsys.readouterr().err


def test_refused_token_through_the_real_client_is_one_line(
    config_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    given: list[str] = []

    async def login(self: discord.Client, token: str) -> None:
        # Where discord.py would call Discord: refuse as Discord does for a bad token.
        given.append(token)
        raise discord.LoginFailure("Improper token has been passed.")

    monkeypatch.setattr(discord.Client, "login", login)

    assert main(["resolve-names", "--config-dir", str(config_dir), "--bot", "sage"]) == 1

    out, err = capsys.readouterr()
    assert given == [SAGE_TOKEN]
    assert err == (
        "convostore resolve-names: error: Discord refused the token in SAGE_TOKEN "
        "(401 Unauthorized)\n"
    )
    assert_no_token(out, err)


def test_unknown_bot(config_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["resolve-names", "--config-dir", str(config_dir), "--bot", "nobody"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nobody" in err and "Traceback" not in err


def test_after_a_real_import_of_an_era_0_dm(
    db_url: str,
    backend: str,
    tmp_path: Path,
    factory: StandInFactory,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # An era-0 file names neither the channel nor the user, and does not say it is a DM.
    data = tmp_path / "data"
    (data / "sage").mkdir(parents=True)
    (data / "sage" / "103_42.json").write_text(
        '[{"role": "user", "content": "hi", "timestamp": "2025-07-08T14:58:16"},\n'
        ' {"role": "assistant", "content": "hello", "timestamp": "2025-07-08T14:58:19"}]',
        encoding="utf-8",
    )
    bots = tmp_path / "bots"
    bots.mkdir()
    (bots / "sage.yaml").write_text(
        f"storage:\n  type: {backend}\n  url: {db_url}\nlegacy:\n  dir: {data}\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("DISCORD_TOKEN", SAGE_TOKEN)
    assert main(["migrate-legacy", "--config-dir", str(bots)]) == 0
    imported = asyncio.run(read_rows(db_url))
    assert {(r[3], r[4], r[6]) for r in imported} == {("channel-103", "channel", "legacy")}
    capsys.readouterr()

    assert main(["resolve-names", "--config-dir", str(bots)]) == 0

    out = capsys.readouterr().out
    assert factory.tokens == [("DISCORD_TOKEN", SAGE_TOKEN)]
    rows = asyncio.run(read_rows(db_url))
    assert {(r[3], r[4]) for r in rows} == {("alice_42", "dm")}
    users = {r[5] for r in rows}
    assert "alice" in users and "user-42" not in users
    assert summary(out, "DMs found") == ["1"]
