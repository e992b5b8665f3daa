"""Full-text search over message contents.

SQLite: ``conversations_fts``, an FTS5 table with external content (it stores only the index and
reads the text from ``conversations``), kept in step by three triggers on ``conversations``
(insert, delete, update of ``content``), so every write path (``add_message``, imports,
backfills, edits, deletes, erasure, cleanup) keeps the index exact without knowing about it.
Tokenizer ``unicode61`` (case-folded, diacritics kept, as PostgreSQL's ``simple`` configuration).

PostgreSQL: ``conversations.search_vector``, a generated ``tsvector`` column
(``to_tsvector('simple', content)``, stored) with a GIN index; the server keeps it in step.

Existing rows are indexed by the upgrade. Downgrade removes the table and triggers, or the index
and column; messages are untouched.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SQLITE_UPGRADE = (
    "CREATE VIRTUAL TABLE conversations_fts USING fts5("
    "content, content='conversations', content_rowid='id', "
    "tokenize='unicode61 remove_diacritics 0')",
    "CREATE TRIGGER conversations_fts_insert AFTER INSERT ON conversations BEGIN "
    "INSERT INTO conversations_fts(rowid, content) VALUES (new.id, new.content); END",
    "CREATE TRIGGER conversations_fts_delete AFTER DELETE ON conversations BEGIN "
    "INSERT INTO conversations_fts(conversations_fts, rowid, content) "
    "VALUES ('delete', old.id, old.content); END",
    "CREATE TRIGGER conversations_fts_update AFTER UPDATE OF content ON conversations BEGIN "
    "INSERT INTO conversations_fts(conversations_fts, rowid, content) "
    "VALUES ('delete', old.id, old.content); "
    "INSERT INTO conversations_fts(rowid, content) VALUES (new.id, new.content); END",
    # Index the rows already stored.
    "INSERT INTO conversations_fts(conversations_fts) VALUES ('rebuild')",
)
_SQLITE_DOWNGRADE = (
    "DROP TRIGGER IF EXISTS conversations_fts_update",
    "DROP TRIGGER IF EXISTS conversations_fts_delete",
    "DROP TRIGGER IF EXISTS conversations_fts_insert",
    "DROP TABLE IF EXISTS conversations_fts",
)
_POSTGRESQL_UPGRADE = (
    "ALTER TABLE conversations ADD COLUMN search_vector tsvector "
    "GENERATED ALWAYS AS (to_tsvector('simple'::regconfig, content)) STORED",
    "CREATE INDEX idx_conversations_search ON conversations USING gin (search_vector)",
)
_POSTGRESQL_DOWNGRADE = (
    "DROP INDEX IF EXISTS idx_conversations_search",
    "ALTER TABLE conversations DROP COLUMN IF EXISTS search_vector",
)


def _run(statements: Sequence[str]) -> None:
    for statement in statements:
        op.execute(statement)


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _run(_SQLITE_UPGRADE)
    else:
        _run(_POSTGRESQL_UPGRADE)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _run(_SQLITE_DOWNGRADE)
    else:
        _run(_POSTGRESQL_DOWNGRADE)
