"""The search index stays exact through every write path, the upgrade and the downgrade."""

from __future__ import annotations

import asyncio
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from alembic import command
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine, make_url

from convostore import BotStore, ChannelInfo, load_config
from convostore.cli import main
from convostore.ops.retention import cleanup
from convostore.repositories.search import index_pending
from tests.conftest import ConfigFactory, alembic_config, revision_named, upgrade
from tests.helpers.rows import sync_url
from tests.legacy.test_import import write_configs
from tests.legacy.tree import messy_tree

T0 = datetime(2024, 1, 8, 14, 30, tzinfo=UTC)
GENERAL = ChannelInfo.channel(channel_id=123, name="general")
SEARCH_REVISION = revision_named("full_text_search")


def execute(url: str, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    engine = create_engine(sync_url(url))
    try:
        with engine.begin() as conn:
            result = conn.execute(text(sql), params)
            return [tuple(r) for r in result] if result.returns_rows else []
    finally:
        engine.dispose()


def assert_index_exact(url: str) -> None:
    """The index holds exactly the stored contents: FTS5's own check, or the vector recomputed."""
    if make_url(url).get_backend_name() == "sqlite":
        # Rows not indexed yet are part of no comparison: index them as a store would, first.
        engine = create_engine(sync_url(url))
        try:
            with engine.begin() as conn:
                index_pending(conn)
        finally:
            engine.dispose()
        # With rank 1, FTS5 compares the index with the content table and fails on any drift.
        execute(
            url,
            "INSERT INTO conversations_fts(conversations_fts, rank) VALUES ('integrity-check', 1)",
        )
    else:
        stale = execute(
            url,
            "SELECT count(*) FROM conversations"
            " WHERE search_vector IS DISTINCT FROM to_tsvector('simple', content)",
        )
        assert stale == [(0,)]


def search_objects(url: str) -> set[str]:
    if make_url(url).get_backend_name() == "sqlite":
        rows = execute(url, "SELECT name FROM sqlite_master WHERE name LIKE 'conversations_fts%'")
    else:
        rows = execute(
            url,
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_name = 'conversations' AND column_name = 'search_vector'"
            " UNION SELECT indexname FROM pg_indexes WHERE indexname = 'idx_conversations_search'",
        )
    return {r[0] for r in rows}


async def add(store: BotStore, content: str, n: int) -> None:
    await store.add_message(
        GENERAL,
        user_id=42,
        username="alice",
        role="user",
        content=content,
        message_id=5000 + n,
        timestamp=T0 + timedelta(minutes=n),
    )


async def found(store: BotStore, query: str) -> list[str]:
    return [hit.message.content for hit in await store.search(query)]


async def test_upgrade_indexes_existing_rows_and_downgrade_removes_the_index(
    empty_db_url: str, make_config: ConfigFactory
) -> None:
    url = empty_db_url
    await asyncio.to_thread(upgrade, url, SEARCH_REVISION.down_revision)
    assert search_objects(url) == set()
    config = make_config().model_copy(
        update={"storage": make_config().storage.model_copy(update={"url": url})}
    )
    async with BotStore.open(config) as store:
        await add(store, "stored before the index existed", 1)
        await add(store, "another old message", 2)
    await asyncio.to_thread(upgrade, url)
    assert search_objects(url)
    assert_index_exact(url)
    async with BotStore.open(config) as store:
        assert await found(store, "existed") == ["stored before the index existed"]
        assert await found(store, "old") == ["another old message"]
        await add(store, "new after upgrade", 3)
    await asyncio.to_thread(command.downgrade, alembic_config(url), SEARCH_REVISION.down_revision)
    assert search_objects(url) == set()
    # Writes without the index still work, and upgrading again indexes them.
    async with BotStore.open(config) as store:
        await add(store, "written while downgraded", 4)
    await asyncio.to_thread(upgrade, url)
    assert_index_exact(url)
    async with BotStore.open(config) as store:
        assert await found(store, "downgraded") == ["written while downgraded"]
        assert len(await store.search("after upgrade")) == 1


async def test_updates_of_content_reindex_the_row(store: BotStore, db_url: str) -> None:
    await add(store, "the original wording", 1)
    await add(store, "unrelated", 2)
    execute(
        db_url, "UPDATE conversations SET content = 'the corrected text' WHERE message_id = '5001'"
    )
    assert await found(store, "original") == []
    assert await found(store, "corrected") == ["the corrected text"]
    # An update of another column leaves the index alone, and exact.
    execute(db_url, "UPDATE conversations SET username = 'bob' WHERE message_id = '5002'")
    assert_index_exact(db_url)


async def test_deletes_and_cleanup_leave_no_trace(make_config: ConfigFactory, db_url: str) -> None:
    config = make_config()
    async with BotStore.open(config) as store:
        await add(store, "ancient gossip", 1)
        await add(store, "fresh gossip", 60 * 24 * 60)  # 60 days later
        execute(db_url, "DELETE FROM conversations WHERE content = 'fresh gossip'")
        assert await found(store, "gossip") == ["ancient gossip"]
        await add(store, "fresh gossip again", 60 * 24 * 60 + 1)
        result = await cleanup(config, older_than=timedelta(days=30), now=T0 + timedelta(days=61))
        assert result.messages == 1
        assert await found(store, "gossip") == ["fresh gossip again"]
    assert_index_exact(db_url)


def test_legacy_import_is_searchable(db_url: str, tmp_path: Path) -> None:
    configs = write_configs(
        tmp_path / "bots", db_url, messy_tree(tmp_path / "legacy"), sage={}, spark={}
    )
    assert main(["migrate-legacy", "--config-dir", str(configs)]) == 0
    assert_index_exact(db_url)
    contents = execute(
        db_url, "SELECT bot_name, content FROM conversations WHERE bot_name = 'sage'"
    )
    assert contents

    async def check() -> None:
        async with BotStore.open(load_config(configs / "sage.yaml")) as sage:
            hits = await sage.search('"sage answer"')
            assert [h.message.content for h in hits] == ["sage answer"]
            assert await sage.search('"spark answer"') == []

    asyncio.run(check())


def test_legacy_import_fills_the_index_without_incremental_merges(
    sqlite_template: Path, tmp_path: Path
) -> None:
    """The import's fill turns FTS5's automerge off for its one statement and back to FTS5's
    default in the same transaction; the index is exact and later writes merge as before."""
    path = tmp_path / "conversations.db"
    shutil.copyfile(sqlite_template, path)
    url = f"sqlite+aiosqlite:///{path}"
    tree = messy_tree(tmp_path / "legacy")
    configs = write_configs(tmp_path / "bots", url, tree, sage={}, spark={})
    seen: list[tuple[str, Any]] = []

    def statement(_conn: Any, _cursor: Any, sql: str, params: Any, *_: Any) -> None:
        if "conversations_fts" in sql and "INSERT" in sql:
            seen.append((" ".join(sql.split()), params))

    event.listen(Engine, "before_cursor_execute", statement)
    try:
        assert main(["migrate-legacy", "--config-dir", str(configs)]) == 0
    finally:
        event.remove(Engine, "before_cursor_execute", statement)
    merges = [params for sql, params in seen if "'automerge'" in sql]
    fill = [i for i, (sql, _) in enumerate(seen) if "SELECT id, content FROM conversations" in sql]
    assert merges == [(0,), (4,)] and len(fill) == 1
    assert "'automerge'" in seen[fill[0] - 1][0] and "'automerge'" in seen[fill[0] + 1][0]
    assert execute(url, "SELECT v FROM conversations_fts_config WHERE k = 'automerge'") == [(4,)]
    assert_index_exact(url)
    assert execute(
        url, "SELECT count(*) FROM conversations_fts WHERE conversations_fts MATCH 'first'"
    )


async def test_edits_deletes_and_backfills_keep_the_index_exact(
    store: BotStore, db_url: str
) -> None:
    await add(store, "the meeting is on monday", 1)
    await add(store, "bring snacks", 2)
    await store.edit_message(5001, content="the meeting moved to tuesday")
    assert await found(store, "monday") == []
    assert await found(store, "meeting") == ["the meeting moved to tuesday"]
    assert await store.delete_messages([5002]) == 1
    assert await found(store, "snacks") == []
    await store.add_messages(
        GENERAL,
        [
            {
                "user_id": 43,
                "username": "bob",
                "role": "user",
                "content": f"backfilled snacks number {n}",
                "message_id": 7000 + n,
                "timestamp": T0 - timedelta(days=1, minutes=n),
            }
            for n in range(3)
        ],
    )
    assert sorted(await found(store, "snacks")) == [
        f"backfilled snacks number {n}" for n in range(3)
    ]
    assert_index_exact(db_url)
