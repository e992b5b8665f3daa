"""convostore: the conversation store for multi-bot Discord systems.

One :class:`BotStore` per bot, configured by the bot's own YAML file, over SQLite (default) or
PostgreSQL, with a schema owned by Alembic.
"""

import logging

from convostore.channels import ChannelInfo
from convostore.chat import to_chat_messages
from convostore.config import BotConfig, load_config, load_configs
from convostore.errors import (
    ConfigError,
    ConvostoreError,
    DatabaseLockedError,
    DatabaseUnavailableError,
    InvalidInput,
    LegacyImportError,
    OperationError,
    ReadOnlyDatabaseError,
    SchemaError,
    StorageError,
)
from convostore.records import ChatSession, MessageRevision, SearchHit, StoredMessage
from convostore.store import BotStore

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "BotConfig",
    "BotStore",
    "ChannelInfo",
    "ChatSession",
    "ConfigError",
    "ConvostoreError",
    "DatabaseLockedError",
    "DatabaseUnavailableError",
    "InvalidInput",
    "LegacyImportError",
    "MessageRevision",
    "OperationError",
    "ReadOnlyDatabaseError",
    "SchemaError",
    "SearchHit",
    "StorageError",
    "StoredMessage",
    "load_config",
    "load_configs",
    "to_chat_messages",
]
