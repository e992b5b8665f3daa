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

from convostore.legacy.names.client import (
    MAX_RATE_LIMIT_WAIT,
    NamesClient,
    discord_client,
    discord_token,
)
from convostore.legacy.names.placeholders import (
    CHANNEL_PLACEHOLDER_PREFIX,
    LEGACY_SOURCE,
    UPDATE_CHUNK,
    USER_PLACEHOLDER_PREFIX,
)
from convostore.legacy.names.resolver import RATE_LIMIT_ATTEMPTS, Progress, Sleep, resolve_names
from convostore.legacy.names.result import NameChange, NameResolution, Reason, Unresolved

__all__ = [
    "CHANNEL_PLACEHOLDER_PREFIX",
    "LEGACY_SOURCE",
    "MAX_RATE_LIMIT_WAIT",
    "RATE_LIMIT_ATTEMPTS",
    "UPDATE_CHUNK",
    "USER_PLACEHOLDER_PREFIX",
    "NameChange",
    "NameResolution",
    "NamesClient",
    "Progress",
    "Reason",
    "Sleep",
    "Unresolved",
    "discord_client",
    "discord_token",
    "resolve_names",
]
