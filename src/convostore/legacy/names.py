"""Replace the placeholder names of imported legacy rows with the names Discord knows.

The legacy files often hold no channel name or username. The importer then writes placeholders
that name the id, ``channel-<channel_id>`` and ``user-<user_id>``, and marks every channel
``channel``, because era-0 files may be DMs without saying so. :func:`resolve_names` asks Discord's
REST API about each placeholder id once and updates the imported rows of one bot:

* a guild channel or thread gets its name; a DM channel becomes ``dm`` with the name a live store
  gives it (``{username}_{user_id}``, :meth:`ChannelInfo.dm`); a group DM its name or its
  recipients' names, as :meth:`ChannelInfo.from_discord` does;
* a user gets ``user.name``;
* only rows with ``source = 'legacy'`` whose current value is exactly the placeholder of their id
  change, so a name the files held and every row a live bot wrote stay as they are;
* one pass over the bot's imported rows finds the placeholder rows by id; each channel and user is
  then written by primary key in short transactions of at most :data:`UPDATE_CHUNK` rows: bots
  sharing the SQLite file wait for one small update at most, and a run that stops half-way loses
  nothing; the next run asks only for the ids that still have placeholders;
* ids Discord does not know (404) or does not show to this bot (403) keep their placeholder and
  are reported.

Rate limits: discord.py's HTTP client waits by itself on a 429 for up to its
``max_ratelimit_timeout``; a longer wait reaches us as :class:`discord.RateLimited`, and the
lookup sleeps ``retry_after`` seconds and tries again. At most ``concurrency`` lookups run at once.

The client is anything with discord.py's ``fetch_channel`` and ``fetch_user`` coroutines
(:class:`NamesClient`); :func:`discord_client` logs a REST-only :class:`discord.Client` in with a
token from the environment variable named by the bot's ``legacy.token_env``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import warnings
from array import array
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal, Protocol, cast

from sqlalchemy import Table, func, literal, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.sql import Executable
from sqlalchemy.sql.elements import ColumnElement

from convostore.channels import ChannelInfo
from convostore.config import BotConfig
from convostore.db import translate_errors
from convostore.engine import make_engine
from convostore.errors import ConfigError, InvalidInput, OperationError
from convostore.legacy.rules import SOURCE, channel_placeholder, user_placeholder
from convostore.models import ConversationModel
from convostore.unit_of_work import UnitOfWorkRunner

logger = logging.getLogger(__name__)

LEGACY_SOURCE = SOURCE
CHANNEL_PLACEHOLDER_PREFIX = channel_placeholder("")
USER_PLACEHOLDER_PREFIX = user_placeholder("")
RATE_LIMIT_ATTEMPTS = 8
"""Lookups of one id that may end in :class:`discord.RateLimited` before the run gives up."""
MAX_RATE_LIMIT_WAIT = 30.0
"""discord.py waits by itself up to this many seconds (its minimum); longer waits are ours."""

UPDATE_CHUNK = 2000
"""Rows per update transaction: each holds SQLite's write lock for a few milliseconds only."""
_SCAN_BATCH = 10_000

_C = cast(Table, ConversationModel.__table__)

Reason = Literal["not_found", "forbidden", "failed"]
Sleep = Callable[[float], Awaitable[Any]]
Progress = Callable[[int, int], None]


class NamesClient(Protocol):
    """What :func:`resolve_names` needs of a Discord client: discord.py's two REST lookups."""

    async def fetch_channel(self, channel_id: int, /) -> object: ...

    async def fetch_user(self, user_id: int, /) -> object: ...


@dataclass(frozen=True, slots=True)
class NameChange:
    """One placeholder replaced (or, in a dry run, that would be)."""

    kind: Literal["channel", "user"]
    id: str
    name: str
    channel_type: Literal["channel", "dm"] | None
    """For a channel, its type as Discord reports it; ``None`` for a user."""
    rows: int
    """Rows changed: those with the placeholder, and for a DM the imported rows typed channel."""


@dataclass(frozen=True, slots=True)
class Unresolved:
    """An id whose placeholder stays, and why."""

    kind: Literal["channel", "user"]
    id: str
    reason: Reason
    detail: str


@dataclass(frozen=True)
class NameResolution:
    """What :func:`resolve_names` did (or, with ``dry_run``, would do) for one bot."""

    bot_name: str
    dry_run: bool
    changes: tuple[NameChange, ...]
    unresolved: tuple[Unresolved, ...]
    lookups: int
    """REST requests made, retries after a rate limit included."""
    rate_limit_waits: int

    @property
    def channels_renamed(self) -> int:
        return sum(1 for c in self.changes if c.kind == "channel" and c.channel_type == "channel")

    @property
    def dms_found(self) -> int:
        return sum(1 for c in self.changes if c.kind == "channel" and c.channel_type == "dm")

    @property
    def users_renamed(self) -> int:
        return sum(1 for c in self.changes if c.kind == "user")

    @property
    def rows_changed(self) -> int:
        return sum(c.rows for c in self.changes)

    def count(self, reason: Reason) -> int:
        return sum(1 for u in self.unresolved if u.reason == reason)

    @property
    def not_found(self) -> int:
        return self.count("not_found")

    @property
    def forbidden(self) -> int:
        return self.count("forbidden")

    @property
    def failed(self) -> int:
        return self.count("failed")


def _load_discord() -> None:
    # discord.py imports the deprecated audioop module; the warning is not ours to show. Later
    # ``import discord`` statements find the module loaded and warn no more.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import discord  # noqa: F401


def discord_token(config: BotConfig) -> str:
    """The bot's Discord token, from the environment variable named by ``legacy.token_env``."""
    name = config.legacy.token_env
    token = os.environ.get(name, "").strip()
    if not token:
        where = config.source or config.name
        raise ConfigError(
            f"{where}: legacy.token_env: environment variable {name} is not set or empty; "
            f"set it to the Discord bot token of {config.name!r}"
        )
    return token


@asynccontextmanager
async def discord_client(token: str, *, token_env: str = "the token") -> AsyncIterator[NamesClient]:
    """A :class:`discord.Client` logged in over REST only (no gateway), closed on exit.

    ``token_env`` only names where the token came from in error messages; the token itself is
    never part of a message.
    """
    _load_discord()
    import aiohttp
    import discord

    client = discord.Client(
        intents=discord.Intents.none(), max_ratelimit_timeout=MAX_RATE_LIMIT_WAIT
    )
    try:
        try:
            await client.login(token)
        except discord.LoginFailure:
            raise OperationError(
                f"Discord refused the token in {token_env} (401 Unauthorized)"
            ) from None
        except discord.HTTPException as exc:
            raise OperationError(f"cannot log in to Discord: HTTP {exc.status}") from None
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise OperationError(f"cannot reach Discord: {type(exc).__name__}") from None
        yield client
    finally:
        await client.close()


def _placeholder(column: ColumnElement[str], id_column: ColumnElement[str], prefix: str) -> Any:
    return column == literal(prefix) + id_column


def _rowcount(statement: Executable, connection: Connection) -> int:
    return int(connection.execute(statement).rowcount or 0)


class _Resolver:
    def __init__(
        self,
        bot: str,
        transactions: UnitOfWorkRunner,
        client: NamesClient,
        *,
        dry_run: bool,
        sleep: Sleep,
    ) -> None:
        _load_discord()
        self.bot = bot
        self.transactions = transactions
        self.client = client
        self.dry_run = dry_run
        self.sleep = sleep
        self.changes: list[NameChange] = []
        self.unresolved: list[Unresolved] = []
        self.lookups = 0
        self.rate_limit_waits = 0
        # One task per id, shared by everyone who needs it: no id is ever asked twice.
        self._users: dict[str, asyncio.Future[object]] = {}
        # Ids of the rows holding each channel's and user's placeholder (see scan).
        self.channel_rows: dict[str, array[int]] = {}
        self.user_rows: dict[str, array[int]] = {}

    # --- Discord -------------------------------------------------------------------------------

    async def _ask(self, lookup: Callable[[int], Awaitable[object]], what: str, id_: str) -> object:
        import discord

        for _attempt in range(RATE_LIMIT_ATTEMPTS):
            self.lookups += 1
            try:
                return await lookup(int(id_))
            except discord.RateLimited as exc:
                self.rate_limit_waits += 1
                logger.warning(
                    "Discord rate limit on %s %s: waiting %.2f s", what, id_, exc.retry_after
                )
                await self.sleep(exc.retry_after)
        raise OperationError(
            f"Discord kept rate-limiting the lookup of {what} {id_} after {RATE_LIMIT_ATTEMPTS} "
            "waits; names resolved so far are saved, run the command again later"
        )

    def _user(self, user_id: str) -> asyncio.Future[object]:
        future = self._users.get(user_id)
        if future is None:
            future = self._users[user_id] = asyncio.ensure_future(
                self._ask(self.client.fetch_user, "user", user_id)
            )
        return future

    def _know_user(self, user: object) -> None:
        """Remember a user that came with a DM channel, so that it is not asked for again."""
        user_id = getattr(user, "id", None)
        if isinstance(user_id, int) and str(user_id) not in self._users:
            known: asyncio.Future[object] = asyncio.get_running_loop().create_future()
            known.set_result(user)
            self._users[str(user_id)] = known

    def _failure(self, exc: Exception) -> Reason | None:
        """Why a lookup failed for its id only; raise when no lookup can succeed any more."""
        import aiohttp
        import discord

        if isinstance(exc, discord.NotFound):
            return "not_found"
        if isinstance(exc, discord.Forbidden):
            return "forbidden"
        if isinstance(exc, discord.HTTPException):
            if exc.status == 401:
                raise OperationError("Discord no longer accepts the token (401 Unauthorized)")
            return "failed"
        if isinstance(exc, discord.InvalidData | InvalidInput):
            return "failed"
        if isinstance(exc, aiohttp.ClientError | TimeoutError | OSError):
            raise OperationError(f"cannot reach Discord: {type(exc).__name__}") from None
        return None

    def _unresolved(self, kind: Literal["channel", "user"], id_: str, exc: Exception) -> bool:
        """Record a lookup that failed for this id only; False for an unexpected error."""
        reason = self._failure(exc)
        if reason is None:
            return False
        detail = _describe(exc)
        self.unresolved.append(Unresolved(kind, id_, reason, detail))
        logger.info("%s %s keeps its placeholder: %s", kind, id_, detail)
        return True

    # --- database ------------------------------------------------------------------------------

    async def scan(self) -> None:
        """Find the rows holding a placeholder, by id, in one pass over the bot's imported rows.

        Users have no index: a query per user would read all of the bot's rows each time (0.3 s
        per user at a million rows). Row ids turn every later update into primary-key lookups.
        """
        is_channel = _placeholder(_C.c.channel_name, _C.c.channel_id, CHANNEL_PLACEHOLDER_PREFIX)
        is_user = _placeholder(_C.c.username, _C.c.user_id, USER_PLACEHOLDER_PREFIX)
        query = (
            select(_C.c.id, _C.c.channel_id, _C.c.user_id, is_channel, is_user)
            .where(
                _C.c.bot_name == self.bot, _C.c.source == LEGACY_SOURCE, or_(is_channel, is_user)
            )
            .execution_options(yield_per=_SCAN_BATCH)
        )

        def scan(connection: Connection) -> None:
            for row_id, channel_id, user_id, channel_row, user_row in connection.execute(query):
                if channel_row:
                    self.channel_rows.setdefault(channel_id, array("q")).append(row_id)
                if user_row:
                    self.user_rows.setdefault(user_id, array("q")).append(row_id)

        if self.transactions.engine.url.get_backend_name() == "sqlite":
            # One statement without BEGIN: a snapshot that never holds up the bots' writes.
            await self.transactions.read(scan)
        else:
            # asyncpg streams rows only inside a transaction; reading in one blocks nobody.
            await self.transactions.write(scan)

    async def _legacy_users_of(self, channel_id: str) -> list[str]:
        return await self.transactions.read(
            lambda c: [
                r[0]
                for r in c.execute(
                    select(_C.c.user_id)
                    .distinct()
                    .where(
                        _C.c.bot_name == self.bot,
                        _C.c.source == LEGACY_SOURCE,
                        _C.c.channel_id == channel_id,
                    )
                )
            ]
        )

    async def _save_channel(self, info: ChannelInfo) -> int:
        own = [_C.c.bot_name == self.bot, _C.c.source == LEGACY_SOURCE, _C.c.channel_id == info.id]
        placeholder = _C.c.channel_name == CHANNEL_PLACEHOLDER_PREFIX + info.id
        # Discord says what the channel is: every imported row of it gets that type, also those
        # whose name the files held (the files never said whether it was a DM). Retyped first: if
        # the run stops before the renames are done, the channel still has placeholders and the
        # next run asks for it again.
        retype = [*own, _C.c.channel_type != info.type, ~placeholder]
        row_ids = self.channel_rows.pop(info.id, array("q"))
        if self.dry_run:
            retyped = await self.transactions.read(
                lambda c: c.execute(select(func.count()).where(*retype)).scalar_one()
            )
            return int(retyped) + len(row_ids)
        changed = await self.transactions.write(
            functools.partial(_rowcount, update(_C).where(*retype).values(channel_type=info.type))
        )
        return changed + await self._update_by_id(
            row_ids,
            [_C.c.source == LEGACY_SOURCE, _C.c.channel_id == info.id, placeholder],
            channel_name=info.name,
            channel_type=info.type,
        )

    async def _save_user(self, user_id: str, name: str) -> int:
        row_ids = self.user_rows.pop(user_id, array("q"))
        if self.dry_run:
            return len(row_ids)
        where = [
            _C.c.source == LEGACY_SOURCE,
            _C.c.user_id == user_id,
            _C.c.username == USER_PLACEHOLDER_PREFIX + user_id,
        ]
        return await self._update_by_id(row_ids, where, username=name)

    async def _update_by_id(self, row_ids: array[int], where: list[Any], **values: str) -> int:
        """Update the rows among ``row_ids`` that still match ``where``, a chunk per transaction.

        ``where`` must not name ``bot_name``: SQLite would then walk the bot's index, all of the
        bot's rows, instead of looking the ids up (0.38 s instead of 0.01 s for 50 rows of a
        million). The ids come from the scan of this bot's rows, and a row never changes bot.
        """
        changed = 0
        for start in range(0, len(row_ids), UPDATE_CHUNK):
            chunk = row_ids[start : start + UPDATE_CHUNK].tolist()
            statement = update(_C).where(_C.c.id.in_(chunk), *where).values(**values)
            changed += await self.transactions.write(functools.partial(_rowcount, statement))
        return changed

    # --- one id each ---------------------------------------------------------------------------

    async def channel(self, channel_id: str) -> None:
        try:
            channel = await self._ask(self.client.fetch_channel, "channel", channel_id)
        except Exception as exc:
            if self._unresolved("channel", channel_id, exc):
                return
            raise
        recipient = getattr(channel, "recipient", None)
        if recipient is not None:
            self._know_user(recipient)
        elif _is_dm(channel):
            recipient = await self._only_user_of(channel_id)
        try:
            info = ChannelInfo.from_discord(channel, recipient=recipient)
            if info.id != channel_id:
                raise InvalidInput(f"Discord answered with channel {info.id}")
        except InvalidInput as exc:
            self._unresolved("channel", channel_id, exc)
            return
        if not info.name:
            self.unresolved.append(
                Unresolved("channel", channel_id, "failed", "Discord gave no name")
            )
            return
        rows = await self._save_channel(info)
        if rows:
            self.changes.append(NameChange("channel", channel_id, info.name, info.type, rows))

    async def _only_user_of(self, channel_id: str) -> object | None:
        """For a DM channel that came without its recipient: the one user of its rows, if any."""
        users = await self._legacy_users_of(channel_id)
        if len(users) != 1:
            return None
        try:
            return await self._user(users[0])
        except Exception as exc:
            # The user's own lookup reports the failure; the DM is named as a live store would.
            if self._failure(exc) is None:
                raise
            return None

    async def user(self, user_id: str) -> None:
        try:
            user = await self._user(user_id)
        except Exception as exc:
            if self._unresolved("user", user_id, exc):
                return
            raise
        name = getattr(user, "name", None)
        if not isinstance(name, str) or not name:
            self.unresolved.append(Unresolved("user", user_id, "failed", "Discord gave no name"))
            return
        rows = await self._save_user(user_id, name)
        if rows:
            self.changes.append(NameChange("user", user_id, name, None, rows))


def _is_dm(channel: object) -> bool:
    import discord

    return getattr(channel, "type", None) is discord.ChannelType.private


def _describe(exc: Exception) -> str:
    import discord

    if isinstance(exc, discord.HTTPException):
        text = (exc.text or "").strip().splitlines()
        return f"HTTP {exc.status}" + (f": {text[0]}" if text else "")
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


async def _each(ids: Sequence[str], work: Callable[[str], Awaitable[None]], workers: int) -> None:
    pending = iter(ids)

    async def worker() -> None:
        # One shared iterator: each id goes to exactly one worker.
        for id_ in pending:
            await work(id_)

    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(min(workers, len(ids))):
                group.create_task(worker())
    except BaseExceptionGroup as failures:
        # The first failure is the one to report; the other workers were cancelled because of it.
        raise failures.exceptions[0] from None


async def resolve_names(
    config: BotConfig,
    client: NamesClient,
    *,
    dry_run: bool = False,
    concurrency: int = 4,
    sleep: Sleep = asyncio.sleep,
    progress: Progress | None = None,
) -> NameResolution:
    """Replace the placeholder channel names and usernames of ``config``'s imported rows.

    ``client`` answers ``fetch_channel``/``fetch_user`` (see :func:`discord_client`); ``sleep``
    waits out rate limits; ``progress(done, total)`` is called once before the first lookup and
    after each id. With ``dry_run`` nothing is written and the result says what would change.
    """
    if concurrency < 1:
        raise InvalidInput("concurrency must be at least 1")
    # Pooled: thousands of short transactions; a new PostgreSQL connection for each would cost
    # more than the update itself. No pre-ping: the run is short and a failure is reported.
    engine = make_engine(
        config.database_url, synchronous=config.storage.synchronous, pool_pre_ping=False
    )
    transactions = UnitOfWorkRunner(engine)
    where = f"resolve-names of {config.name} on {config.safe_database_url}"
    resolver = _Resolver(config.name, transactions, client, dry_run=dry_run, sleep=sleep)
    try:
        with translate_errors(where):
            await resolver.scan()
            channels = sorted(resolver.channel_rows, key=int)
            users = sorted(resolver.user_rows, key=int)
            total = len(channels) + len(users)
            done = 0

            def counted(work: Callable[[str], Awaitable[None]]) -> Callable[[str], Awaitable[None]]:
                async def run(id_: str) -> None:
                    nonlocal done
                    await work(id_)
                    done += 1
                    if progress is not None:
                        progress(done, total)

                return run

            if progress is not None:
                progress(0, total)
            # Channels first: a DM channel brings its recipient, whose lookup is then saved.
            await _each(channels, counted(resolver.channel), concurrency)
            await _each(users, counted(resolver.user), concurrency)
    finally:
        for future in resolver._users.values():
            future.cancel()
        await transactions.close()
        await engine.dispose()
    return NameResolution(
        bot_name=config.name,
        dry_run=dry_run,
        changes=tuple(sorted(resolver.changes, key=lambda c: (c.kind, int(c.id)))),
        unresolved=tuple(sorted(resolver.unresolved, key=lambda u: (u.kind, int(u.id)))),
        lookups=resolver.lookups,
        rate_limit_waits=resolver.rate_limit_waits,
    )


__all__ = [
    "CHANNEL_PLACEHOLDER_PREFIX",
    "LEGACY_SOURCE",
    "USER_PLACEHOLDER_PREFIX",
    "NameChange",
    "NameResolution",
    "NamesClient",
    "Unresolved",
    "discord_client",
    "discord_token",
    "resolve_names",
]
