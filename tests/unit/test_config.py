"""Bot YAML configuration: loading, expansion, and one clear error per problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from convostore import BotConfig, ConfigError, load_config, load_configs
from convostore.config import CONFIG_DIR_ENV, default_config_dir

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str, name: str = "sage.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_shipped_configs_load() -> None:
    configs = load_configs(ROOT / "config" / "bots")
    assert sorted(configs) == ["logic", "sage", "spark"]
    sage = configs["sage"]
    assert sage.storage.type == "sqlite" and sage.storage.max_history == 100
    assert (sage.storage.session_timeout, sage.storage.session_gap) == (3600, 300)
    assert sage.storage.backups.keep == 7 and sage.storage.retention.max_age_days is None
    assert sage.legacy.dir == "./data" and sage.legacy.timezone == "UTC"
    assert sage.sqlite_path == Path.cwd() / "data" / "conversations.db"


def test_defaults_and_name_from_file_stem(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "", "logic.yaml"))
    assert config.name == "logic"
    assert config.storage.enabled and config.storage.type == "sqlite"
    assert config.database_url == f"sqlite+aiosqlite:///{Path.cwd() / 'data' / 'conversations.db'}"
    assert config.legacy.read_fallback is False


def test_bot_name_placeholder_and_relative_path(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "name: spark\nstorage:\n  path: ./data/{bot_name}.db\n"))
    assert config.name == "spark"
    assert config.sqlite_path == Path.cwd() / "data" / "spark.db"


def test_env_expansion_and_password_hidden(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOTS_DB_PASSWORD", "hunter2")
    config = load_config(
        write(
            tmp_path,
            "storage:\n  type: postgresql\n"
            "  url: postgresql://bots:${BOTS_DB_PASSWORD}@db.internal/bots\n",
        )
    )
    assert config.database_url == "postgresql+asyncpg://bots:hunter2@db.internal/bots"
    assert "hunter2" not in config.safe_database_url
    assert "hunter2" not in repr(config.storage.type)


@pytest.mark.parametrize(
    ("text", "key", "fragment"),
    [
        ("storage:\n  max_histroy: 5\n", "storage.max_histroy", "unknown key"),
        ("colour: blue\n", "colour", "unknown key"),
        ("storage:\n  max_history: lots\n", "storage.max_history", "integer"),
        ("storage:\n  max_history: '100'\n", "storage.max_history", "integer"),
        ("storage:\n  session_gap: 0\n", "storage.session_gap", "greater than 0"),
        ("storage:\n  session_timeout: -5\n", "storage.session_timeout", "greater than 0"),
        ("storage:\n  session_gap: 600\n  session_timeout: 300\n", "storage", "session_gap"),
        ("storage:\n  type: file\n", "storage.type", "retired"),
        ("storage:\n  type: mysql\n", "storage.type", "'sqlite' or 'postgresql'"),
        ("storage:\n  enabled: maybe\n", "storage.enabled", "boolean"),
        ("storage:\n  backups: {keep: 0}\n", "storage.backups.keep", "greater than or equal to 1"),
        ("legacy:\n  timezone: Mars/Olympus\n", "legacy.timezone", "unknown time zone"),
        ("name: ../evil\n", "name", "letters"),
        ("storage:\n  type: postgresql\n", "storage", "needs a url"),
        ("storage:\n  synchronous: off\n", "storage.synchronous", "'normal' or 'full'"),
        ("storage:\n  synchronous: extra\n", "storage.synchronous", "'normal' or 'full'"),
    ],
)
def test_invalid_values_name_file_and_key(
    tmp_path: Path, text: str, key: str, fragment: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}: {key}"), message
    assert fragment in message
    assert "\n" not in message


def test_synchronous_defaults_to_normal_and_accepts_full(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, "")).storage.synchronous == "normal"
    full = load_config(write(tmp_path, "storage:\n  synchronous: full\n"))
    assert full.storage.synchronous == "full"


def test_malformed_yaml(tmp_path: Path) -> None:
    path = write(tmp_path, "storage:\n  path: [unclosed\n")
    with pytest.raises(ConfigError, match=r"malformed YAML at line \d+, column \d+") as info:
        load_config(path)
    assert str(info.value).startswith(str(path))


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(write(tmp_path, "- a\n- b\n"))


def test_unknown_env_variable_names_key_and_hides_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    path = write(
        tmp_path,
        "storage:\n  type: postgresql\n  url: postgresql://bots:pw-in-clear@h/${NOT_SET_ANYWHERE}\n",
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message == f"{path}: storage.url: environment variable ${{NOT_SET_ANYWHERE}} is not set"
    assert "pw-in-clear" not in message


def test_invalid_url_error_does_not_echo_the_password(tmp_path: Path) -> None:
    path = write(tmp_path, "storage:\n  type: sqlite\n  url: postgresql://u:topsecret@h/db\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "topsecret" not in str(info.value)
    assert "storage" in str(info.value) and "postgresql URL but type is sqlite" in str(info.value)


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the file"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="cannot read the file"):
        load_config(bad)


def test_load_configs_keys_by_name_and_rejects_duplicates(tmp_path: Path) -> None:
    write(tmp_path, "", "sage.yaml")
    write(tmp_path, "name: spark\n", "other.yml")
    assert sorted(load_configs(tmp_path)) == ["sage", "spark"]
    write(tmp_path, "name: sage\n", "copy.yaml")
    with pytest.raises(ConfigError, match="already configured"):
        load_configs(tmp_path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_configs(tmp_path / "nowhere")


def test_config_dir_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CONFIG_DIR_ENV, str(tmp_path))
    write(tmp_path, "", "solo.yaml")
    assert default_config_dir() == tmp_path
    assert list(load_configs()) == ["solo"]


def test_config_is_frozen(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ""))
    assert isinstance(config, BotConfig)
    with pytest.raises(Exception, match="frozen"):
        config.storage.max_history = 5  # type: ignore[misc]


def test_legacy_token_env_names_a_variable_and_never_echoes_a_pasted_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert load_config(write(tmp_path, "")).legacy.token_env == "DISCORD_TOKEN"
    custom = load_config(write(tmp_path, "legacy:\n  token_env: SAGE_TOKEN_2\n"))
    assert custom.legacy.token_env == "SAGE_TOKEN_2"
    pasted = "MTA5ODc2NTQzMjEwOTg3NjU0.GxYz12.abcdefghijklmnopqrstuvwxyz0123456789AB"
    # "${SAGE_SECRET}" is expanded before validation: the token must not leak through it either.
    monkeypatch.setenv("SAGE_SECRET", pasted)
    for bad in (pasted, "", "2FAST", "MY-TOKEN", "$DISCORD_TOKEN", "A B", "${SAGE_SECRET}"):
        path = write(tmp_path, f"legacy:\n  token_env: '{bad}'\n")
        with pytest.raises(ConfigError) as info:
            load_config(path)
        message = str(info.value)
        assert message.startswith(f"{path}: legacy.token_env: must be the name of")
        assert "\n" not in message and pasted not in message
    path = write(tmp_path, "legacy:\n  token_env: 42\n")
    with pytest.raises(ConfigError, match=r"legacy\.token_env"):
        load_config(path)
    with pytest.raises(ConfigError, match="unknown key"):
        load_config(write(tmp_path, "legacy:\n  token: abc\n"))
