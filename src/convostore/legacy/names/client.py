"""The Discord side of name resolution: the client protocol, the token, a REST-only login."""

from __future__ import annotations

import os
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Protocol

from convostore.config import BotConfig
from convostore.errors import ConfigError, OperationError

MAX_RATE_LIMIT_WAIT = 30.0
"""discord.py waits by itself up to this many seconds (its minimum); longer waits are ours."""


class NamesClient(Protocol):
    """What :func:`~convostore.legacy.names.resolve_names` needs of a Discord client: discord.py's
    two REST lookups."""

    async def fetch_channel(self, channel_id: int, /) -> object: ...

    async def fetch_user(self, user_id: int, /) -> object: ...


def load_discord() -> None:
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
    load_discord()
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


def is_dm(channel: object) -> bool:
    import discord

    return getattr(channel, "type", None) is discord.ChannelType.private


def describe(exc: Exception) -> str:
    import discord

    if isinstance(exc, discord.HTTPException):
        text = (exc.text or "").strip().splitlines()
        return f"HTTP {exc.status}" + (f": {text[0]}" if text else "")
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
