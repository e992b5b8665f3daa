"""forget_user, `convostore forget-user` and `convostore export --user`, on both backends."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from convostore import BotStore, ChannelInfo, InvalidInput
from convostore.cli import main
from tests.conftest import ConfigFactory

T0 = datetime(2024, 1, 8, 14, 30, tzinfo=UTC)
GENERAL = ChannelInfo.channel(10, "general")
ALICE_DM = ChannelInfo.dm(20, 42, "alice")
BOB_DM = ChannelInfo.dm(21, 43, "bob")
GROUP = ChannelInfo("30", "alice, bob", "dm")
BOT_ONLY_DM = ChannelInfo.dm(22, 42, "alice")  # the bot wrote, alice never answered
_ids = iter(range(1, 10**9))


async def say(
    store: BotStore, channel: ChannelInfo, user: int, name: str, content: str, **kw: Any
) -> Any:
    bot = user == 1
    return await store.add_message(
        channel,
        user_id=user,
        username=name,
        role="assistant" if bot else "user",
        content=content,
        message_id=next(_ids),
        timestamp=kw.pop("at", T0 + timedelta(seconds=next(_ids))),
        author_is_bot=bot,
        **kw,
    )


async def fill(store: BotStore) -> None:
    first = await say(store, GENERAL, 42, "alice", "hi all")
    await say(store, GENERAL, 43, "bob", "hi alice, how is @alice?")
    await say(store, GENERAL, 1, "sage", "hello alice")
    await store.edit_message(
        first.message_id, content="hi everyone", edited_at=T0 + timedelta(days=1)
    )
    await say(store, ALICE_DM, 42, "alice", "secret")
    await say(store, ALICE_DM, 1, "sage", "your secret is safe")
    await say(store, BOB_DM, 43, "bob", "bob's secret")
    await say(store, BOB_DM, 1, "sage", "ok bob")
    await say(store, GROUP, 42, "alice", "group hi")
    await say(store, GROUP, 43, "bob", "group hello")
    await say(store, BOT_ONLY_DM, 1, "sage", "are you there, alice?")


async def contents(store: BotStore) -> dict[str, list[str]]:
    result = {}
    for channel in (GENERAL, ALICE_DM, BOB_DM, GROUP, BOT_ONLY_DM):
        result[channel.id] = [m.content for m in await store.history(channel, limit=100)]
    return result


async def test_forget_user_erases_what_it_should_and_nothing_else(store: BotStore) -> None:
    await fill(store)
    # general 1, her DM 2 (the reply too), the group 1, the DM only the bot wrote in 1
    assert await store.forget_user(42) == 5
    left = await contents(store)
    assert left == {
        "10": ["hi alice, how is @alice?", "hello alice"],  # mentions are content: they stay
        "20": [],
        "21": ["bob's secret", "ok bob"],
        "30": ["group hello"],
        "22": [],
    }
    assert await store.sessions(ALICE_DM) == [] and await store.sessions(BOT_ONLY_DM) == []
    assert [s.message_count for s in await store.sessions(GENERAL)] == [2]
    [group_row] = await store.history(GROUP)
    assert group_row.channel_name == "deleted-user, bob"
    async with store.engine.connect() as connection:
        for sql in (
            "SELECT count(*) FROM conversations WHERE user_id = '42'",
            "SELECT count(*) FROM conversations WHERE content LIKE '%secret%' AND user_id <> '43'",
            "SELECT count(*) FROM conversations WHERE channel_name LIKE '%alice%'",
            "SELECT count(*) FROM message_revisions",
        ):
            assert (await connection.execute(text(sql))).scalar_one() == 0, sql
    assert await store.forget_user("42") == 0  # nothing left


async def test_forget_user_never_touches_another_bot(make_config: ConfigFactory) -> None:
    async with (
        BotStore.open(make_config("sage")) as sage,
        BotStore.open(make_config("spark")) as spark,
    ):
        await fill(spark)
        before = await contents(spark)
        await say(sage, GENERAL, 42, "alice", "hi sage")
        assert await sage.forget_user(42) == 1
        assert await contents(spark) == before


@pytest.mark.parametrize("user", ["4x2", "", -1, None, "42 OR 1=1"])
async def test_bad_user_ids_change_nothing(store: BotStore, user: Any) -> None:
    await fill(store)
    before = await contents(store)
    with pytest.raises(InvalidInput):
        await store.forget_user(user)
    assert await contents(store) == before


async def test_forget_user_beside_live_writers(make_config: ConfigFactory) -> None:
    """Writers keep storing other users' messages (and alice's) while alice is erased."""
    async with (
        BotStore.open(make_config("sage")) as eraser,
        BotStore.open(make_config("sage")) as writer,
    ):
        for i in range(40):
            await say(eraser, GENERAL, 42 if i % 2 else 43, "x", f"old {i}")
        written: dict[str, int] = {"43": 0, "42": 0}
        done = asyncio.Event()

        async def write() -> None:
            i = 0
            while not done.is_set() or i < 30:
                user = 43 if i % 3 else 42
                await say(writer, GENERAL, user, "x", f"live {i}")
                written[str(user)] += 1
                i += 1
                await asyncio.sleep(0)

        async def erase() -> int:
            await asyncio.sleep(0.01)
            try:
                return await eraser.forget_user(42)
            finally:
                done.set()

        erased, _ = await asyncio.gather(erase(), write())
        rows = await writer.history(GENERAL, limit=10_000)
        others = [r for r in rows if r.user_id == "43"]
        assert len(others) == 20 + written["43"]  # every other user's message survives
        alice_left = [r for r in rows if r.user_id == "42"]
        assert erased + len(alice_left) == 20 + written["42"]  # each alice row erased or newer
        assert all(r.content.startswith("live") for r in alice_left)
        assert sum(s.message_count for s in await writer.sessions(GENERAL)) == len(rows)


# --- the commands ---------------------------------------------------------------------------


@pytest.fixture
def config_dir(make_config: ConfigFactory, db_url: str, tmp_path: Path) -> Path:
    async def filled() -> None:
        for bot in ("sage", "echo"):
            async with BotStore.open(make_config(bot)) as store:
                await fill(store)

    asyncio.run(filled())
    directory = tmp_path / "bots"
    directory.mkdir()
    backend = make_url(db_url).get_backend_name()
    for bot in ("sage", "echo"):
        (directory / f"{bot}.yaml").write_text(
            f"name: {bot}\nstorage:\n  type: {backend}\n  url: {db_url}\n"
            f"  backups: {{dir: {tmp_path / 'backups'}}}\n",
            encoding="utf-8",
        )
    return directory


def test_export_user_then_forget_user(
    config_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["--config-dir", str(config_dir)]
    assert main(["export", "--user", "42", "--out", str(tmp_path / "req"), *common]) == 0
    document = json.loads((tmp_path / "req" / "user-42.json").read_text(encoding="utf-8"))
    assert document["user_id"] == "42" and set(document["bots"]) == {"sage", "echo"}
    sage = document["bots"]["sage"]
    assert [m["content"] for m in sage["messages"]] == [
        "hi everyone",
        "secret",
        "your secret is safe",
        "group hi",
        "are you there, alice?",
    ]
    assert sage["messages"][0]["revisions"][0]["content"] == "hi all"
    assert sage["usernames"] == ["alice"] and sage["group_dms"] == ["30"]
    capsys.readouterr()

    assert main(["forget-user", "42", "--dry-run", "--json", *common]) == 0
    dry = json.loads(capsys.readouterr().out)
    assert dry["bots"] == [
        {"bot": bot, "messages": 5, "dm_channels": 2, "group_dms": 1} for bot in ("echo", "sage")
    ] or dry["bots"] == [
        {"bot": bot, "messages": 5, "dm_channels": 2, "group_dms": 1} for bot in ("sage", "echo")
    ]
    # Not on a terminal: refused without --yes, nothing erased.
    assert main(["forget-user", "42", *common]) == 1
    assert "pass --yes" in capsys.readouterr().err
    assert main(["forget-user", "42", "--bot", "sage", "--yes", *common]) == 0
    out = capsys.readouterr().out
    assert "sage: erased 5 messages of user 42" in out and "Backups" in out
    assert "echo" not in out
    assert main(["forget-user", "42", "--dry-run", *common]) == 0
    out = capsys.readouterr().out
    assert "sage: would erase 0 messages" in out and "echo: would erase 5 messages" in out


def test_forget_user_refuses_a_bad_id(config_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["forget-user", "alice", "--yes", "--config-dir", str(config_dir)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "USER_ID must be a decimal" in err
