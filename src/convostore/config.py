"""Per-bot YAML configuration: load, expand ``${ENV}`` and ``{bot_name}``, validate.

Each bot has its own file (default directory ``config/bots/``, or ``$CONVOSTORE_CONFIG_DIR``).
Validation is done by pydantic; every problem becomes one :class:`ConfigError` line that names the
file and the key, and never echoes a value that could hold a secret.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from convostore.errors import ConfigError

CONFIG_DIR_ENV = "CONVOSTORE_CONFIG_DIR"
DEFAULT_CONFIG_DIR = Path("config/bots")
DEFAULT_SQLITE_PATH = "./data/conversations.db"

_ENV_PATTERN = re.compile(r"\$\{([^}]*)\}")
_BOT_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


DEFAULT_BACKUP_KEEP = 7
"""Backups kept per database when nothing says otherwise (``backups.keep``)."""


class BackupsConfig(_Section):
    dir: str = "./data/backups"
    keep: int = Field(default=DEFAULT_BACKUP_KEEP, ge=1)


class RetentionConfig(_Section):
    """How long sessions are kept; ``None`` keeps everything."""

    max_age_days: int | None = Field(default=None, gt=0)
    dms_max_age_days: int | None = Field(default=None, gt=0)
    channels_max_age_days: int | None = Field(default=None, gt=0)


class StorageConfig(_Section):
    enabled: bool = True
    type: Literal["sqlite", "postgresql"] = "sqlite"
    path: str | None = None
    url: str | None = None
    max_history: int = Field(default=100, gt=0)
    session_timeout: int = Field(default=3600, gt=0)
    session_gap: int = Field(default=300, gt=0)
    # SQLite's PRAGMA synchronous on every connection (see docs/configuration.md, "Durability").
    synchronous: Literal["normal", "full"] = "normal"
    backups: BackupsConfig = BackupsConfig()
    retention: RetentionConfig = RetentionConfig()

    @field_validator("type", mode="before")
    @classmethod
    def _retired_file_store(cls, value: object) -> object:
        if value == "file":
            raise ValueError(
                "'file' is the retired JSON store; use sqlite or postgresql and import the old "
                "files with `convostore migrate-legacy`"
            )
        return value

    @model_validator(mode="after")
    def _check(self) -> StorageConfig:
        if self.session_gap > self.session_timeout:
            raise ValueError("session_gap must not be larger than session_timeout")
        if self.path is not None and self.url is not None:
            raise ValueError("give either path or url, not both")
        if self.type == "postgresql" and self.url is None:
            raise ValueError("type postgresql needs a url")
        if self.url is not None:
            try:
                backend = make_url(self.url).get_backend_name()
            except ArgumentError:
                raise ValueError("url is not a valid database URL") from None
            if backend != self.type:
                raise ValueError(f"url is a {backend} URL but type is {self.type}")
        return self


class LegacyConfig(_Section):
    """Where the legacy JSON tree is, how to read it, and how to reach Discord for its names.

    ``token_env`` is the *name* of the environment variable that holds the bot's Discord token
    (used by ``convostore resolve-names``); the token itself never goes into the YAML file.
    """

    dir: str = "./data"
    timezone: str = "UTC"
    read_fallback: bool = False
    token_env: str = "DISCORD_TOKEN"

    @field_validator("token_env")
    @classmethod
    def _env_name(cls, value: str) -> str:
        # A name, not a value: refusing anything else also keeps a pasted token out of the file's
        # error messages (the value is never echoed).
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,127}", value):
            raise ValueError(
                "must be the name of an environment variable (letters, digits and '_', not "
                "starting with a digit), not the token itself"
            )
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value


class BotConfig(_Section):
    """One bot's validated configuration."""

    name: str
    storage: StorageConfig = StorageConfig()
    legacy: LegacyConfig = LegacyConfig()
    source: Path | None = Field(default=None, exclude=True)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _BOT_NAME_PATTERN.match(value):
            raise ValueError(
                "must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
            )
        return value

    @property
    def database_url(self) -> str:
        """The async SQLAlchemy URL of this bot's database."""
        if self.storage.url is not None:
            return async_url(self.storage.url)
        path = Path(self.storage.path or DEFAULT_SQLITE_PATH).expanduser().absolute()
        return f"sqlite+aiosqlite:///{path}"

    @property
    def safe_database_url(self) -> str:
        """:attr:`database_url` with the password hidden, for messages and logs."""
        return redact_url(self.database_url)

    @property
    def sqlite_path(self) -> Path | None:
        """The database file for SQLite stores, else ``None``."""
        url = make_url(self.database_url)
        if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
            return None
        return Path(url.database)


def async_url(url: str) -> str:
    """``url`` with the async driver convostore uses for its backend (aiosqlite, asyncpg)."""
    parsed = make_url(url)
    drivers = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}
    backend = parsed.get_backend_name()
    if backend in drivers:
        parsed = parsed.set(drivername=drivers[backend])
    return parsed.render_as_string(hide_password=False)


def redact_url(url: str) -> str:
    """A database URL with its password replaced by ``***``."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable database url>"


def default_config_dir() -> Path:
    """``$CONVOSTORE_CONFIG_DIR`` if set, else ``config/bots``."""
    return Path(os.environ.get(CONFIG_DIR_ENV) or DEFAULT_CONFIG_DIR)


def _expand_env(value: Any, where: str, source: Path, within: frozenset[int] = frozenset()) -> Any:
    if isinstance(value, dict | list):
        # YAML anchors can make a structure contain itself (``a: &a [*a]``).
        if id(value) in within:
            raise ConfigError(
                f"{source}: {where or '(top level)'}: a YAML alias refers to itself "
                "(recursive data is not allowed)"
            )
        within = within | {id(value)}
    if isinstance(value, dict):
        return {
            k: _expand_env(v, f"{where}.{k}" if where else str(k), source, within)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_expand_env(v, f"{where}[{i}]", source, within) for i, v in enumerate(value)]
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in os.environ:
                raise ConfigError(f"{source}: {where}: environment variable ${{{name}}} is not set")
            return os.environ[name]

        return _ENV_PATTERN.sub(substitute, value)
    return value


def _describe(error: ErrorDetails) -> str:
    location = ".".join(str(part) for part in error["loc"]) or "(top level)"
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown key"
    return f"{location}: {message}"


def load_config(path: str | os.PathLike[str]) -> BotConfig:
    """Read and validate one bot's YAML file; raise :class:`ConfigError` naming file and key."""
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise ConfigError(f"{source}: cannot read the file: {reason}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{source}: malformed YAML{where}: {problem}") from None
    except RecursionError:
        raise ConfigError(f"{source}: malformed YAML: nested too deeply") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{source}: the top level must be a mapping of keys, not {type(raw).__name__}"
        )
    raw = _expand_env(raw, "", source)
    raw.setdefault("name", source.stem)
    storage = raw.get("storage")
    if isinstance(storage, dict):
        for key in ("path", "url"):
            if isinstance(storage.get(key), str):
                storage[key] = storage[key].replace("{bot_name}", str(raw["name"]))
    try:
        return BotConfig.model_validate({**raw, "source": source})
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        details = "; ".join(_describe(e) for e in errors[:3])
        more = f" (+{len(errors) - 3} more)" if len(errors) > 3 else ""
        raise ConfigError(f"{source}: {details}{more}") from None


def load_configs(directory: str | os.PathLike[str] | None = None) -> dict[str, BotConfig]:
    """Every ``*.yaml``/``*.yml`` bot config in ``directory``, keyed by bot name."""
    folder = Path(directory) if directory is not None else default_config_dir()
    if not folder.is_dir():
        raise ConfigError(f"{folder}: the configuration directory does not exist")
    configs: dict[str, BotConfig] = {}
    files = sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")])
    for file in files:
        config = load_config(file)
        if config.name in configs:
            other = configs[config.name].source
            raise ConfigError(f"{file}: name: bot {config.name!r} is already configured in {other}")
        configs[config.name] = config
    return configs
