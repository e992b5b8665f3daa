"""Name resolution: each placeholder id asked of Discord once, the answer saved."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal

from convostore.channels import ChannelInfo
from convostore.config import BotConfig
from convostore.db import translate_errors
from convostore.engine import make_engine
from convostore.errors import InvalidInput, OperationError
from convostore.legacy.names.client import NamesClient, describe, is_dm, load_discord
from convostore.legacy.names.placeholders import PlaceholderRows
from convostore.legacy.names.result import NameChange, NameResolution, Reason, Unresolved
from convostore.unit_of_work import UnitOfWorkRunner

logger = logging.getLogger("convostore.legacy.names")

RATE_LIMIT_ATTEMPTS = 8
"""Lookups of one id that may end in :class:`discord.RateLimited` before the run gives up."""

Sleep = Callable[[float], Awaitable[Any]]
Progress = Callable[[int, int], None]


class Resolver:
    """Looks each placeholder id up once and saves what Discord says."""

    def __init__(
        self,
        bot: str,
        transactions: UnitOfWorkRunner,
        client: NamesClient,
        *,
        dry_run: bool,
        sleep: Sleep,
    ) -> None:
        load_discord()
        self.bot = bot
        self.rows = PlaceholderRows(bot, transactions, dry_run=dry_run)
        self.client = client
        self.dry_run = dry_run
        self.sleep = sleep
        self.changes: list[NameChange] = []
        self.unresolved: list[Unresolved] = []
        self.lookups = 0
        self.rate_limit_waits = 0
        # One task per id, shared by everyone who needs it: no id is ever asked twice.
        self._users: dict[str, asyncio.Future[object]] = {}

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

    def pending_lookups(self) -> list[asyncio.Future[object]]:
        """The user lookups started, to cancel those still running when the run ends."""
        return list(self._users.values())

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
        detail = describe(exc)
        self.unresolved.append(Unresolved(kind, id_, reason, detail))
        logger.info("%s %s keeps its placeholder: %s", kind, id_, detail)
        return True

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
        elif is_dm(channel):
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
        rows = await self.rows.save_channel(info)
        if rows:
            self.changes.append(NameChange("channel", channel_id, info.name, info.type, rows))

    async def _only_user_of(self, channel_id: str) -> object | None:
        """For a DM channel that came without its recipient: the one user of its rows, if any."""
        users = await self.rows.legacy_users_of(channel_id)
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
        rows = await self.rows.save_user(user_id, name)
        if rows:
            self.changes.append(NameChange("user", user_id, name, None, rows))


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
    resolver = Resolver(config.name, transactions, client, dry_run=dry_run, sleep=sleep)
    try:
        with translate_errors(where):
            await resolver.rows.scan()
            channels = sorted(resolver.rows.channel_rows, key=int)
            users = sorted(resolver.rows.user_rows, key=int)
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
        for future in resolver.pending_lookups():
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
