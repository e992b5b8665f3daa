"""``convostore init``, ``upgrade`` and ``downgrade``: a bot project from any directory."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy import inspect

from convostore import BotConfig, BotStore, ChannelInfo, load_config
from convostore.cli import main
from convostore.legacy import writer
from convostore.ops.upgrade import current_revision, script_location
from convostore.schema import HEAD_REVISION, KNOWN_REVISIONS
from tests.conftest import ROOT, PostgresDatabases, upgrade
from tests.helpers.rows import add_rows

GENERAL = ChannelInfo.channel(1, "general")


def test_init_writes_every_key_with_its_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CONVOSTORE_CONFIG_DIR", raising=False)
    assert main(["init", "--bot", "mybot"]) == 0
    file = tmp_path / "config" / "bots" / "mybot.yaml"
    assert f"wrote {Path('config/bots/mybot.yaml')}" in capsys.readouterr().out
    text = file.read_text(encoding="utf-8")
    written = load_config(file)
    defaults = BotConfig.model_validate({"name": "mybot"})
    # the default database, spelled out (path: null means the same file)
    assert written.database_url == defaults.database_url
    spelled = defaults.model_dump()
    spelled["storage"]["path"] = "./data/conversations.db"
    assert written.model_dump() == spelled

    def keys(value: object, prefix: str = "") -> set[str]:
        if not isinstance(value, dict):
            return {prefix}
        found: set[str] = set()
        for key, item in value.items():
            found |= keys(item, f"{prefix}.{key}" if prefix else key)
        return found

    # every key of the configuration appears, each line with a comment saying why
    for key in keys(defaults.model_dump()) - {"source"}:
        assert f"{key.rsplit('.', 1)[-1]}:" in text, key
    lines = text.splitlines()
    for line, following in zip(lines, [*lines[1:], ""], strict=True):
        explained = "#" in line or following.lstrip().startswith("#") or line.endswith(":")
        assert explained, line


def test_init_never_overwrites(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "bots"
    assert main(["init", "--bot", "sage", "--config-dir", str(folder)]) == 0
    (folder / "sage.yaml").write_text("name: sage\n", encoding="utf-8")
    capsys.readouterr()
    assert main(["init", "--bot", "spark", "--bot", "sage", "--config-dir", str(folder)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "sage.yaml already exists" in err
    assert (folder / "sage.yaml").read_text(encoding="utf-8") == "name: sage\n"
    assert not (folder / "spark.yaml").exists(), "nothing is written when one file exists"


def test_init_with_path_or_url(tmp_path: Path) -> None:
    folder = tmp_path / "bots"
    assert (
        main(
            [
                "init",
                "--bot",
                "sage",
                "--bot",
                "spark",
                "--config-dir",
                str(folder),
                "--path",
                "./data/{bot_name}.db",
            ]
        )
        == 0
    )
    assert load_config(folder / "spark.yaml").storage.path == "./data/spark.db"
    url = "postgresql+asyncpg://bots:${BOTS_DB_PASSWORD}@db.internal/bots"
    assert main(["init", "--bot", "logic", "--config-dir", str(folder), "--url", url]) == 0
    text = (folder / "logic.yaml").read_text(encoding="utf-8")
    assert "type: postgresql" in text and url in text
    with pytest.raises(SystemExit) as usage:
        main(["init", "--bot", "x", "--path", "a.db", "--url", "sqlite:///b.db"])
    assert usage.value.code == 2


def test_the_packaged_migrations_are_the_repositorys() -> None:
    location = script_location()
    assert (location / "env.py").is_file()
    names = sorted(p.name for p in (location / "versions").glob("*.py"))
    assert [n.split("_", 1)[0] for n in names] == list(KNOWN_REVISIONS)
    assert location.resolve() == (ROOT / "alembic").resolve() or location.name == "migrations"


def test_upgrade_from_any_directory_creates_and_upgrades_every_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    assert main(["init", "--bot", "sage", "--bot", "spark", "--path", "./data/{bot_name}.db"]) == 0
    assert main(["upgrade"]) == 0
    out = capsys.readouterr().out
    assert f"schema revision {HEAD_REVISION}" in out and "(sage)" in out and "(spark)" in out
    for bot in ("sage", "spark"):
        assert current_revision(f"sqlite+aiosqlite:///{project / 'data' / f'{bot}.db'}") == (
            HEAD_REVISION
        )
    assert main(["upgrade"]) == 0, "at head already: nothing to do"

    async def use() -> None:
        async with BotStore.open(load_config(project / "config" / "bots" / "sage.yaml")) as store:
            await store.add_message(GENERAL, user_id=1, username="a", role="user", content="hi")
            assert [m.content for m in await store.history(GENERAL)] == ["hi"]

    import asyncio

    asyncio.run(use())


def test_upgrade_to_a_revision_and_one_bot_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "bots"
    data = tmp_path / "data"
    assert (
        main(
            [
                "init",
                "--bot",
                "sage",
                "--bot",
                "spark",
                "--config-dir",
                str(folder),
                "--path",
                f"{data}/{{bot_name}}.db",
            ]
        )
        == 0
    )
    assert main(["upgrade", "0001", "--bot", "sage", "--config-dir", str(folder)]) == 0
    assert current_revision(f"sqlite+aiosqlite:///{data / 'sage.db'}") == "0001"
    assert not (data / "spark.db").exists()
    assert main(["upgrade", "--bot", "nobody", "--config-dir", str(folder)]) == 1
    assert "nobody" in capsys.readouterr().err


def test_upgrade_refuses_a_database_newer_than_the_code(
    tmp_path: Path, sqlite_template: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "newer.db"
    shutil.copyfile(sqlite_template, db)
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0099'")
    assert main(["upgrade", "--url", f"sqlite:///{db}", "--config-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "0099, newer than this convostore knows" in err and err.count("\n") == 1


def test_downgrade_asks_and_backs_up_first(
    tmp_path: Path,
    sqlite_template: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)  # the config's ./data/backups is relative to it
    db = tmp_path / "data" / "sage.db"
    db.parent.mkdir()
    shutil.copyfile(sqlite_template, db)
    add_rows(db, "sage", 3)
    folder = tmp_path / "bots"
    assert main(["init", "--bot", "sage", "--config-dir", str(folder), "--path", str(db)]) == 0
    capsys.readouterr()
    # Not on a terminal and no --yes: refused, nothing changed.
    assert main(["downgrade", "0001", "--config-dir", str(folder)]) == 1
    assert "pass --yes" in capsys.readouterr().err
    assert current_revision(f"sqlite:///{db}") == HEAD_REVISION
    assert main(["downgrade", "0001", "--config-dir", str(folder), "--yes"]) == 0
    assert current_revision(f"sqlite:///{db}") == "0001"
    [backup] = (tmp_path / "data" / "backups").glob("sage_*.db")
    assert "backup" in backup.name or backup.is_file()
    assert main(["upgrade", "--config-dir", str(folder), "--no-legacy-import"]) == 0
    assert current_revision(f"sqlite:///{db}") == HEAD_REVISION


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_upgrade_and_downgrade_with_url_on_each_backend(
    backend: str, tmp_path: Path, pg_databases: PostgresDatabases
) -> None:
    url = pg_databases.create() if backend == "postgresql" else f"sqlite:///{tmp_path / 'x.db'}"
    assert main(["upgrade", "--url", url, "--config-dir", str(tmp_path / "none")]) == 0
    assert current_revision(url) == HEAD_REVISION
    assert main(["downgrade", "base", "--url", url, "--yes", "--config-dir", str(tmp_path)]) == 0
    assert current_revision(url) is None


def test_the_legacy_import_writes_the_columns_of_revision_0002_only(tmp_path: Path) -> None:
    # Revision 0002 runs the importer: it must insert the columns that exist at 0002, whatever
    # later revisions add to the models.
    db = tmp_path / "at-0002.db"
    upgrade(f"sqlite+aiosqlite:///{db}", "0002")
    engine = create_sync_engine(f"sqlite:///{db}")
    try:
        inspector = inspect(engine)
        for table, frozen in (
            ("conversations", writer._conversations),
            ("sessions", writer._sessions),
            ("legacy_imports", writer.LEDGER),
        ):
            columns = {c["name"] for c in inspector.get_columns(table)}
            assert set(frozen.c.keys()) <= columns, table
        assert set(writer._MESSAGE_COLUMNS) == {
            c["name"] for c in inspector.get_columns("conversations")
        } - {"id"}
    finally:
        engine.dispose()
    # and the frozen lists are not derived from the models
    source = Path(writer.__file__).read_text(encoding="utf-8")
    assert "ConversationModel" not in source and "MESSAGE_FIELDS" not in source
    assert "repositories" not in source


@pytest.mark.parametrize("command", ["init", "upgrade", "downgrade"])
def test_help_says_what_and_shows_an_example(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert f"  convostore {command}" in out and "--config-dir" in out
