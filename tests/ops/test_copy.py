"""``convostore copy``: every bot-owned table, both directions, resumable, beside live writers."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import MetaData, insert, select, text

from convostore import BotConfig, BotStore
from convostore.cli import main
from convostore.config import async_url
from convostore.engine import make_engine
from convostore.models import LegacyImportModel
from convostore.ops.copy import owned_tables
from tests.conftest import ROOT, ConfigFactory, PostgresDatabases, upgrade
from tests.helpers.configs import write_bot_yaml
from tests.helpers.rows import GENERAL, add_rows, fill


async def _dump(url: str, bot: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every bot-owned table's rows for ``bot``, without surrogate ids, in a stable order."""
    engine = make_engine(async_url(url), null_pool=True)
    try:
        async with engine.connect() as connection:
            metadata = MetaData()
            await connection.run_sync(lambda c: metadata.reflect(c))
            dumped: dict[str, list[tuple[Any, ...]]] = {}
            for owned in owned_tables(metadata):
                table = owned.table
                columns = [c for c in table.columns if c.name != "id" and c.computed is None]
                query = select(*columns)
                if owned.parent is None:
                    query = query.where(table.c.bot_name == bot)
                else:
                    continue  # children are compared through their counts
                rows = (await connection.execute(query)).all()
                dumped[table.name] = sorted(
                    (tuple(_plain(v) for v in row) for row in rows), key=repr
                )
            return dumped
    finally:
        await engine.dispose()


def _plain(value: Any) -> Any:
    from datetime import UTC, datetime

    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return value


def dump(url: str, bot: str) -> dict[str, list[tuple[Any, ...]]]:
    return asyncio.run(_dump(url, bot))


def copy_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    assert main(["copy", *args, "--json"]) == 0, capsys.readouterr().err
    document: dict[str, Any] = json.loads(capsys.readouterr().out)
    return document


def _add_ledger(url: str, bot: str) -> None:
    async def add() -> None:
        engine = make_engine(async_url(url), null_pool=True)
        try:
            async with engine.begin() as connection:
                await connection.execute(
                    insert(LegacyImportModel).values(
                        bot_name=bot,
                        finished_at=datetime(2026, 11, 30, 10, tzinfo=UTC),
                        data_dir="/srv/legacy",
                        messages=7,
                    )
                )
        finally:
            await engine.dispose()

    asyncio.run(add())


def test_split_one_database_into_a_file_per_bot_and_rerun(
    make_config: ConfigFactory, db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """SQLite (shared file) and PostgreSQL -> one SQLite file per bot; reruns add nothing."""
    asyncio.run(fill(make_config, "sage"))
    asyncio.run(fill(make_config, "echo"))
    _add_ledger(db_url, "sage")
    asyncio.run(_edit_one(make_config("sage")))
    to = f"sqlite:///{tmp_path}/split/{{bot_name}}.db"

    planned = copy_json(capsys, "--from", db_url, "--to", to, "--dry-run")
    assert planned["dry_run"] is True
    assert {b["bot"] for b in planned["bots"]} == {"echo", "sage"}
    sage = next(b for b in planned["bots"] if b["bot"] == "sage")
    assert sage["tables"]["conversations"] == {"source": 7, "target": 0}
    assert sage["tables"]["legacy_imports"] == {"source": 1, "target": 0}
    assert not (tmp_path / "split").exists(), "a dry run creates nothing"

    done = copy_json(capsys, "--from", db_url, "--to", to)
    assert done["ok"] is True
    for bot in ("sage", "echo"):
        target = f"sqlite:///{tmp_path}/split/{bot}.db"
        assert dump(target, bot) == dump(db_url, bot)
        other = "echo" if bot == "sage" else "sage"
        assert dump(target, other)["conversations"] == []
    before = dump(f"sqlite:///{tmp_path}/split/sage.db", "sage")
    again = copy_json(capsys, "--from", db_url, "--to", to)
    assert again["ok"] is True
    assert dump(f"sqlite:///{tmp_path}/split/sage.db", "sage") == before, "no duplicates"
    counts = next(b for b in again["bots"] if b["bot"] == "sage")["tables"]
    assert counts["sessions"] == {"source": 3, "target": 3}
    assert counts["legacy_imports"] == {"source": 1, "target": 1}
    assert counts["message_revisions"] == {"source": 1, "target": 1}
    assert asyncio.run(_revisions(f"sqlite:///{tmp_path}/split/sage.db")) == ["sage general 0"]


async def _edit_one(config: BotConfig) -> None:
    async with BotStore.open(config) as store:
        [first] = [m for m in await store.history(GENERAL, limit=100) if m.content.endswith(" 0")]
        await store.edit_message(first.message_id, content="edited")


async def _revisions(url: str) -> list[str]:
    config = BotConfig.model_validate({"name": "sage", "storage": {"url": url}})
    async with BotStore.open(config) as store:
        [edited] = [m for m in await store.history(GENERAL, limit=100) if m.content == "edited"]
        return [r.content for r in await store.revisions(edited.message_id)]


def test_sqlite_to_postgresql_with_configured_bots(
    sqlite_template: Path,
    pg_databases: PostgresDatabases,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """From the configured SQLite database into a new PostgreSQL database (schema created)."""
    database = tmp_path / "conversations.db"
    shutil.copyfile(sqlite_template, database)
    url = f"sqlite+aiosqlite:///{database}"

    def config(name: str, **_: Any) -> BotConfig:
        return BotConfig.model_validate(
            {"name": name, "storage": {"url": url, "backups": {"dir": str(tmp_path / "b")}}}
        )

    asyncio.run(fill(config, "sage"))
    asyncio.run(fill(config, "echo"))
    directory = tmp_path / "bots"
    for bot in ("sage", "echo"):
        write_bot_yaml(directory, bot, path=database, name=False)
    target = pg_databases.create()

    args = ["--config-dir", str(directory), "--to", target, "--bot", "sage"]
    done = copy_json(capsys, *args)
    assert [b["bot"] for b in done["bots"]] == ["sage"] and done["ok"] is True
    assert dump(target, "sage") == dump(url, "sage")
    assert dump(target, "echo")["conversations"] == []

    # Human output, piped: one plain line per bot.
    assert main(["copy", *args]) == 0
    out = capsys.readouterr().out
    assert "sage: " in out and "conversations 7" in out and "(counts match)" in out

    # The copy keeps working as a store: the target opens and continues the sessions.
    async def history() -> int:
        cfg = BotConfig.model_validate(
            {"name": "sage", "storage": {"url": target, "type": "postgresql"}}
        )
        async with BotStore.open(cfg) as store:
            return len(await store.history(GENERAL, limit=100))

    assert asyncio.run(history()) == 5


def test_postgresql_to_sqlite_and_refusals(
    pg_databases: PostgresDatabases, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:

    source = pg_databases.create()
    upgrade(source)

    def config(name: str, **_: Any) -> BotConfig:
        return BotConfig.model_validate(
            {"name": name, "storage": {"url": source, "type": "postgresql"}}
        )

    asyncio.run(fill(config, "sage"))
    target = f"sqlite:///{tmp_path}/moved.db"
    done = copy_json(capsys, "--from", source, "--to", target)
    assert done["ok"] is True and [b["bot"] for b in done["bots"]] == ["sage"]
    assert dump(target, "sage") == dump(source, "sage")

    assert main(["copy", "--from", target, "--to", target]) == 1
    assert "the target is the source" in capsys.readouterr().err
    assert main(["copy", "--from", f"sqlite:///{tmp_path}/none.db", "--to", target]) == 1
    err = capsys.readouterr().err
    assert err.startswith("convostore copy: error:") and "not found" in err
    assert len(err.strip().splitlines()) == 1


def _count_pg(url: str) -> int:
    import psycopg
    from sqlalchemy.engine import make_url

    plain = make_url(url).set(drivername="postgresql").render_as_string(False)
    with psycopg.connect(plain, autocommit=True) as conn:
        try:
            row = conn.execute("SELECT count(*) FROM conversations").fetchone()
        except psycopg.errors.UndefinedTable:
            return 0
        return int(row[0]) if row else 0


@pytest.mark.slow
def test_resumes_after_kill_9(
    sqlite_template: Path, pg_databases: PostgresDatabases, tmp_path: Path
) -> None:
    """A copy killed with SIGKILL midway completes on the rerun, without duplicates."""
    database = tmp_path / "conversations.db"
    shutil.copyfile(sqlite_template, database)
    add_rows(database, "sage", 30_000)
    source = f"sqlite:///{database}"
    target = pg_databases.create()
    command = [sys.executable, "-m", "convostore", "copy", "--from", source, "--to", target]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    log = tmp_path / "killed.log"
    with log.open("w") as output:
        process = subprocess.Popen(command, env=env, stdout=output, stderr=output)
    deadline = time.monotonic() + 120
    while _count_pg(target) < 3_000 and time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    partial = _count_pg(target)
    assert 0 < partial < 30_000, "killed midway"

    rerun = subprocess.run([*command, "--json"], env=env, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    document = json.loads(rerun.stdout)
    assert document["bots"][0]["tables"]["conversations"] == {"source": 30_000, "target": 30_000}
    assert _count_pg(target) == 30_000


_WRITER = """
import asyncio, sys
from datetime import UTC, datetime
from convostore import BotConfig, BotStore, ChannelInfo

async def main() -> None:
    config = BotConfig.model_validate({"name": "sage", "storage": {"url": sys.argv[1]}})
    stop = __import__("pathlib").Path(sys.argv[2])
    n = 0
    async with BotStore.open(config) as store:
        while not stop.exists():
            await store.add_message(
                ChannelInfo.channel(7, "live"), user_id=1, username="w", role="user",
                content=f"live {n}", timestamp=datetime.now(UTC), message_id=10**12 + n,
            )
            n += 1
    print(n)

asyncio.run(main())
"""


def _live_rows(database: Path) -> int:
    import sqlite3

    conn = sqlite3.connect(database, timeout=30)
    try:
        return int(
            conn.execute("SELECT count(*) FROM conversations WHERE channel_id = '7'").fetchone()[0]
        )
    finally:
        conn.close()


@pytest.mark.slow
def test_copy_beside_live_writers(
    sqlite_template: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Bots write to the source during the copy: the snapshot copies whole, a rerun the rest."""
    database = tmp_path / "conversations.db"
    shutil.copyfile(sqlite_template, database)
    add_rows(database, "sage", 5_000)
    source = f"sqlite+aiosqlite:///{database}"
    stop = tmp_path / "stop"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    writer = subprocess.Popen(
        [sys.executable, "-c", _WRITER, source, str(stop)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and _live_rows(database) < 20:
            assert writer.poll() is None, writer.communicate()
            time.sleep(0.1)
        target = f"sqlite:///{tmp_path}/target.db"
        during = copy_json(capsys, "--from", source, "--to", target)
        assert during["ok"] is True, "the snapshot's counts match the target's"
    finally:
        stop.touch()
        out, err = writer.communicate(timeout=60)
    assert writer.returncode == 0, err
    written = int(out.strip())
    after = copy_json(capsys, "--from", source, "--to", target)
    conversations = after["bots"][0]["tables"]["conversations"]
    assert conversations == {"source": 5_000 + written, "target": 5_000 + written}
    assert dump(target, "sage") == dump(source, "sage")


_NOTES = """CREATE TABLE message_notes (
    id INTEGER PRIMARY KEY,
    conversation_id INTEGER NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    note TEXT NOT NULL
)"""


def _sql(url: str, *statements: str) -> list[Any]:
    async def run() -> list[Any]:
        engine = make_engine(async_url(url), null_pool=True)
        try:
            async with engine.begin() as connection:
                result: list[Any] = []
                for statement in statements:
                    found = await connection.execute(text(statement))
                    result = list(found.all()) if found.returns_rows else []
                return result
        finally:
            await engine.dispose()

    return asyncio.run(run())


def test_a_table_added_later_is_copied_with_its_references_repointed(
    make_config: ConfigFactory, db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A child table (as message_revisions) is found from the schema, its ids re-pointed."""
    asyncio.run(fill(make_config, "sage"))
    notes = (
        _NOTES
        if "sqlite" in db_url
        else _NOTES.replace("INTEGER PRIMARY KEY", "SERIAL PRIMARY KEY")
    )
    _sql(
        db_url,
        notes,
        "INSERT INTO message_notes (conversation_id, note) SELECT id, 'note on ' || content "
        "FROM conversations WHERE bot_name = 'sage' AND content LIKE '%general 1'",
        "INSERT INTO message_notes (conversation_id, note) SELECT id, 'twice' "
        "FROM conversations WHERE bot_name = 'sage' AND content LIKE '%dm hello'",
        "INSERT INTO message_notes (conversation_id, note) SELECT id, 'twice' "
        "FROM conversations WHERE bot_name = 'sage' AND content LIKE '%dm hello'",
    )
    target = f"sqlite:///{tmp_path}/target.db"
    upgrade(f"sqlite+aiosqlite:///{tmp_path}/target.db")
    _sql(target, _NOTES)
    # The target already holds another bot's rows: its ids differ from the source's.
    other = BotConfig.model_validate({"name": "echo", "storage": {"url": target}})
    asyncio.run(fill(lambda name, **_: other, "echo"))

    for _ in range(2):  # the rerun adds nothing twice, even for rows without a unique key
        done = copy_json(capsys, "--from", db_url, "--to", target, "--bot", "sage")
        assert done["ok"] is True
        assert done["bots"][0]["tables"]["message_notes"] == {"source": 3, "target": 3}
    joined = (
        "SELECT c.content, n.note FROM message_notes n JOIN conversations c "
        "ON c.id = n.conversation_id WHERE c.bot_name = 'sage' ORDER BY n.note"
    )
    assert sorted(_sql(target, joined)) == sorted(_sql(db_url, joined))
