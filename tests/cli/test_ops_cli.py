"""The operations commands: help, success and failure output, no tracebacks."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest

from convostore.cli import main
from tests.helpers.configs import write_bot_yaml
from tests.helpers.rows import add_rows, count


@pytest.fixture
def config_dir(sqlite_template: Path, tmp_path: Path) -> Path:
    database = tmp_path / "conversations.db"
    shutil.copyfile(sqlite_template, database)
    add_rows(database, "sage", 4)
    directory = tmp_path / "bots"
    for bot in ("sage", "echo"):
        write_bot_yaml(directory, bot, path=database, backups=tmp_path / "backups", keep=3)
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
    # Not on a terminal (pytest's stdin): refused without --yes, nothing replaced.
    assert main(["restore", str(backups[0]), "--config-dir", str(config_dir)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("convostore restore: error: replace") and "pass --yes" in err
    assert count(tmp_path / "conversations.db") == 6
    assert main(["restore", str(backups[0]), "--config-dir", str(config_dir), "--yes"]) == 0
    out = capsys.readouterr().out
    assert "safety copy" in out
    assert count(tmp_path / "conversations.db") == 4


def test_failures_are_one_line(
    config_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database" * 500)
    assert main(["restore", str(junk), "--config-dir", str(config_dir), "--yes"]) == 1
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
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "older than 1h" in err and "sage: 1 sessions" in err and "pass --yes" in err
    assert count(database) == 4
    assert main([*args, "--yes"]) == 0
    assert "sage: deleted 1 sessions, 4 messages" in capsys.readouterr().out
    assert count(database) == 0


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_cleanup_asks_on_a_terminal(
    config_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    database = tmp_path / "conversations.db"
    args = ["cleanup", "--older-than", "1h", "--config-dir", str(config_dir), "--bot", "sage"]
    monkeypatch.setattr("sys.stdin", _Terminal("n\n"))
    assert main(args) == 1
    captured = capsys.readouterr()
    assert "(sage: 1 sessions)?" in captured.err and "[y/N]" in captured.err
    assert "cancelled; nothing was changed" in captured.err
    assert count(database) == 4
    monkeypatch.setattr("sys.stdin", _Terminal("y\n"))
    assert main(args) == 0
    assert count(database) == 0


def test_json_documents(
    config_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["--config-dir", str(config_dir)]
    assert main(["backup", "--json", *common]) == 0
    [written] = json.loads(capsys.readouterr().out)["backups"]
    assert Path(written["path"]).is_file() and written["removed"] == []
    assert written["verification"]["messages_per_bot"] == {"sage": 4}

    assert main(["verify", "--json", *common]) == 0
    verified = json.loads(capsys.readouterr().out)
    assert verified["ok"] is True and verified["skipped"] == []
    assert verified["files"][0]["integrity"] == "ok"
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database" * 500)
    assert main(["verify", "--json", str(junk)]) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out)["ok"] is False
    assert captured.err.strip() == "convostore verify: error: verification failed"

    cleanup = ["cleanup", "--older-than", "1h", "--bot", "sage", "--json", *common]
    assert main([*cleanup, "--dry-run"]) == 0
    [planned] = json.loads(capsys.readouterr().out)["bots"]
    assert (planned["sessions"], planned["messages"], planned["dry_run"]) == (1, 4, True)
    assert planned["doomed"][0]["session_id"] == "s1"
    assert planned["cutoffs"]["channel"].endswith("+00:00")
    assert main([*cleanup, "--yes"]) == 0
    [done] = json.loads(capsys.readouterr().out)["bots"]
    assert (done["sessions"], done["messages"], done["dry_run"]) == (1, 4, False)
    assert done["space"]["method"] in ("incremental_vacuum", "none")

    assert main(["close-sessions", "--json", *common]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "bots": [{"bot": "echo", "closed": 0}, {"bot": "sage", "closed": 0}]
    }


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
