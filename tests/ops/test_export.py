"""Export to DIR/{bot}/channels|dms/{safe_name}/{session}.json|.md on both backends."""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import Table, insert

from convostore import BotStore, ChannelInfo
from convostore.engine import make_engine
from convostore.errors import InvalidInput, OperationError
from convostore.models import ChatSessionModel, ConversationModel
from convostore.ops.export import export_bot, parse_since, safe_session_name, stored_channel
from convostore.records import MESSAGE_FIELDS
from tests.conftest import ConfigFactory
from tests.helpers.rows import DM, GENERAL, T0, add, fill

HOSTILE_NAMES = [
    "../..",
    "..",
    "CON",
    "con.txt",
    "a/b",
    "a\\b",
    "evil\x01\x1b[31m\r\nname\u202e",
    "x" * 300,
    "é" * 300,
    "🔥🔥🔥",
    "General",
    "general",
    "",
    " ",
    "/etc/passwd",
]


async def insert_raw(
    url: str,
    sessions: list[tuple[str, str, datetime, datetime, int]],
    messages: list[tuple[str, str, datetime, str]],
    channel_name: Callable[[str], str] = lambda channel_id: f"raw-{channel_id}",
) -> None:
    """Insert bot sage's sessions and messages as given, bypassing the store's rules."""
    engine = make_engine(url, null_pool=True)
    sessions_table = cast(Table, ChatSessionModel.__table__)
    conversations = cast(Table, ConversationModel.__table__)
    try:
        async with engine.begin() as connection:
            for channel_id, session_id, started, last, count in sessions:
                await connection.execute(
                    insert(sessions_table).values(
                        bot_name="sage",
                        channel_id=channel_id,
                        session_id=session_id,
                        started_at=started,
                        last_activity=last,
                        message_count=count,
                        is_active=False,
                    )
                )
            for n, (channel_id, session_id, at, content) in enumerate(messages):
                await connection.execute(
                    insert(conversations).values(
                        bot_name="sage",
                        channel_id=channel_id,
                        channel_name=channel_name(channel_id),
                        channel_type="channel",
                        user_id="42",
                        username="alice",
                        session_id=session_id,
                        message_id=f"raw{n}",
                        role="user",
                        content=content,
                        timestamp=at,
                    )
                )
    finally:
        await engine.dispose()


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def load(path: Path) -> dict[str, Any]:
    return cast(dict[str, Any], json.loads(path.read_text(encoding="utf-8")))


async def test_json_tree_and_content(make_config: ConfigFactory, tmp_path: Path) -> None:
    await fill(make_config)
    out = tmp_path / "export"
    result = await export_bot(make_config("sage"), out)
    assert (result.sessions_written, result.sessions_unchanged) == (3, 0)
    assert (result.messages, result.files, result.channels) == (7, 3, 2)
    files = files_under(out)
    assert [p.relative_to(out).parts[:3] for p in files] == [
        ("sage", "channels", GENERAL.safe_name),
        ("sage", "channels", GENERAL.safe_name),
        ("sage", "dms", DM.safe_name),
    ]
    first = load(files[0])
    assert first["session_id"] == files[0].stem == "2026-11-20_09-00-00_3600s"
    assert first["bot"] == "sage" and first["channel_name"] == "general"
    assert (first["channel_id"], first["channel_type"]) == ("100", "channel")
    assert first["started_at"] == "2026-11-20T09:00:00+00:00"
    assert first["last_activity"] == "2026-11-20T09:02:00+00:00"
    assert first["message_count"] == 3 and first["is_active"] is False
    assert [m["content"] for m in first["messages"]] == [f"sage general {m}" for m in (0, 1, 2)]
    message = first["messages"][0]
    assert set(message) == set(MESSAGE_FIELDS)
    assert message["timestamp"] == "2026-11-20T09:00:00+00:00"
    dm = load(files[2])
    assert dm["channel_type"] == "dm" and dm["is_active"] is True
    assert [m["role"] for m in dm["messages"]] == ["user", "assistant"]


async def test_json_bytes_equal_json_dumps(make_config: ConfigFactory, tmp_path: Path) -> None:
    """The streamed file is exactly json.dumps(document, indent=2, ensure_ascii=False) + newline."""
    async with BotStore.open(make_config()) as store:
        await add(
            store,
            GENERAL,
            0,
            'quotes " and \\ and\nnewline, é, 🔥, \u2028',
            metadata={"nested": {"list": [1, "two", None, {}], "empty": []}, "ü": True},
        )
        await add(store, GENERAL, 1, "", metadata={})
    out = tmp_path / "export"
    await export_bot(make_config(), out)
    [path] = files_under(out)
    raw = path.read_text(encoding="utf-8")
    assert raw == json.dumps(json.loads(raw), indent=2, ensure_ascii=False) + "\n"
    assert "🔥" in raw, "ensure_ascii=False keeps characters readable"
    assert load(path)["messages"][0]["metadata"]["nested"]["list"] == [1, "two", None, {}]


def check_tree(sandbox: Path, out: Path, sessions_total: int) -> None:
    """Every file is inside ``out``, one per session and format, with harmless names."""
    assert [p.name for p in sandbox.iterdir()] == ["export"], "nothing written beside DIR"
    assert not (sandbox.parent / "escaped").exists() and not Path("/tmp/absolute").exists()
    files = files_under(out)
    assert len(files) == 2 * sessions_total, "every session has its own file in each format"
    root = out.resolve()
    folders = set()
    for path in files:
        assert path.resolve().is_relative_to(root)
        parts = path.relative_to(out).parts
        assert len(parts) == 4 and parts[1] in ("channels", "dms")
        folders.add(parts[2])
        for part in parts:
            assert part not in ("", ".", "..") and len(part.encode()) <= 255
            assert not re.search(r"[\x00-\x1f/\\<>:\"|?*]", part)
            assert part.split(".")[0].upper() not in ("CON", "NUL", "PRN", "AUX")
    lowered = [p.relative_to(out).as_posix().lower() for p in files]
    assert len(set(lowered)) == len(lowered), "no two files differ only in case"
    assert len(folders) == len(HOSTILE_NAMES) + 4  # the DM and the three odd channel ids
    contents = sorted(load(p)["messages"][0]["content"] for p in files if p.suffix == ".json")
    assert len(contents) == sessions_total
    session_ids = {load(p)["session_id"] for p in files if p.suffix == ".json"}
    assert {"S1", "s1", "../../escaped", "", "."} <= session_ids


async def test_hostile_names_stay_inside_the_export_directory(
    make_config: ConfigFactory, tmp_path: Path
) -> None:
    async with BotStore.open(make_config()) as store:
        for index, name in enumerate(HOSTILE_NAMES):
            await add(store, ChannelInfo.channel(1000 + index, name), 0, f"in {name!r}")
        await add(store, ChannelInfo.dm(5000, 7, "../../root"), 0, "dm")
    # Rows the store would never write itself, as an import or a hand-edit could leave them.
    odd = [
        ("../../escaped", "../../escaped"),
        ("/tmp/absolute", "CON"),
        ("1", "S1"),
        ("1", "s1"),
        ("1", "a/b\\c"),
        ("1", "..\\..\\win"),
        ("1", "x" * 400),
        ("1", "nul.json"),
        ("1", ""),
        ("1", "."),
    ]
    await insert_raw(
        make_config().database_url,
        [(channel_id, session_id, T0, T0, 1) for channel_id, session_id in odd],
        [
            (channel_id, session_id, T0, f"odd {n}")
            for n, (channel_id, session_id) in enumerate(odd)
        ],
        channel_name=lambda channel_id: "../../" + channel_id,
    )

    sandbox = tmp_path / "sandbox"
    out = sandbox / "export"
    for fmt in ("json", "markdown"):
        result = await export_bot(make_config(), out, fmt=fmt)  # type: ignore[arg-type]
        sessions_total = len(HOSTILE_NAMES) + 1 + len(odd)
        assert result.files == sessions_total
    check_tree(sandbox, out, sessions_total)
    escaped = [load(p) for p in out.rglob("*.json") if load(p)["session_id"] == "../../escaped"]
    assert [(d["channel_id"], d["channel_name"]) for d in escaped] == [
        ("../../escaped", "../../../../escaped")
    ], "the header keeps the stored id and name; only the file name is made safe"


def test_safe_session_names() -> None:
    assert safe_session_name("2024-01-08_14-30-00_3600s-2") == "2024-01-08_14-30-00_3600s-2"
    hashed = {safe_session_name(s) for s in ("S1", "s1~", "../x", "con", "", "..", "a" * 500)}
    assert len(hashed) == 7 and all("~" in name and "/" not in name for name in hashed)
    assert safe_session_name("S1") != safe_session_name("s1")
    assert stored_channel("../..", "x", "dm").safe_name.endswith(
        stored_channel("../..", "x", "dm").id
    )
    assert stored_channel("../..", "x", "dm").id.isdigit()
    assert stored_channel("100", "general", "channel") == GENERAL
    assert stored_channel(" 100", "general", "channel").safe_name != GENERAL.safe_name


async def test_rerun_rewrites_only_changed_sessions(
    make_config: ConfigFactory, tmp_path: Path
) -> None:
    await fill(make_config)
    out = tmp_path / "export"
    await export_bot(make_config(), out)
    old = 1_000_000_000
    for path in files_under(out):
        os.utime(path, ns=(old, old))
    again = await export_bot(make_config(), out)
    assert (again.sessions_written, again.sessions_unchanged) == (0, 3)
    assert all(p.stat().st_mtime_ns == old for p in files_under(out))

    async with BotStore.open(make_config()) as store:
        await add(store, DM, 7, "one more")
    third = await export_bot(make_config(), out)
    assert (third.sessions_written, third.sessions_unchanged, third.messages) == (1, 2, 8)
    changed = [p for p in files_under(out) if p.stat().st_mtime_ns != old]
    assert [p.parent.name for p in changed] == [DM.safe_name]
    assert load(changed[0])["messages"][-1]["content"] == "one more"
    assert not [p for p in out.rglob(".*")], "no temporary files left behind"


def contents_by_session(out: Path) -> dict[str, list[str]]:
    return {p.stem: [m["content"] for m in load(p)["messages"]] for p in files_under(out)}


async def test_sessions_that_overlap_in_time_are_complete_and_rerun_stable(
    make_config: ConfigFactory, tmp_path: Path
) -> None:
    """Rows outside their session's recorded span, and sessions that overlap, still export whole."""
    minute = timedelta(minutes=1)
    sessions = [
        # "a" claims to end at T0+1m with 1 message; a second row at T0+5m proves it wrong
        ("7", "a", T0, T0 + minute, 1),
        ("7", "b", T0 + 2 * minute, T0 + 3 * minute, 1),
    ]
    messages = [("7", "a", T0, "a1"), ("7", "b", T0 + 2 * minute, "b1")]
    messages.append(("7", "a", T0 + 5 * minute, "a2"))
    # six sessions whose rows interleave, more than are ever kept in memory together
    for k in range(6):
        sessions.append(("8", f"c{k}", T0, T0 + 10 * minute, 3))
    for step in range(3):
        for k in range(6):
            messages.append(("8", f"c{k}", T0 + (step * 6 + k) * minute / 4, f"c{k}-{step}"))
    await insert_raw(make_config().database_url, sessions, messages)
    out = tmp_path / "export"
    first = await export_bot(make_config(), out)
    assert (first.files, first.messages, first.sessions_written) == (8, 21, 8)
    contents = contents_by_session(out)
    assert contents["a"] == ["a1", "a2"] and contents["b"] == ["b1"]
    for k in range(6):
        assert contents[f"c{k}"] == [f"c{k}-{step}" for step in range(3)]
    again = await export_bot(make_config(), out)
    # "a" is found complete too early (its counter says 1) and rendered twice: rewritten each run
    assert (again.sessions_written, again.sessions_unchanged, again.messages) == (1, 7, 21)
    assert contents == {
        p.stem: [m["content"] for m in load(p)["messages"]] for p in files_under(out)
    }
    markdown = await export_bot(make_config(), out, fmt="markdown")
    assert (markdown.files, markdown.messages) == (8, 21)
    assert not [p for p in out.rglob(".*")], "no temporary files left behind"


async def test_markdown_transcript_is_readable_and_complete(
    make_config: ConfigFactory, tmp_path: Path
) -> None:
    tricky = [
        "plain words",
        "```\n# not a heading\n```",
        "````` five backticks",
        "<details><summary>html</summary>",
        "line one\r\nline two\x1b[31m red?",
        "",
    ]
    channel = ChannelInfo.channel(300, "dev `chat`\n# fake")
    async with BotStore.open(make_config()) as store:
        for minute, content in enumerate(tricky):
            if minute % 2:
                await add(store, channel, minute, content, role="assistant", username="")
            else:
                await add(store, channel, minute, content)
    out = tmp_path / "export"
    result = await export_bot(make_config(), out, fmt="markdown")
    assert (result.files, result.messages) == (1, len(tricky))
    [path] = files_under(out)
    assert path.suffix == ".md" and path.stem == "2026-11-20_09-00-00_3600s"
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    assert lines[0].startswith("# Channel ") and "2026-11-20_09-00-00_3600s" in lines[0]
    assert "From 2026-11-20 09:00:00 UTC to 2026-11-20 09:05:00 UTC" in text
    assert lines[1] == "" and not any(line.startswith("# fake") for line in lines)
    headings = [line for line in lines if line.startswith("## ")]
    assert len(headings) == len(tricky)
    assert "## 2026-11-20 09:01:00 UTC · `sage` (assistant)" in headings
    assert "## 2026-11-20 09:00:00 UTC · `alice` (user)" in headings
    # every message sits in a fence no content line can close
    blocks = re.findall(r"^(`{3,})text\n(.*?)\n\1$", text, flags=re.M | re.S)
    assert len(blocks) == len(tricky)
    shown = [body for _, body in blocks]
    assert shown[:4] == tricky[:4]
    assert shown[4] == "line one\nline two\u241b[31m red?", "control characters made visible"
    assert all(
        len(fence) > max(map(len, re.findall(r"`+", body)), default=0) for fence, body in blocks
    )


async def test_since_filters_sessions(make_config: ConfigFactory, tmp_path: Path) -> None:
    async with BotStore.open(make_config()) as store:
        for day in (0, 10, 20):
            await add(store, GENERAL, day * 24 * 60, f"day {day}")
    out = tmp_path / "export"
    result = await export_bot(make_config(), out, since="2026-11-30")
    assert (result.files, result.messages) == (2, 2)
    names = sorted(p.stem for p in files_under(out))
    assert names == ["2026-11-30_09-00-00_3600s", "2026-12-10_09-00-00_3600s"]
    later = await export_bot(make_config(), tmp_path / "later", since="2026-12-10T09:00:00Z")
    assert later.files == 1
    none = await export_bot(
        make_config(), tmp_path / "none", since=datetime(2027, 1, 1, tzinfo=UTC)
    )
    assert none.files == 0


def test_parse_since() -> None:
    assert parse_since("2026-01-31") == datetime(2026, 1, 31, tzinfo=UTC)
    assert parse_since("2026-01-31T12:30") == datetime(2026, 1, 31, 12, 30, tzinfo=UTC)
    assert parse_since("2026-01-31T12:30+02:00") == datetime(2026, 1, 31, 10, 30, tzinfo=UTC)
    for bad in ("yesterday", "2026-13-01", "31/01/2026", ""):
        with pytest.raises(InvalidInput, match="ISO date"):
            parse_since(bad)


async def test_one_bot_never_exports_another_bots_rows(
    make_config: ConfigFactory, tmp_path: Path
) -> None:
    await fill(make_config, "sage")
    await fill(make_config, "echo")
    async with BotStore.open(make_config("echo")) as store:
        await add(store, ChannelInfo.channel(999, "echo-only"), 0, "echo only")
    out = tmp_path / "export"
    result = await export_bot(make_config("sage"), out)
    assert (result.files, result.messages) == (3, 7)
    assert [p.name for p in out.iterdir()] == ["sage"]
    messages = [m for p in files_under(out) for m in load(p)["messages"]]
    assert {m["bot_name"] for m in messages} == {"sage"}
    assert all(m["content"].startswith("sage ") for m in messages)


async def test_unwritable_or_escaping_directory_is_a_clear_error(
    make_config: ConfigFactory, tmp_path: Path
) -> None:
    await fill(make_config)
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(OperationError, match="a-file"):
        await export_bot(make_config(), blocker / "export")
    # a folder inside DIR that links elsewhere is refused, nothing is written through it
    out = tmp_path / "export"
    outside = tmp_path / "outside"
    outside.mkdir()
    (out / "sage").mkdir(parents=True)
    (out / "sage" / "channels").symlink_to(outside, target_is_directory=True)
    with pytest.raises(OperationError, match="outside the export directory"):
        await export_bot(make_config(), out)
    assert not list(outside.iterdir())
    # a file where a folder must go: a file error, not a database error
    (out / "sage" / "channels").unlink()
    (out / "sage" / "channels").write_text("in the way")
    with pytest.raises(OperationError, match=r"channels.*cannot write the export directory"):
        await export_bot(make_config(), out)
    with pytest.raises(InvalidInput):
        await export_bot(make_config(), out, fmt="html")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        await export_bot(make_config(), out, since="soon")


def test_missing_sqlite_database_is_not_created(tmp_path: Path) -> None:
    from convostore import BotConfig

    missing = tmp_path / "no.db"
    config = BotConfig.model_validate({"name": "sage", "storage": {"path": str(missing)}})
    with pytest.raises(OperationError, match="database file not found"):
        asyncio.run(export_bot(config, tmp_path / "out"))
    assert not missing.exists()
