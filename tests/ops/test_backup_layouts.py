"""Backups are safe in every layout: named after their database, rotated per source database.

Several databases can share one backup directory (the per-bot layout of docs/scaling.md with the
default ``./data/backups``): rotation must never remove another database's backup, and "the newest
backup of this database" must never be another database's.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from convostore import BotConfig, BotStore, ChannelInfo
from convostore.cli import main
from convostore.errors import OperationError
from convostore.ops.backup import (
    MANIFEST_SUFFIX,
    backup_bot,
    backup_sqlite,
    backups_of,
    newest_backup,
    verify_dump,
    verify_sqlite,
)
from tests.conftest import PG_ADMIN_URL, ConfigFactory
from tests.helpers.rows import add_rows, count
from tests.ops.test_backup import NOON, WRITER


def sqlite_bot(name: str, database: Path, backups: Path, keep: int) -> BotConfig:
    return BotConfig.model_validate(
        {
            "name": name,
            "storage": {"path": str(database), "backups": {"dir": str(backups), "keep": keep}},
        },
        strict=False,
    )


def databases(sqlite_template: Path, directory: Path, names: list[str]) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    made = []
    for n, name in enumerate(names):
        path = directory / f"{name}.db"
        shutil.copyfile(sqlite_template, path)
        add_rows(path, name, n + 1)
        made.append(path)
    return made


def test_a_backup_is_named_after_its_database(sqlite_template: Path, tmp_path: Path) -> None:
    sage, default = databases(sqlite_template, tmp_path / "data", ["sage", "conversations"])
    assert backup_sqlite(sage, tmp_path / "b", now=NOON).path.name == "sage_2026-11-24.db"
    assert backup_sqlite(default, tmp_path / "b", now=NOON).path.name == (
        "conversations_2026-11-24.db"
    )
    second = backup_sqlite(sage, tmp_path / "b", now=NOON)
    assert second.path.name == "sage_2026-11-24_120000.db"
    manifest = json.loads(Path(f"{second.path}{MANIFEST_SUFFIX}").read_text())
    assert manifest["source"] == str(sage.absolute())


@pytest.mark.parametrize(("count_of_databases", "keep"), [(2, 1), (3, 2), (3, 1), (2, 2)])
def test_every_database_keeps_its_newest_backups_in_a_shared_directory(
    sqlite_template: Path, tmp_path: Path, count_of_databases: int, keep: int
) -> None:
    names = ["sage", "spark", "logic"][:count_of_databases]
    paths = databases(sqlite_template, tmp_path / "data", names)
    shared = tmp_path / "data" / "backups"
    # An old-style backup of yet another database, and a file without a manifest: untouchable.
    foreign = shared / "conversations_2026-01-01.db"
    shared.mkdir()
    foreign.write_bytes(b"x")
    Path(f"{foreign}{MANIFEST_SUFFIX}").write_text(
        json.dumps({"source": "/elsewhere/conversations.db", "created_at": "2026-01-01T00:00:00"})
    )
    stray = shared / "notes_2026-01-01.db"
    stray.write_bytes(b"y")
    taken: dict[str, list[Path]] = {name: [] for name in names}
    # Uneven schedules: the first database once, the others many times, interleaved.
    schedule = [names[0]] + [name for _ in range(4) for name in names[1:]] + names[1:][:1]
    for step, name in enumerate(schedule):
        path = paths[names.index(name)]
        config = sqlite_bot(name, path, shared, keep)
        result = backup_bot(config, now=NOON + timedelta(minutes=step))
        taken[name].append(result.path)
    for name, path in zip(names, paths, strict=True):
        left = [b.path for b in backups_of(str(path.absolute()), shared)]
        expected = list(reversed(taken[name]))[:keep]
        assert left == expected, name
        for backup in left:
            assert verify_sqlite(backup).messages_per_bot == {name: names.index(name) + 1}
        newest = newest_backup(sqlite_bot(name, path, shared, keep))
        assert newest is not None and newest.path == taken[name][-1]
    assert foreign.is_file() and stray.is_file()


def test_the_issue_layout_two_bots_sharing_the_default_backups_dir(
    sqlite_template: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # docs/scaling.md's per-bot layout: ./data/sage.db and ./data/spark.db, keep: 2.
    sage, spark = databases(sqlite_template, tmp_path / "data", ["sage", "spark"])
    config_dir = tmp_path / "bots"
    config_dir.mkdir()
    for name, path in (("sage", sage), ("spark", spark)):
        (config_dir / f"{name}.yaml").write_text(
            f"storage:\n  path: {path}\n  backups: {{dir: {tmp_path / 'data' / 'backups'}, "
            "keep: 2}\n",
            encoding="utf-8",
        )
    assert main(["backup", "--config-dir", str(config_dir), "--bot", "sage"]) == 0
    for _ in range(3):
        assert main(["backup", "--config-dir", str(config_dir), "--bot", "spark"]) == 0
    capsys.readouterr()
    names = sorted(p.name for p in (tmp_path / "data" / "backups").glob("*.db"))
    assert [n for n in names if n.startswith("sage_")] != []
    assert len([n for n in names if n.startswith("spark_")]) == 2
    # restore without a FILE takes the newest backup of that bot's own database
    add_rows(sage, "sage", 5, start=100)
    assert main(["restore", "--config-dir", str(config_dir), "--bot", "sage", "--yes"]) == 0
    assert "sage_" in capsys.readouterr().out
    assert count(sage) == 1


def test_rotation_beside_a_live_writer_keeps_every_committed_row(
    sqlite_template: Path, tmp_path: Path
) -> None:
    [database] = databases(sqlite_template, tmp_path / "data", ["sage"])
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(database), "2"], stdout=subprocess.PIPE, text=True
    )
    try:
        results = [
            backup_sqlite(database, tmp_path / "b", keep=2, now=NOON + timedelta(minutes=n))
            for n in range(5)
        ]
    finally:
        out, _ = writer.communicate(timeout=30)
    assert writer.returncode == 0
    # The database lost nothing: the one row before plus every committed writer transaction.
    assert count(database) == 1 + 50 * int(out)
    left = sorted(p.name for p in (tmp_path / "b").glob("*.db"))
    assert left == sorted(r.path.name for r in results[-2:])
    for result in results[-2:]:
        assert verify_sqlite(result.path).ok
        assert (count(result.path) - 1) % 50 == 0


# --- PostgreSQL ---------------------------------------------------------------------------------


def scratch_databases() -> set[str]:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'convostore_verify_%'"
        )
        return {str(row[0]) for row in rows}


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_postgresql_dump_is_named_after_the_database_and_really_verified(
    make_config: ConfigFactory, backend: str, tmp_path: Path
) -> None:
    config = make_config(backups={"dir": str(tmp_path / "backups"), "keep": 2})
    async with BotStore.open(config) as store:
        for n in range(3):
            await store.add_message(
                ChannelInfo.channel(1, "general"),
                user_id=1,
                username="a",
                role="user",
                content=f"m{n}",
            )
    database = make_url(config.database_url).database
    result = backup_bot(config, now=NOON)
    assert result.path.name == f"{database}_2026-11-24.dump"
    found = newest_backup(config)
    assert found is not None and found.path == result.path and not found.verified
    before = scratch_databases()
    verification = await _in_thread(verify_dump, result.path, config.database_url)
    assert verification.ok, verification.problems
    assert verification.messages_per_bot == {"sage": 3}
    assert verification.sessions_per_bot == {"sage": 1}
    assert "restored into a scratch database" in verification.integrity
    assert scratch_databases() == before, "the scratch database is dropped"
    found = newest_backup(config)
    assert found is not None and found.verified

    broken = tmp_path / "broken.dump"
    broken.write_bytes(result.path.read_bytes()[:200])
    with pytest.raises(OperationError, match="not a readable pg_dump archive"):
        await _in_thread(verify_dump, broken, config.database_url)


async def _in_thread(function: object, *args: object) -> object:
    import asyncio

    return await asyncio.to_thread(function, *args)  # type: ignore[arg-type]


@pytest.mark.parametrize("backend", ["postgresql"])
def test_verify_on_postgresql_says_plainly_when_it_verified_nothing(
    db_url: str, backend: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config_dir = tmp_path / "bots"
    config_dir.mkdir()
    (config_dir / "sage.yaml").write_text(
        f"storage:\n  type: postgresql\n  url: {db_url}\n"
        f"  backups: {{dir: {tmp_path / 'backups'}}}\n",
        encoding="utf-8",
    )
    assert main(["verify", "--config-dir", str(config_dir)]) == 1
    err = capsys.readouterr().err
    assert "NOT verified" in err and "convostore backup" in err

    assert main(["backup", "--config-dir", str(config_dir)]) == 0
    assert main(["verify", "--config-dir", str(config_dir)]) == 0
    out = capsys.readouterr().out
    assert "restored into a scratch database" in out and "verified" in out
    [dump] = (tmp_path / "backups").glob("*.dump")
    assert main(["verify", str(dump), "--config-dir", str(config_dir)]) == 0
    capsys.readouterr()
    # A dump given without any PostgreSQL bot to restore it into: listed, and said to be unverified.
    assert main(["verify", str(dump), "--config-dir", str(tmp_path / "none")]) == 1
    err = capsys.readouterr().err
    assert "NOT verified" in err and "entries" in err
