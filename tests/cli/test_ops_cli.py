"""The operations commands: help, success and failure output, no tracebacks."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from convostore.cli import main
from tests.ops.test_backup import add_rows, count


@pytest.fixture
def config_dir(sqlite_template: Path, tmp_path: Path) -> Path:
    database = tmp_path / "conversations.db"
    shutil.copyfile(sqlite_template, database)
    add_rows(database, "sage", 4)
    directory = tmp_path / "bots"
    directory.mkdir()
    for bot in ("sage", "echo"):
        (directory / f"{bot}.yaml").write_text(
            f"name: {bot}\nstorage:\n  type: sqlite\n  path: {database}\n"
            f"  backups: {{dir: {tmp_path / 'backups'}, keep: 3}}\n",
            encoding="utf-8",
        )
    return directory


@pytest.mark.parametrize("command", ["backup", "verify", "restore", "cleanup", "close-sessions"])
def test_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--config-dir" in out and "--bot" in out


def test_backup_verify_restore(
    config_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["backup", "--config-dir", str(config_dir)]) == 0
    out = capsys.readouterr().out
    backups = list((tmp_path / "backups").glob("conversations_*.db"))
    assert len(backups) == 1, "bots sharing one file are backed up once"
    assert "backup written" in out and "sage" in out

    assert main(["verify", str(backups[0])]) == 0
    assert "verified" in capsys.readouterr().out
    assert main(["verify", "--config-dir", str(config_dir)]) == 0
    capsys.readouterr()

    add_rows(tmp_path / "conversations.db", "sage", 2, start=50)
    assert main(["restore", str(backups[0]), "--config-dir", str(config_dir)]) == 0
    out = capsys.readouterr().out
    assert "Stop every bot" in out and "safety copy" in out
    assert count(tmp_path / "conversations.db") == 4


def test_failures_are_one_line(
    config_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database" * 500)
    assert main(["restore", str(junk), "--config-dir", str(config_dir)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("convostore restore: error:") and "refusing to restore" in err
    assert "Traceback" not in err

    assert main(["verify", str(junk)]) == 1
    err = capsys.readouterr().err
    assert "verification failed" in err and "Traceback" not in err

    assert main(["verify", str(tmp_path / "missing.db")]) == 1
    assert "no such file" in capsys.readouterr().err

    assert main(["backup", "--config-dir", str(config_dir), "--bot", "nobody"]) == 1
    assert "nobody" in capsys.readouterr().err


def test_cleanup_dry_run_and_delete(
    config_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    database = tmp_path / "conversations.db"
    args = ["cleanup", "--older-than", "1h", "--config-dir", str(config_dir), "--bot", "sage"]
    assert main([*args, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "would delete 1 sessions, 4 messages (dry run" in out and "s1" in out
    assert count(database) == 4
    assert main(args) == 0
    assert "sage: deleted 1 sessions, 4 messages" in capsys.readouterr().out
    assert count(database) == 0


def test_cleanup_bad_age_is_one_line(config_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cleanup", "--older-than", "soon", "--config-dir", str(config_dir)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("convostore cleanup: error:") and "soon" in err
    assert "Traceback" not in err


def test_close_sessions(config_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["close-sessions", "--config-dir", str(config_dir), "--bot", "sage"]) == 0
    assert "sage: closed 1 expired sessions" in capsys.readouterr().out
    assert main(["close-sessions", "--config-dir", str(config_dir)]) == 0
    out = capsys.readouterr().out
    assert "sage: closed 0" in out and "echo: closed 0" in out
