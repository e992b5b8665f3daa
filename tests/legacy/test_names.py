"""resolve_names: imported placeholders replaced from a stand-in of discord.py's REST client.

The stand-in answers with real discord.py objects (built on a real ConnectionState, no network)
and raises real discord.py exceptions, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import warnings
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, cast

import pytest
from sqlalchemy import Table, insert, select

from convostore import BotConfig, ConfigError
from convostore.engine import make_engine
from convostore.errors import OperationError
from convostore.legacy import names
from convostore.legacy.names import NameChange, discord_client, discord_token, resolve_names
from convostore.models import ChatSessionModel, ConversationModel
from tests.conftest import ConfigFactory

with warnings.catch_warnings():
    # discord.py imports the deprecated audioop module; filterwarnings=error would fail collection.
    warnings.simplefilter("ignore", DeprecationWarning)
    import discord

_C = cast(Table, ConversationModel.__table__)
_S = cast(Table, ChatSessionModel.__table__)
T0 = datetime(2025, 7, 8, 14, 58, tzinfo=UTC)

# --- real discord.py objects, no network ---------------------------------------------------------

STATE: Any = discord.Client(intents=discord.Intents.none())._connection
GUILD = discord.Guild(data={"id": "1", "name": "guild"}, state=STATE)  # type: ignore[typeddict-item]
ME = discord.ClientUser(
    state=STATE,
    data={"id": "1000", "username": "sage", "discriminator": "0", "avatar": None},  # type: ignore[typeddict-item]
)


def user_data(user_id: int, name: str) -> dict[str, Any]:
    return {"id": str(user_id), "username": name, "discriminator": "0", "avatar": None}


def user(user_id: int, name: str) -> discord.User:
    return discord.User(state=STATE, data=user_data(user_id, name))  # type: ignore[arg-type]


def text_channel(channel_id: int, name: str) -> discord.TextChannel:
    data = {"id": str(channel_id), "type": 0, "name": name, "position": 0}
    return discord.TextChannel(state=STATE, guild=GUILD, data=data)  # type: ignore[arg-type]


def thread(channel_id: int, name: str) -> discord.Thread:
    data = {
        "id": str(channel_id),
        "parent_id": "101",
        "owner_id": "42",
        "name": name,
        "type": 11,
        "message_count": 0,
        "member_count": 0,
        "thread_metadata": {
            "archived": False,
            "auto_archive_duration": 60,
            "archive_timestamp": "2024-01-01T00:00:00+00:00",
            "locked": False,
        },
    }
    return discord.Thread(guild=GUILD, state=STATE, data=data)  # type: ignore[arg-type]


def dm_channel(channel_id: int, recipient: tuple[int, str] | None) -> discord.DMChannel:
    data: Any = {"id": str(channel_id), "type": 1}
    if recipient is not None:
        data["recipients"] = [user_data(*recipient)]
    return discord.DMChannel(me=ME, state=STATE, data=data)


def group_channel(channel_id: int, recipients: list[tuple[int, str]]) -> discord.GroupChannel:
    data = {
        "id": str(channel_id),
        "type": 3,
        "name": None,
        "owner_id": "42",
        "recipients": [user_data(*r) for r in recipients],
    }
    return discord.GroupChannel(me=ME, state=STATE, data=data)  # type: ignore[arg-type]


def not_found(what: str) -> discord.NotFound:
    response = SimpleNamespace(status=404, reason="Not Found")
    return discord.NotFound(response, {"code": 10003, "message": f"Unknown {what}"})  # type: ignore[arg-type]


def forbidden() -> discord.Forbidden:
    response = SimpleNamespace(status=403, reason="Forbidden")
    return discord.Forbidden(response, {"code": 50001, "message": "Missing Access"})  # type: ignore[arg-type]


def unauthorized() -> discord.HTTPException:
    response = SimpleNamespace(status=401, reason="Unauthorized")
    return discord.HTTPException(response, {"code": 0, "message": "401: Unauthorized"})  # type: ignore[arg-type]


class StandInDiscord:
    """Answers fetch_channel/fetch_user from tables; records every call; bounded-concurrency probe.

    ``rate_limits[id]`` lists the ``retry_after`` values of the RateLimited errors raised before
    the real answer.
    """

    def __init__(
        self,
        channels: dict[int, object],
        users: dict[int, object],
        rate_limits: dict[int, list[float]] | None = None,
    ) -> None:
        self.channels = channels
        self.users = users
        self.rate_limits = {k: list(v) for k, v in (rate_limits or {}).items()}
        self.channel_calls: list[int] = []
        self.user_calls: list[int] = []
        self.in_flight = 0
        self.max_in_flight = 0

    async def _answer(self, table: dict[int, object], key: int) -> object:
        assert isinstance(key, int)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0.001)  # let the other workers run meanwhile
            waits = self.rate_limits.get(key)
            if waits:
                raise discord.RateLimited(waits.pop(0))
            answer = table.get(key, not_found("thing"))
            if isinstance(answer, BaseException):
                raise answer
            return answer
        finally:
            self.in_flight -= 1

    async def fetch_channel(self, channel_id: int, /) -> object:
        self.channel_calls.append(channel_id)
        return await self._answer(self.channels, channel_id)

    async def fetch_user(self, user_id: int, /) -> object:
        self.user_calls.append(user_id)
        return await self._answer(self.users, user_id)


def discord_world() -> StandInDiscord:
    """What Discord knows about the ids of :func:`add_rows`."""
    return StandInDiscord(
        channels={
            101: text_channel(101, "général 🎉"),
            102: thread(102, "a/b thread"),
            103: dm_channel(103, (42, "alice")),
            104: not_found("Channel"),
            105: forbidden(),
            106: text_channel(106, "ops"),
            107: group_channel(107, [(42, "alice"), (43, "bob")]),
            108: dm_channel(108, None),
        },
        users={
            42: user(42, "alice"),
            43: user(43, "bob"),
            44: user(44, "carol"),
            45: not_found("User"),
            46: user(46, "dave"),
        },
        rate_limits={106: [1.5, 0.25], 46: [2.0]},
    )


class Sleeps:
    def __init__(self) -> None:
        self.seconds: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.seconds.append(seconds)


# --- rows ----------------------------------------------------------------------------------------

# (bot, channel_id, channel_name, user_id, username, source)
ROWS: list[tuple[str, str, str, str, str, str | None]] = [
    ("sage", "101", "channel-101", "42", "user-42", "legacy"),
    ("sage", "101", "channel-101", "43", "user-43", "legacy"),
    ("sage", "101", "channel-101", "42", "user-42", None),  # a live row: never touched
    ("sage", "102", "channel-102", "44", "user-44", "legacy"),
    ("sage", "103", "channel-103", "42", "user-42", "legacy"),
    ("sage", "103", "alice-dm", "42", "alice", "legacy"),  # names the files held
    ("sage", "104", "channel-104", "45", "user-45", "legacy"),
    ("sage", "105", "channel-105", "46", "user-46", "legacy"),
    ("sage", "106", "channel-106", "47", "erin", "legacy"),
    ("sage", "107", "channel-107", "43", "user-43", "legacy"),
    ("sage", "108", "channel-108", "44", "user-44", "legacy"),
    ("sage", "109", "random", "47", "erin", "legacy"),
    ("sage", "110", "channel-1100", "48", "user-480", "legacy"),  # not the placeholder of its id
    ("spark", "101", "channel-101", "42", "user-42", "legacy"),  # another bot's rows
]


async def add_rows(
    db_url: str, rows: list[tuple[str, str, str, str, str, str | None]] = ROWS
) -> None:
    """Insert rows as the importer (source 'legacy') and a live bot (source NULL) write them."""
    engine = make_engine(db_url, null_pool=True)
    try:
        async with engine.begin() as connection:
            sessions = {(bot, channel, source) for bot, channel, *_, source in rows}
            await connection.execute(
                insert(_S),
                [
                    {
                        "bot_name": bot,
                        "channel_id": channel,
                        "session_id": f"2025-07-08_14-58-00_3600s-{source or 'live'}",
                        "started_at": T0,
                        "last_activity": T0,
                        "message_count": 1,
                        "is_active": False,
                        "source": source,
                    }
                    for bot, channel, source in sessions
                ],
            )
            await connection.execute(
                insert(_C),
                [
                    {
                        "bot_name": bot,
                        "channel_id": channel,
                        "channel_name": channel_name,
                        "channel_type": "channel",
                        "user_id": user_id,
                        "username": username,
                        "session_id": f"2025-07-08_14-58-00_3600s-{source or 'live'}",
                        "message_id": str(1_000 + index),
                        "role": "user",
                        "content": f"message {index}",
                        "timestamp": T0 + timedelta(seconds=index),
                        "source": source,
                    }
                    for index, (bot, channel, channel_name, user_id, username, source) in enumerate(
                        rows
                    )
                ],
            )
    finally:
        await engine.dispose()


async def read_rows(db_url: str) -> list[tuple[str, str, str, str, str, str, str | None]]:
    """(message_id, bot, channel_id, channel_name, channel_type, username, source) by message id."""
    engine = make_engine(db_url, null_pool=True)
    try:
        async with engine.connect() as connection:
            result = await connection.execute(
                select(
                    _C.c.message_id,
                    _C.c.bot_name,
                    _C.c.channel_id,
                    _C.c.channel_name,
                    _C.c.channel_type,
                    _C.c.username,
                    _C.c.source,
                ).order_by(_C.c.message_id)
            )
            return [tuple(row) for row in result]
    finally:
        await engine.dispose()


def by_message(rows: list[tuple[Any, ...]]) -> dict[int, tuple[str, str, str]]:
    """Index of ROWS -> (channel_name, channel_type, username)."""
    return {int(r[0]) - 1_000: (r[3], r[4], r[5]) for r in rows}


# --- tests ---------------------------------------------------------------------------------------

EXPECTED_CHANGES = (
    NameChange("channel", "101", "général 🎉", "channel", 2),
    NameChange("channel", "102", "a/b thread", "channel", 1),
    NameChange("channel", "103", "alice_42", "dm", 2),
    NameChange("channel", "106", "ops", "channel", 1),
    NameChange("channel", "107", "alice, bob", "dm", 1),
    NameChange("channel", "108", "carol_44", "dm", 1),
    NameChange("user", "42", "alice", None, 2),
    NameChange("user", "43", "bob", None, 2),
    NameChange("user", "44", "carol", None, 2),
    NameChange("user", "46", "dave", None, 1),
)


async def test_placeholders_are_replaced_from_discord(
    make_config: ConfigFactory, db_url: str
) -> None:
    await add_rows(db_url)
    before = by_message(await read_rows(db_url))
    client = discord_world()
    sleeps = Sleeps()
    seen: list[tuple[int, int]] = []

    result = await resolve_names(
        make_config("sage"),
        client,
        sleep=sleeps,
        progress=lambda done, total: seen.append((done, total)),
    )

    after = by_message(await read_rows(db_url))
    assert after[0] == ("général 🎉", "channel", "alice")
    assert after[1] == ("général 🎉", "channel", "bob")
    assert after[3] == ("a/b thread", "channel", "carol")
    # A DM: marked dm and named as the live store names DMs, username_userid.
    assert after[4] == ("alice_42", "dm", "alice")
    # The name the files held stays; the channel is a DM whatever the files said.
    assert after[5] == ("alice-dm", "dm", "alice")
    assert after[6] == ("channel-104", "channel", "user-45")  # channel and user not found
    assert after[7] == ("channel-105", "channel", "dave")  # channel forbidden
    assert after[8] == ("ops", "channel", "erin")
    assert after[9] == ("alice, bob", "dm", "bob")  # group DM named after its recipients
    assert after[10] == ("carol_44", "dm", "carol")  # DM without recipient: the rows' one user
    # Untouched: real names, a live row, a value that is not its own id's placeholder, other bot.
    for index in (2, 11, 12, 13):
        assert after[index] == before[index], ROWS[index]
    assert after[2] == ("channel-101", "channel", "user-42")

    assert result.changes == EXPECTED_CHANGES
    assert (result.channels_renamed, result.dms_found, result.users_renamed) == (3, 3, 4)
    assert (result.not_found, result.forbidden, result.failed) == (2, 1, 0)
    assert [(u.kind, u.id, u.reason) for u in result.unresolved] == [
        ("channel", "104", "not_found"),
        ("channel", "105", "forbidden"),
        ("user", "45", "not_found"),
    ]
    assert result.unresolved[0].detail == "HTTP 404: Unknown Channel"
    assert result.rows_changed == 15

    # Each id asked once; a rate-limited one again after each wait, which slept retry_after.
    assert Counter(client.channel_calls) == {
        101: 1, 102: 1, 103: 1, 104: 1, 105: 1, 106: 3, 107: 1, 108: 1
    }  # fmt: skip
    # 42 came with DM 103 and 44 was asked once for DM 108: neither is asked again.
    assert Counter(client.user_calls) == {43: 1, 44: 1, 45: 1, 46: 2}
    assert sorted(sleeps.seconds) == [0.25, 1.5, 2.0]
    assert result.rate_limit_waits == 3
    assert result.lookups == len(client.channel_calls) + len(client.user_calls) == 15
    assert 1 < client.max_in_flight <= 4
    assert seen[0] == (0, 13) and seen[-1] == (13, 13) and len(seen) == 14


async def test_a_second_run_asks_only_for_what_is_still_a_placeholder(
    make_config: ConfigFactory, db_url: str
) -> None:
    await add_rows(db_url)
    config = make_config("sage")
    await resolve_names(config, discord_world(), sleep=Sleeps())
    settled = await read_rows(db_url)

    again = discord_world()
    result = await resolve_names(config, again, sleep=Sleeps())

    assert sorted(again.channel_calls) == [104, 105]
    assert again.user_calls == [45]
    assert result.changes == ()
    assert await read_rows(db_url) == settled


async def test_dry_run_writes_nothing_and_reports_the_same_changes(
    make_config: ConfigFactory, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(names, "UPDATE_CHUNK", 1)  # every row in a transaction of its own
    await add_rows(db_url)
    before = await read_rows(db_url)
    config = make_config("sage")

    dry = await resolve_names(config, discord_world(), dry_run=True, sleep=Sleeps())

    assert await read_rows(db_url) == before
    assert dry.dry_run and dry.changes == EXPECTED_CHANGES
    real = await resolve_names(config, discord_world(), sleep=Sleeps())
    assert (real.changes, real.unresolved) == (dry.changes, dry.unresolved)


async def test_only_the_configured_bot_is_resolved(make_config: ConfigFactory, db_url: str) -> None:
    await add_rows(db_url)
    client = discord_world()

    result = await resolve_names(make_config("spark"), client, sleep=Sleeps())

    assert client.channel_calls == [101] and client.user_calls == [42]
    rows = by_message(await read_rows(db_url))
    assert rows[13] == ("général 🎉", "channel", "alice")
    assert rows[0] == ("channel-101", "channel", "user-42"), "sage's rows stay"
    assert result.rows_changed == 2


async def test_concurrency_one_asks_one_at_a_time(make_config: ConfigFactory, db_url: str) -> None:
    await add_rows(db_url)
    client = discord_world()
    await resolve_names(make_config("sage"), client, concurrency=1, sleep=Sleeps())
    assert client.max_in_flight == 1
    assert client.channel_calls == [101, 102, 103, 104, 105, 106, 106, 106, 107, 108]


async def test_a_crash_keeps_what_was_saved_and_a_rerun_finishes(
    make_config: ConfigFactory, db_url: str
) -> None:
    await add_rows(db_url)
    config = make_config("sage")
    failing = discord_world()
    failing.channels[103] = unauthorized()  # the token was revoked half-way

    with pytest.raises(OperationError, match=r"no longer accepts the token \(401"):
        await resolve_names(config, failing, concurrency=1, sleep=Sleeps())

    rows = by_message(await read_rows(db_url))
    assert rows[0][0] == "général 🎉" and rows[3][0] == "a/b thread", "saved before the failure"
    assert rows[4] == ("channel-103", "channel", "user-42")

    rerun = discord_world()
    result = await resolve_names(config, rerun, concurrency=1, sleep=Sleeps())
    assert 101 not in rerun.channel_calls and 102 not in rerun.channel_calls
    assert by_message(await read_rows(db_url))[4] == ("alice_42", "dm", "alice")
    assert result.dms_found == 3


async def test_endless_rate_limits_stop_the_run(make_config: ConfigFactory, db_url: str) -> None:
    await add_rows(db_url)
    client = discord_world()
    client.rate_limits[101] = [60.0] * 100
    sleeps = Sleeps()

    with pytest.raises(OperationError, match="kept rate-limiting the lookup of channel 101"):
        await resolve_names(make_config("sage"), client, concurrency=1, sleep=sleeps)

    assert sleeps.seconds == [60.0] * names.RATE_LIMIT_ATTEMPTS


async def test_other_http_errors_are_reported_and_the_run_goes_on(
    make_config: ConfigFactory, db_url: str
) -> None:
    await add_rows(db_url)
    client = discord_world()
    response = SimpleNamespace(status=500, reason="Internal Server Error")
    client.channels[101] = discord.DiscordServerError(response, "oops")  # type: ignore[arg-type]
    category: Any = {"id": "102", "type": 4, "name": "a category", "position": 0}
    client.channels[102] = discord.CategoryChannel(state=STATE, guild=GUILD, data=category)
    client.users[44] = not_found("User")  # the user of DM 108, which comes without recipient

    result = await resolve_names(make_config("sage"), client, sleep=Sleeps())

    assert [(u.id, u.reason, u.detail) for u in result.unresolved if u.reason == "failed"] == [
        ("101", "failed", "HTTP 500: oops"),
        ("102", "failed", "cannot store messages of a category channel (CategoryChannel)"),
    ]
    assert [(u.kind, u.id) for u in result.unresolved if u.reason == "not_found"] == [
        ("channel", "104"),
        ("user", "44"),
        ("user", "45"),
    ]
    assert client.user_calls.count(44) == 1
    rows = by_message(await read_rows(db_url))
    # Named as a live store names a DM whose recipient is unknown.
    assert rows[10] == ("unknown_user_unknown", "dm", "user-44")
    assert rows[0][0] == "channel-101" and rows[3][0] == "channel-102"
    assert result.dms_found == 3


def test_token_comes_from_the_variable_the_config_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = BotConfig.model_validate({"name": "sage", "legacy": {"token_env": "SAGE_TOKEN"}})
    monkeypatch.setenv("SAGE_TOKEN", "  the-token \n")
    assert discord_token(config) == "the-token"
    for value in ("", "   "):
        monkeypatch.setenv("SAGE_TOKEN", value)
        with pytest.raises(
            ConfigError, match="environment variable SAGE_TOKEN is not set or empty"
        ):
            discord_token(config)
    monkeypatch.delenv("SAGE_TOKEN")
    with pytest.raises(ConfigError) as info:
        discord_token(config)
    assert str(info.value).startswith("sage: legacy.token_env: environment variable SAGE_TOKEN")


async def test_a_refused_token_is_one_line_without_the_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token = "MTA5ODc2NTQzMjEwOTg3NjU0.GxYz12.secret-part"
    closed: list[bool] = []

    async def login(self: discord.Client, given: str) -> None:
        assert given == token
        raise discord.LoginFailure("Improper token has been passed.")

    original_close = discord.Client.close

    async def close(self: discord.Client) -> None:
        closed.append(True)
        await original_close(self)

    monkeypatch.setattr(discord.Client, "login", login)
    monkeypatch.setattr(discord.Client, "close", close)

    with pytest.raises(OperationError) as info:
        async with discord_client(token, token_env="SAGE_TOKEN"):
            pass  # pragma: no cover

    assert str(info.value) == "Discord refused the token in SAGE_TOKEN (401 Unauthorized)"
    assert token not in str(info.value) and closed == [True]


def test_the_real_client_fits_the_protocol() -> None:
    fetchers: list[Callable[..., Any]] = [
        discord.Client.fetch_channel,
        discord.Client.fetch_user,
    ]
    assert all(asyncio.iscoroutinefunction(f) for f in fetchers)
