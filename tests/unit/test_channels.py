"""ChannelInfo: id validation, names kept as given, safe_name rules, discord.py adapters."""

from __future__ import annotations

import dataclasses
import random
import unicodedata
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from convostore import ChannelInfo, InvalidInput
from convostore.channels import MAX_SAFE_NAME_BYTES

with warnings.catch_warnings():
    # discord.py imports the deprecated audioop module; filterwarnings=error would fail collection.
    warnings.simplefilter("ignore", DeprecationWarning)
    import discord

WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL"} | {
    f"{prefix}{n}" for prefix in ("COM", "LPT") for n in "0123456789¹²³"
}

HOSTILE_NAMES = [
    "../..",
    "..",
    ".",
    "CON",
    "con",
    "con.txt",
    "NUL",
    "nul.tar.gz",
    "COM1",
    "LPT9.log",
    "AUX ",
    "a/b",
    "a\\b",
    "/etc/passwd",
    "C:\\Windows",
    "\x00\x1f\x7f",
    "a\x00b",
    "line\nbreak\r\ttab",
    "\u200b",
    "zero\u200bwidth\u200djoin",
    "\u202eevil\u202c",
    "\u3164",  # Hangul filler, isalnum() but invisible
    "\ufeffbom",
    "\ud800lone surrogate",
    "x" * 300,
    "🎉" * 300,
    "中" * 300,
    "ǖ" * 300,  # decomposes to three code points: longer on macOS than in UTF-8
    "",
    "   ",
    "🎉🎉",
    "trailing dots...",
    "trailing spaces   ",
    "...",
    "-_-_-",
    '<>:"|?*',
    "\uff0ffullwidth\uff0fslash",
    "name.with.dots",
    "COM¹",
]

BOLD_AND_FULL_WIDTH = "\U0001d41b\U0001d428\U0001d425\U0001d41d \uff46\uff55\uff4c\uff4c"

# Names that differ only where a file system may not look: case, emoji, normalisation.
LOOKALIKE_NAMES = [
    "General",
    "general",
    "GENERAL",
    "general 🎉",
    "general 🎊",
    "general",
    "café",
    "cafe\u0301",
    "ǅ",
    "ǆ",
    "straße",
    "STRASSE",
    *HOSTILE_NAMES,
]


# Invisible in file managers, yet letters or marks to str.isalnum / unicodedata.category.
INVISIBLE = {"\u115f", "\u1160", "\u3164", "\uffa0", "\u034f"} | {
    chr(c) for c in range(0xFE00, 0xFE10)
}


def assert_safe_component(safe: str) -> None:
    assert safe
    assert safe not in {".", ".."}
    assert "/" not in safe
    assert "\\" not in safe
    assert not any(unicodedata.category(ch) in {"Cc", "Cf", "Cs", "Co", "Cn"} for ch in safe)
    assert not any(ch.isspace() for ch in safe)
    assert not INVISIBLE & set(safe)
    assert not any(ch in '<>:"|?*' for ch in safe)
    assert len(safe.encode("utf-8")) <= 255
    assert len(safe.encode("utf-8")) <= MAX_SAFE_NAME_BYTES
    # macOS HFS+ counts UTF-16 units of the decomposed form.
    assert len(unicodedata.normalize("NFD", safe).encode("utf-16-le")) // 2 <= 255
    stem = safe.split(".", 1)[0].rstrip(" ")
    assert stem.upper() not in WINDOWS_RESERVED
    assert not safe.endswith((".", " "))


def assert_is_one_file_name(tmp: Path, safe: str) -> None:
    target = Path(tmp, safe)
    target.write_text("x", encoding="utf-8")
    assert target.resolve().parent == tmp.resolve()
    assert [p.name for p in tmp.iterdir()] == [safe]


# --- safe_name: hostile names -------------------------------------------------------------------


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=range(len(HOSTILE_NAMES)))
@pytest.mark.parametrize("kind", ["channel", "dm"])
def test_hostile_names_give_one_safe_file_name(tmp_path: Path, name: str, kind: str) -> None:
    channel_id = 1234567890123456789
    info = (
        ChannelInfo.channel(channel_id, name)
        if kind == "channel"
        else ChannelInfo.dm(channel_id, user_id=42, username=name)
    )
    safe = info.safe_name

    assert_safe_component(safe)
    assert safe.endswith(f"_{channel_id}")
    assert_is_one_file_name(tmp_path, safe)


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=range(len(HOSTILE_NAMES)))
def test_hostile_names_are_kept_as_given(name: str) -> None:
    assert ChannelInfo.channel(5, name).name == name
    assert ChannelInfo.dm(5, 42, name).name == f"{name}_42"


def test_none_name_becomes_empty() -> None:
    assert ChannelInfo.channel(5, None).name == ""
    assert ChannelInfo.channel(5, None).safe_name == "channel_5"


def test_long_names_are_cut_on_a_character_boundary() -> None:
    ascii_safe = ChannelInfo.channel(123, "x" * 300).safe_name
    assert ascii_safe == "x" * 200 + "_123"

    emoji_and_text = ChannelInfo.channel(123, "é" * 300).safe_name
    name_part = emoji_and_text.removesuffix("_123")
    assert set(name_part) == {"é"}
    assert 0 < len(name_part.encode("utf-8")) <= 200

    longest_id = "9" * 64
    assert len(ChannelInfo.channel(longest_id, "中" * 300).safe_name.encode()) <= 240


def test_empty_or_symbol_only_names_fall_back_to_the_type() -> None:
    assert ChannelInfo.channel(7, "").safe_name == "channel_7"
    assert ChannelInfo.channel(7, "   ").safe_name == "channel_7"
    assert ChannelInfo.channel(7, "🎉🎉").safe_name == "channel_7"
    assert ChannelInfo.channel(7, "../..").safe_name == "channel_7"
    assert ChannelInfo(id="7", name="🎉", type="dm").safe_name == "dm_7"


# --- safe_name: stable and readable -------------------------------------------------------------


@pytest.mark.parametrize(
    ("info", "expected"),
    [
        (ChannelInfo.channel(123, "general"), "general_123"),
        (ChannelInfo.dm(456, 42, "alice"), "alice_42_456"),
        (ChannelInfo.channel("9", "Ünïcødé chat"), "Ünïcødé-chat_9"),
        (ChannelInfo.channel(9, "my  cool / channel"), "my-cool-channel_9"),
        (ChannelInfo.channel(9, "snake_case__name"), "snake_case_name_9"),
        (ChannelInfo.channel(9, "a _-_ b"), "a-b_9"),
        (ChannelInfo.channel(9, BOLD_AND_FULL_WIDTH), "bold-full_9"),
        (ChannelInfo.channel(9, "हिन्दी चैट"), "हिन्दी-चैट_9"),
        (ChannelInfo.channel(9, "CON"), "CON_9"),
        (ChannelInfo.channel(9, "\u3164 \u3164"), "channel_9"),  # a "blank" name of Hangul fillers
        (ChannelInfo.channel(9, "ok\ufe0f\u034f"), "ok_9"),
        (ChannelInfo.channel(9, "con.txt"), "con-txt_9"),
        (ChannelInfo.channel(9, "🎉 party 🎉"), "party_9"),
    ],
)
def test_safe_name_known_values(info: ChannelInfo, expected: str) -> None:
    assert info.safe_name == expected
    assert info.safe_name == info.safe_name


def test_same_visible_name_gives_the_same_safe_name() -> None:
    composed = ChannelInfo.channel(1, "caf\u00e9")
    decomposed = ChannelInfo.channel(1, "cafe\u0301")
    assert composed.safe_name == decomposed.safe_name == "café_1"


# --- safe_name: collisions ----------------------------------------------------------------------


def _folded(safe: str) -> str:
    """How a case- and normalisation-insensitive file system (macOS, Windows) compares names."""
    return unicodedata.normalize("NFD", safe).casefold()


def _assert_all_distinct(infos: list[ChannelInfo]) -> None:
    assert len({info.id for info in infos}) == len(infos), "test data must use distinct ids"
    safe_names = [info.safe_name for info in infos]
    assert len(set(safe_names)) == len(infos)
    assert len({_folded(safe) for safe in safe_names}) == len(infos)


def test_lookalike_names_with_distinct_ids_never_collide() -> None:
    infos = [ChannelInfo.channel(100 + i, name) for i, name in enumerate(LOOKALIKE_NAMES)]
    infos += [ChannelInfo.dm(500 + i, 42, name) for i, name in enumerate(LOOKALIKE_NAMES)]
    _assert_all_distinct(infos)


def test_identical_names_with_distinct_ids_never_collide() -> None:
    infos = [ChannelInfo.channel(channel_id, "general") for channel_id in range(1, 200)]
    infos += [
        ChannelInfo(id=str(channel_id), name="general", type="dm") for channel_id in range(200, 400)
    ]
    _assert_all_distinct(infos)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (("a_1", "23"), ("a", "123")),
        (("a_12", "3"), ("a_1", "23")),
        (("1", "2"), ("", "12")),
        (("", "12"), ("channel_1", "2")),
    ],
)
def test_names_ending_in_digits_cannot_forge_another_id(
    first: tuple[str, str], second: tuple[str, str]
) -> None:
    name_a, id_a = first
    name_b, id_b = second
    a = ChannelInfo.channel(id_a, name_a)
    b = ChannelInfo.channel(id_b, name_b)
    assert _folded(a.safe_name) != _folded(b.safe_name)
    assert a.safe_name.rsplit("_", 1)[1] == id_a
    assert b.safe_name.rsplit("_", 1)[1] == id_b


_ALPHABETS = [
    [chr(c) for c in range(0x20, 0x7F)],  # printable ASCII, including / \ . : * ?
    [chr(c) for c in range(0x00, 0x20)] + ["\x7f"] + [chr(c) for c in range(0x80, 0xA0)],
    [chr(c) for c in range(0xA0, 0x180)],  # Latin-1 and Latin Extended-A
    [chr(c) for c in range(0x300, 0x370)],  # combining marks
    [chr(c) for c in range(0x391, 0x3CA)],  # Greek, with case pairs
    [chr(c) for c in range(0x400, 0x460)],  # Cyrillic
    [chr(c) for c in range(0x900, 0x980)],  # Devanagari
    [chr(c) for c in range(0x4E00, 0x4E80)],  # CJK
    [chr(c) for c in range(0xAC00, 0xAC80)] + ["\u3164", "\u115f", "\u1160", "\uffa0"],
    [chr(c) for c in range(0x1F300, 0x1F650)] + ["\u200d", "\ufe0f"],  # emoji and joiners
    [chr(c) for c in range(0x200B, 0x2010)] + [chr(c) for c in range(0x202A, 0x202F)],
    [chr(c) for c in range(0xFF01, 0xFF5F)],  # full-width forms
    [chr(c) for c in range(0x1D400, 0x1D434)],  # mathematical bold letters
    ["\u2215", "\u2044", "\u29f8", "\uff0f", "\uff3c", "\u2024", "\u2025", "\ufe52"],  # slash/dots
]


def _random_names(count: int) -> Iterator[str]:
    rng = random.Random(1234)
    for _ in range(count):
        length = rng.choice([0, 1, 2, 3, 5, 8, 13, 40, 120, 300])
        alphabets = rng.sample(_ALPHABETS, rng.randint(1, 3))
        yield "".join(rng.choice(rng.choice(alphabets)) for _ in range(length))


def test_generated_names_are_safe_and_never_collide(tmp_path: Path) -> None:
    names = list(_random_names(3000))
    infos = []
    for index, name in enumerate(names):
        info = (
            ChannelInfo.channel(10**17 + index, name)
            if index % 2
            else ChannelInfo.dm(10**17 + index, index, name)
        )
        assert_safe_component(info.safe_name)
        assert info.safe_name == ChannelInfo(info.id, info.name, info.type).safe_name
        infos.append(info)
    _assert_all_distinct(infos)

    # Every one of them can really be created, each as its own file, in one directory.
    for info in infos:
        Path(tmp_path, info.safe_name).write_text("x", encoding="utf-8")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(i.safe_name for i in infos)


# --- construction and validation ----------------------------------------------------------------


def test_dm_is_named_after_the_user() -> None:
    dm = ChannelInfo.dm(channel_id=456, user_id=42, username="alice")
    assert (dm.id, dm.name, dm.type) == ("456", "alice_42", "dm")
    assert dm.is_dm
    assert not ChannelInfo.channel(123, "general").is_dm


def test_channel_info_is_frozen() -> None:
    info = ChannelInfo.channel(123, "general")
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.name = "other"  # type: ignore[misc]
    with pytest.raises((AttributeError, TypeError)):
        info.extra = 1  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        (123, "123"),
        ("123", "123"),
        (" 123\n", "123"),
        (0, "0"),
        (1234567890123456789, "1234567890123456789"),
        ("9" * 64, "9" * 64),
    ],
)
def test_ids_are_stored_as_decimal_strings(given: int | str, stored: str) -> None:
    assert ChannelInfo.channel(given, "x").id == stored
    dm = ChannelInfo.dm(given, given, "x")
    assert dm.id == stored
    assert dm.name == f"x_{stored}"
    assert ChannelInfo.channel(123, "x") == ChannelInfo.channel("123", "x")


BAD_IDS: list[Any] = [
    "",
    "   ",
    -1,
    "-1",
    "+1",
    True,
    False,
    "abc",
    "12a",
    "1 2",
    "\uff11\uff12",  # full-width digits
    "²",
    "9" * 65,
    10**64,
    1.0,
    None,
    b"12",
]


@pytest.mark.parametrize("bad", BAD_IDS, ids=repr)
def test_invalid_ids_are_rejected_naming_the_argument(bad: Any) -> None:
    with pytest.raises(InvalidInput, match="channel_id"):
        ChannelInfo.channel(bad, "general")
    with pytest.raises(InvalidInput, match="channel_id"):
        ChannelInfo.dm(bad, 42, "alice")
    with pytest.raises(InvalidInput, match="user_id"):
        ChannelInfo.dm(456, bad, "alice")


# --- from_discord -------------------------------------------------------------------------------

USER_ALICE = {"id": "42", "username": "alice", "discriminator": "0", "avatar": None}
USER_BOB = {"id": "43", "username": "bob", "discriminator": "0", "avatar": None}


@pytest.fixture(scope="module")
def discord_state() -> Any:
    # A real ConnectionState: Client() builds one without any network or event loop.
    return discord.Client(intents=discord.Intents.none())._connection


@pytest.fixture(scope="module")
def guild(discord_state: Any) -> discord.Guild:
    return discord.Guild(data={"id": "1", "name": "guild"}, state=discord_state)  # type: ignore[typeddict-item]


@pytest.fixture(scope="module")
def me(discord_state: Any) -> discord.ClientUser:
    data = {"id": "1000", "username": "bot", "discriminator": "0", "avatar": None}
    return discord.ClientUser(state=discord_state, data=data)  # type: ignore[arg-type]


def _guild_channel_data(channel_id: int, kind: int, name: str) -> dict[str, Any]:
    return {
        "id": str(channel_id),
        "type": kind,
        "name": name,
        "position": 0,
        "bitrate": 64000,
        "user_limit": 0,
    }


@pytest.mark.parametrize(
    ("cls", "kind", "discord_type"),
    [
        (discord.TextChannel, 0, discord.ChannelType.text),
        (discord.TextChannel, 5, discord.ChannelType.news),
        (discord.VoiceChannel, 2, discord.ChannelType.voice),
        (discord.StageChannel, 13, discord.ChannelType.stage_voice),
        (discord.ForumChannel, 15, discord.ChannelType.forum),
        (discord.ForumChannel, 16, discord.ChannelType.media),
    ],
)
def test_from_discord_guild_channels(
    discord_state: Any, guild: discord.Guild, cls: Any, kind: int, discord_type: Any
) -> None:
    channel = cls(
        state=discord_state, guild=guild, data=_guild_channel_data(10, kind, "général 🎉")
    )
    assert channel.type is discord_type

    info = ChannelInfo.from_discord(channel)

    assert info == ChannelInfo(id="10", name="général 🎉", type="channel")
    assert info.safe_name == "général_10"


@pytest.mark.parametrize("kind", [10, 11, 12])
def test_from_discord_threads(discord_state: Any, guild: discord.Guild, kind: int) -> None:
    data = {
        "id": "11",
        "parent_id": "10",
        "owner_id": "42",
        "name": "a/b thread",
        "type": kind,
        "message_count": 0,
        "member_count": 0,
        "thread_metadata": {
            "archived": False,
            "auto_archive_duration": 60,
            "archive_timestamp": "2024-01-01T00:00:00+00:00",
            "locked": False,
        },
    }
    thread = discord.Thread(guild=guild, state=discord_state, data=data)  # type: ignore[arg-type]

    assert ChannelInfo.from_discord(thread) == ChannelInfo("11", "a/b thread", "channel", "10")


def test_from_discord_dm_uses_the_recipient(discord_state: Any, me: discord.ClientUser) -> None:
    data = {"id": "20", "type": 1, "recipients": [USER_ALICE]}
    dm = discord.DMChannel(me=me, state=discord_state, data=data)  # type: ignore[arg-type]

    info = ChannelInfo.from_discord(dm)

    assert info == ChannelInfo.dm(20, 42, "alice")
    assert (info.name, info.type, info.safe_name) == ("alice_42", "dm", "alice_42_20")


def test_from_discord_dm_without_recipient(discord_state: Any, me: discord.ClientUser) -> None:
    # What on_message really gets: discord.py builds an uncached DM channel without recipients.
    data: Any = {"id": "21", "type": 1}
    dm = discord.DMChannel(me=me, state=discord_state, data=data)
    assert dm.recipient is None

    assert ChannelInfo.from_discord(dm) == ChannelInfo("21", "unknown_user_unknown", "dm")
    alice = discord.User(state=discord_state, data=USER_ALICE)  # type: ignore[arg-type]
    assert ChannelInfo.from_discord(dm, recipient=alice) == ChannelInfo.dm(21, 42, "alice")


def test_from_discord_dm_prefers_its_own_recipient(
    discord_state: Any, me: discord.ClientUser
) -> None:
    data = {"id": "20", "type": 1, "recipients": [USER_ALICE]}
    dm = discord.DMChannel(me=me, state=discord_state, data=data)  # type: ignore[arg-type]
    bob = discord.User(state=discord_state, data=USER_BOB)  # type: ignore[arg-type]
    assert ChannelInfo.from_discord(dm, recipient=bob).name == "alice_42"


@pytest.mark.parametrize(
    ("name", "recipients", "expected"),
    [
        ("friends", [USER_ALICE, USER_BOB], "friends"),
        (None, [USER_ALICE, USER_BOB], "alice, bob"),
        (None, [], "unnamed_group"),
    ],
)
def test_from_discord_group(
    discord_state: Any,
    me: discord.ClientUser,
    name: str | None,
    recipients: list[dict[str, Any]],
    expected: str,
) -> None:
    data = {"id": "22", "type": 3, "name": name, "owner_id": "42", "recipients": recipients}
    group = discord.GroupChannel(me=me, state=discord_state, data=data)  # type: ignore[arg-type]

    info = ChannelInfo.from_discord(group)

    assert info == ChannelInfo("22", expected, "dm")
    assert info.is_dm


def test_from_discord_accepts_stand_ins_with_the_same_attributes() -> None:
    text = SimpleNamespace(type=discord.ChannelType.text, id=30, name="general")
    assert ChannelInfo.from_discord(text) == ChannelInfo("30", "general", "channel")
    alice = SimpleNamespace(id=42, name="alice")
    dm = SimpleNamespace(type=discord.ChannelType.private, id=31, recipient=alice)
    assert ChannelInfo.from_discord(dm) == ChannelInfo("31", "alice_42", "dm")


def test_from_discord_partial_messageable(discord_state: Any) -> None:
    # Interactions in uncached channels: a type and an id, but no name.
    channel = discord.PartialMessageable(
        state=discord_state, id=32, guild_id=1, type=discord.ChannelType.text
    )
    assert ChannelInfo.from_discord(channel) == ChannelInfo("32", "", "channel")
    assert ChannelInfo.from_discord(channel).safe_name == "channel_32"


def test_from_discord_rejects_what_is_not_a_message_channel(
    discord_state: Any, guild: discord.Guild
) -> None:
    data: Any = {"id": "15", "type": 4, "name": "cat", "position": 0}
    category = discord.CategoryChannel(state=discord_state, guild=guild, data=data)
    message_like = SimpleNamespace(type=discord.MessageType.default, id=1, channel=None)
    untyped = discord.PartialMessageable(state=discord_state, id=33)
    for thing in [category, guild, message_like, untyped, object(), None, "general", 123]:
        with pytest.raises(InvalidInput) as caught:
            ChannelInfo.from_discord(thing)
        assert "\n" not in str(caught.value)
    with pytest.raises(InvalidInput, match=r"message\.channel"):
        ChannelInfo.from_discord(message_like)


@pytest.mark.parametrize(
    ("channel_id", "kind", "match"),
    [
        ("abc", "group", "channel id"),
        ("", "channel", "channel id"),
        ("12", "group", "channel type"),
        ("12", "DM", "channel type"),
        (True, "dm", "channel id"),
    ],
)
def test_channel_info_validates_id_and_type_when_built(
    channel_id: object, kind: str, match: str
) -> None:
    with pytest.raises(InvalidInput, match=match):
        ChannelInfo(channel_id, "x", kind)  # type: ignore[arg-type]


def test_channel_info_stores_an_int_id_as_its_decimal_string() -> None:
    assert ChannelInfo(12, "x", "channel").id == "12"  # type: ignore[arg-type]
    assert ChannelInfo(" 12 ", "x", "channel") == ChannelInfo("12", "x", "channel")
