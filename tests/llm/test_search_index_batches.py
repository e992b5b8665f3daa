"""SQLite's search index takes new rows in batches (revision 0006); searches see them at once.

Rows above ``conversations_fts_state.indexed_through`` are pending: a search matches them itself,
a store indexes them every ``BATCH_WRITES`` writes, ``DELAY_S`` after a write, and on closing; the
import and the copy index what they wrote. Edits, deletes and erasure of pending and of indexed rows
keep the index exact.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from convostore import BotStore, ChannelInfo, indexing
from convostore.cli import main
from convostore.config import BotConfig
from convostore.repositories.search import pending_count
from tests.conftest import ConfigFactory, alembic_config, upgrade
from tests.llm.test_search_index import GENERAL, add, assert_index_exact, execute, found, sync_url

DM = ChannelInfo.dm(channel_id=900, user_id=77, username="mallory")


def pending(url: str) -> int:
    engine = create_engine(sync_url(url))
    try:
        with engine.connect() as conn:
            return pending_count(conn)
    finally:
        engine.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_template: Path) -> str:
    """A migrated SQLite file: batches are SQLite's (PostgreSQL indexes in the same statement)."""
    path = tmp_path / "batches.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture
def sqlite_config(sqlite_url: str, tmp_path: Path) -> BotConfig:
    return BotConfig.model_validate(
        {"name": "sage", "storage": {"url": sqlite_url, "backups": {"dir": str(tmp_path / "b")}}}
    )


@pytest.fixture
def slow_batches(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No batch by count or time while a test runs, unless it says so."""
    monkeypatch.setattr(indexing, "BATCH_WRITES", 10_000)
    monkeypatch.setattr(indexing, "DELAY_S", 3600.0)
    yield


@pytest.mark.usefixtures("slow_batches")
async def test_a_new_message_is_found_before_it_is_indexed_and_indexed_on_close(
    sqlite_config: BotConfig, sqlite_url: str
) -> None:
    db_url = sqlite_url
    async with BotStore.open(sqlite_config) as store:
        await add(store, "the launch code is tangerine", 1)
        await add(store, "nothing to see", 2)
        assert pending(db_url) == 2
        assert await found(store, "tangerine") == ["the launch code is tangerine"]
        assert await found(store, '"launch code"') == ["the launch code is tangerine"]
        assert await found(store, '"code launch"') == []
        assert pending(db_url) == 2, "a search writes nothing"
    assert pending(db_url) == 0
    assert_index_exact(db_url)


async def test_writes_are_indexed_after_a_batch_of_writes_or_a_delay(
    sqlite_config: BotConfig, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    db_url = sqlite_url
    monkeypatch.setattr(indexing, "BATCH_WRITES", 5)
    monkeypatch.setattr(indexing, "DELAY_S", 3600.0)
    async with BotStore.open(sqlite_config) as store:
        for n in range(4):
            await add(store, f"count {n}", n)
        await asyncio.sleep(0.2)
        assert pending(db_url) == 4
        await add(store, "count 4", 4)
        await _until_indexed(db_url)
        monkeypatch.setattr(indexing, "DELAY_S", 0.05)
        await add(store, "one more", 5)
        await _until_indexed(db_url)
        assert await found(store, "count") == [f"count {n}" for n in range(4, -1, -1)]


async def _until_indexed(url: str) -> None:
    for _ in range(200):
        if pending(url) == 0:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{pending(url)} rows still pending")


@pytest.mark.usefixtures("slow_batches")
async def test_edits_deletes_and_erasure_of_pending_and_indexed_rows(
    make_config: ConfigFactory, db_url: str
) -> None:
    """Both backends: on SQLite half of the rows are indexed and half pending when they change."""
    async with BotStore.open(make_config()) as store:
        await add(store, "indexed apple", 1)
        await add(store, "indexed banana", 2)
        await store.add_message(
            DM, user_id=77, username="mallory", role="user", content="indexed secret cherry"
        )
        if make_url(db_url).get_backend_name() == "sqlite":
            assert_index_exact(db_url)  # indexes the three rows
            assert pending(db_url) == 0
        await add(store, "pending apple", 3)
        await add(store, "pending banana", 4)
        await store.add_message(
            DM, user_id=77, username="mallory", role="user", content="pending secret cherry"
        )
        await store.add_message(
            GENERAL, user_id=77, username="mallory", role="user", content="mallory's cherry pie"
        )
        await store.edit_message(5001, content="indexed apricot")
        await store.edit_message(5003, content="pending apricot")
        assert await found(store, "apple") == []
        assert await found(store, "apricot") == ["pending apricot", "indexed apricot"]
        assert await store.delete_messages([5002, 5004]) == 2
        assert await found(store, "banana") == []
        assert len(await found(store, "cherry")) == 3
        assert await store.forget_user(77) == 3
        assert await found(store, "cherry") == []
        assert await found(store, "secret") == []
    assert_index_exact(db_url)
    assert [r[0] for r in execute(db_url, "SELECT content FROM conversations ORDER BY id")] == [
        "indexed apricot",
        "pending apricot",
    ]


# Words that the tokenizer splits, joins or folds in ways a naive splitter would not.
TRICKY = [
    "Straße STRASSE strasse",
    "µ-meson and μ-meson",
    "ΣΊΣΥΦΟΣ σίσυφος ς",
    "İstanbul istanbul \u0131stanbul",
    "café cafe\u0301 CAFÉ",
    "snake_case kebab-case dot.case",
    "emoji 🍕pizza🍕 and ❤️love",
    "C++ c# f(x)=y 3.14 1,000",
    "tab\tnew\nline",
    "日本語のテキスト 中文",
]
QUERIES = [
    "straße", "strasse", "µ", "μ", "meson", "σίσυφος", "ΣΊΣΥΦΟΣ", "istanbul", "İstanbul",
    "café", "cafe", "snake", "case", '"kebab case"', "pizza", "love", "c", "x", "14", "1",
    "000", "new", "line", "日本語のテキスト", "中文", '"dot case"', '"case kebab"',
]  # fmt: skip


@pytest.mark.usefixtures("slow_batches")
async def test_pending_rows_match_exactly_as_indexed_rows(
    sqlite_config: BotConfig, sqlite_url: str
) -> None:
    db_url = sqlite_url
    async with BotStore.open(sqlite_config) as store:
        for n, content in enumerate(TRICKY):
            await add(store, content, n)
        assert pending(db_url) == len(TRICKY)
        before = {q: await found(store, q) for q in QUERIES}
    assert pending(db_url) == 0
    async with BotStore.open(sqlite_config) as store:
        after = {q: await found(store, q) for q in QUERIES}
    assert before == after
    assert before["strasse"] == ["Straße STRASSE strasse"]
    assert before['"kebab case"'] == ["snake_case kebab-case dot.case"]


async def test_rows_written_without_a_store_are_found_and_indexed_by_the_next_writer(
    sqlite_config: BotConfig, sqlite_url: str
) -> None:
    db_url = sqlite_url
    async with BotStore.open(sqlite_config) as store:
        await add(store, "written by a store", 1)
    # Another writer (a crashed process, a script) left rows that no batch indexed.
    execute(
        db_url,
        "INSERT INTO conversations (bot_name, channel_id, channel_name, channel_type, user_id,"
        " username, session_id, message_id, role, content, timestamp)"
        " SELECT bot_name, channel_id, channel_name, channel_type, user_id, username, session_id,"
        " '9999', role, 'left behind by a crash', timestamp FROM conversations",
    )
    assert pending(db_url) == 1
    async with BotStore.open(sqlite_config) as store:
        assert await found(store, "crash") == ["left behind by a crash"]
        await add(store, "the next write", 2)
    assert pending(db_url) == 0
    assert_index_exact(db_url)


def test_import_and_copy_leave_nothing_pending(db_url: str, tmp_path: Path) -> None:
    from tests.legacy.test_import import write_configs
    from tests.legacy.tree import messy_tree

    configs = write_configs(
        tmp_path / "bots", db_url, messy_tree(tmp_path / "legacy"), sage={}, spark={}
    )
    assert main(["migrate-legacy", "--config-dir", str(configs)]) == 0
    assert pending(db_url) == 0
    target = f"sqlite:///{tmp_path / 'copy.db'}"
    assert main(["copy", "--from", db_url, "--to", target, "--bot", "sage", "--json"]) == 0
    assert pending(target) == 0
    assert_index_exact(target)
    assert execute(target, "SELECT count(*) FROM conversations") == execute(
        db_url, "SELECT count(*) FROM conversations WHERE bot_name = 'sage'"
    )


def raw_insert(url: str, n: int, content: str) -> None:
    execute(
        url,
        "INSERT INTO conversations (bot_name, channel_id, channel_name, channel_type, user_id,"
        " username, session_id, message_id, role, content, timestamp)"
        " VALUES ('sage', '1', 'general', 'channel', '2', 'alice', 's', :n, 'user', :content,"
        " '2024-01-01 00:00:00.000000')",
        n=str(n),
        content=content,
    )


def _triggers(url: str) -> set[str]:
    return {r[0] for r in execute(url, "SELECT name FROM sqlite_master WHERE type = 'trigger'")}


def test_revision_0006_upgrade_and_downgrade(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'chain.db'}"
    upgrade(url, "0005")
    raw_insert(url, 1, "indexed by the insert trigger")
    upgrade(url, "0006")
    assert _triggers(url) == {"conversations_fts_delete", "conversations_fts_update"}
    assert pending(url) == 0, "every row of revision 0004 is indexed"
    raw_insert(url, 2, "pending after the upgrade")
    assert pending(url) == 1
    command.downgrade(alembic_config(url), "0005")
    assert _triggers(url) == {
        "conversations_fts_insert",
        "conversations_fts_delete",
        "conversations_fts_update",
    }
    assert_index_exact(url)  # the pending row was indexed by the downgrade
    assert execute(
        url, "SELECT rowid FROM conversations_fts WHERE conversations_fts MATCH 'pending'"
    )
    raw_insert(url, 3, "indexed at once again")
    upgrade(url)
    assert pending(url) == 0
    raw_insert(url, 4, "pending again")
    execute(url, "DELETE FROM conversations WHERE message_id IN ('1', '4')")
    execute(url, "UPDATE conversations SET content = 'changed' WHERE message_id IN ('2', '3')")
    assert_index_exact(url)


async def test_nothing_is_left_scheduled_after_close(
    sqlite_config: BotConfig, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch running while the store closes neither re-arms its timer nor writes afterwards."""
    monkeypatch.setattr(indexing, "BATCH_WRITES", 3)
    monkeypatch.setattr(indexing, "DELAY_S", 0.01)
    async with BotStore.open(sqlite_config) as store:
        writes = [add(store, f"burst {n}", n) for n in range(20)]
        await asyncio.gather(*writes)
        indexer = store._indexer
    assert indexer._timer is None and indexer._task is None
    await asyncio.sleep(0.05)
    assert indexer._timer is None and indexer._task is None
    assert pending(sqlite_url) == 0
