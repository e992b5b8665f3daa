"""The convostore exception tree.

Every error the library raises on purpose derives from :class:`ConvostoreError`::

    ConvostoreError
    ├── ConfigError                 a bot's YAML file is unreadable or invalid
    ├── InvalidInput (ValueError)   a caller passed a value the store cannot accept
    ├── StorageError                the database refused or failed an operation
    │   ├── DatabaseLockedError     another process held the write lock past the busy timeout
    │   ├── ReadOnlyDatabaseError   the database file (or its directory) is not writable
    │   ├── DatabaseUnavailableError the server or file cannot be reached at all
    │   └── SchemaError             the schema is missing, or newer than this code knows
    ├── LegacyImportError           the legacy JSON import could not finish
    └── OperationError              a maintenance job (backup, restore, export, ...) failed

Messages are one line, name what was wrong and where, and never contain a password.
"""

from __future__ import annotations


class ConvostoreError(Exception):
    """Root of every error raised by convostore."""


class ConfigError(ConvostoreError):
    """A bot configuration file is unreadable or invalid."""


class InvalidInput(ConvostoreError, ValueError):
    """A value passed to the store is not acceptable (naive timestamp, bad role, empty id...)."""


class StorageError(ConvostoreError):
    """The database refused or failed an operation."""


class DatabaseLockedError(StorageError):
    """Another connection held the write lock for longer than the busy timeout."""


class ReadOnlyDatabaseError(StorageError):
    """The database file or its directory cannot be written."""


class DatabaseUnavailableError(StorageError):
    """The database server or file cannot be reached."""


class SchemaError(StorageError):
    """The database has no convostore schema, or one newer than this code knows."""


class LegacyImportError(ConvostoreError):
    """The legacy JSON import could not finish."""


class OperationError(ConvostoreError):
    """A maintenance job (backup, restore, cleanup, export...) failed."""


__all__ = [
    "ConfigError",
    "ConvostoreError",
    "DatabaseLockedError",
    "DatabaseUnavailableError",
    "InvalidInput",
    "LegacyImportError",
    "OperationError",
    "ReadOnlyDatabaseError",
    "SchemaError",
    "StorageError",
]
