"""The migration path a newcomer follows: dry run before any database, upgrade without the import,
import, doctor green; the message at revision 0001; bots whose only files are unreadable."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest

from convostore import BotStore, ChannelInfo, load_config
from convostore.cli import main
from convostore.ops.doctor import Status, diagnose
from convostore.ops.upgrade import current_revision
from convostore.schema import HEAD_REVISION
from tests.conftest import PostgresDatabases
from tests.legacy.test_import import all_rows, write_configs
from tests.legacy.tree import C1, U1, conversation, messy_tree, record, write


def legacy_findings(config_dir: Path) -> dict[str, tuple[Status, str]]:
    from convostore import load_configs

    configs = list(load_configs(config_dir).values())
    report = asyncio.run(diagnose(configs))
    return {
        f.check: (f.status, f.detail)
        for database in report.databases
        for f in database.findings
        if f.check.startswith("legacy files")
    }


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database that does not exist yet (SQLite) or has no schema yet (PostgreSQL)."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'data' / 'conversations.db'}"
    databases: PostgresDatabases = request.getfixturevalue("pg_databases")
    return databases.create()


def test_dry_run_first_then_upgrade_without_import_then_import(
    fresh_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tree = messy_tree(tmp_path / "legacy")
    configs = write_configs(tmp_path / "bots", fresh_url, tree, sage={}, spark={})
    # 1. dry run on a fresh install: no database yet, a full report, nothing created
    report_file = tmp_path / "dry.json"
    assert (
        main(
            [
                "migrate-legacy",
                "--config-dir",
                str(configs),
                "--dry-run",
                "--report",
                str(report_file),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "dry run: nothing was written" in out and "no convostore schema yet" in out
    dry = json.loads(report_file.read_text())
    assert dry["bots"]["sage"]["records"]["imported"] == 12
    assert current_revision(fresh_url) is None
    # 2. the schema without the import
    assert main(["upgrade", "--config-dir", str(configs), "--no-legacy-import"]) == 0
    assert current_revision(fresh_url) == HEAD_REVISION
    assert all_rows(fresh_url) == []
    # 3. the import, as the dry run said
    assert main(["migrate-legacy", "--config-dir", str(configs)]) == 0
    capsys.readouterr()
    assert len([r for r in all_rows(fresh_url) if r[0] == "sage"]) == 12
    # 4. doctor: nothing waiting for either bot (their unreadable files were reported)
    findings = legacy_findings(configs)
    assert findings and all(status is Status.OK for status, _ in findings.values()), findings


def test_upgrade_imports_at_once_in_the_other_order(
    fresh_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tree = messy_tree(tmp_path / "legacy")
    configs = write_configs(tmp_path / "bots", fresh_url, tree, sage={}, spark={})
    assert main(["upgrade", "--config-dir", str(configs)]) == 0
    assert len([r for r in all_rows(fresh_url) if r[0] == "sage"]) == 12
    assert main(["migrate-legacy", "--config-dir", str(configs), "--dry-run"]) == 0
    assert "already in database" in capsys.readouterr().out
    findings = legacy_findings(configs)
    assert all(status is Status.OK for status, _ in findings.values()), findings


def test_at_revision_0001_the_import_names_the_real_cause(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
    tree = messy_tree(tmp_path / "legacy")
    configs = write_configs(tmp_path / "bots", url, tree, sage={})
    assert main(["upgrade", "0001", "--config-dir", str(configs)]) == 0
    capsys.readouterr()
    assert main(["migrate-legacy", "--config-dir", str(configs)]) == 1
    err = capsys.readouterr().err
    assert "schema revision 0001, before the legacy import ledger (0002)" in err
    assert "no convostore schema" not in err and err.count("\n") == 1
    # its dry run still works there
    assert main(["migrate-legacy", "--config-dir", str(configs), "--dry-run"]) == 0


def test_a_bot_whose_only_file_is_unreadable_is_recorded_and_doctor_goes_green(
    tmp_path: Path,
    sqlite_template: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import shutil

    db = tmp_path / "conversations.db"
    shutil.copyfile(sqlite_template, db)
    url = f"sqlite+aiosqlite:///{db}"
    legacy = tmp_path / "legacy"
    shared = legacy / "multi_bot_conversations"
    (shared / "logic").mkdir(parents=True)
    (shared / "logic" / f"{C1}_{U1}.json").write_text("{ not json", encoding="utf-8")
    write(
        shared / "sage" / f"{C1}_{U1}.json",
        conversation(C1, U1, record("user", "hi", "2025-07-08T14:58:16", None, username="a")),
    )
    configs = write_configs(tmp_path / "bots", url, legacy, sage={}, logic={})
    before = legacy_findings(configs)
    assert before["legacy files (logic)"][0] is Status.WARN
    assert main(["migrate-legacy", "--config-dir", str(configs)]) == 0
    out = capsys.readouterr().out
    assert "invalid_json" in out
    after = legacy_findings(configs)
    assert after["legacy files (logic)"][0] is Status.OK, after
    assert "unreadable" in after["legacy files (logic)"][1]
    assert "migrate-legacy --dry-run --bot logic --report" in after["legacy files (logic)"][1]
    # and the store no longer warns at every open
    caplog.set_level(logging.WARNING, logger="convostore")

    async def open_logic() -> None:
        async with BotStore.open(load_config(configs / "logic.yaml")) as store:
            assert await store.history(ChannelInfo.channel(C1, "x")) == []

    asyncio.run(open_logic())
    assert not [r for r in caplog.records if "not imported yet" in r.getMessage()]
