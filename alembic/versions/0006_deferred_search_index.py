"""SQLite: the search index takes new messages in batches instead of one by one.

Revision 0004 indexed every inserted row from a trigger, in the inserting transaction. FTS5 writes a
new index segment at every commit, which cost a third of the rate of one-message transactions.
From this revision on, new rows are indexed in batches: ``conversations_fts_state`` holds the
highest ``conversations.id`` the index holds (``indexed_through``); rows above it are pending. The
store indexes the pending rows (one ``INSERT … SELECT``) every few hundred writes, a second after
its last write, when it closes, and at the end of an import or a copy; a search matches the pending
rows itself, so it sees every stored message at once.

The delete and update triggers stay, limited to indexed rows (``old.id <= indexed_through``): a
pending row is not in the index, and telling FTS5 to delete a row it does not hold would corrupt
it.

PostgreSQL is unchanged (its generated column costs little per write).

Downgrade indexes the pending rows and restores revision 0004's three triggers.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INDEXED = "(SELECT indexed_through FROM conversations_fts_state WHERE id = 1)"
_DELETE_OLD = (
    "INSERT INTO conversations_fts(conversations_fts, rowid, content) "
    "VALUES ('delete', old.id, old.content);"
)
_INSERT_NEW = "INSERT INTO conversations_fts(rowid, content) VALUES (new.id, new.content);"

_UPGRADE = (
    "CREATE TABLE conversations_fts_state ("
    "id INTEGER PRIMARY KEY CHECK (id = 1), indexed_through INTEGER NOT NULL)",
    # Revision 0004's insert trigger indexed every row: all of them are indexed now.
    "INSERT INTO conversations_fts_state (id, indexed_through) "
    "SELECT 1, coalesce(max(id), 0) FROM conversations",
    "DROP TRIGGER conversations_fts_insert",
    "DROP TRIGGER conversations_fts_delete",
    "DROP TRIGGER conversations_fts_update",
    f"CREATE TRIGGER conversations_fts_delete AFTER DELETE ON conversations "
    f"WHEN old.id <= {_INDEXED} BEGIN {_DELETE_OLD} END",
    f"CREATE TRIGGER conversations_fts_update AFTER UPDATE OF content ON conversations "
    f"WHEN old.id <= {_INDEXED} BEGIN {_DELETE_OLD} {_INSERT_NEW} END",
)
_DOWNGRADE = (
    # Index what is pending, then go back to one trigger per write path.
    f"INSERT INTO conversations_fts(rowid, content) "
    f"SELECT id, content FROM conversations WHERE id > {_INDEXED} ORDER BY id",
    "DROP TRIGGER conversations_fts_delete",
    "DROP TRIGGER conversations_fts_update",
    "DROP TABLE conversations_fts_state",
    f"CREATE TRIGGER conversations_fts_insert AFTER INSERT ON conversations "
    f"BEGIN {_INSERT_NEW} END",
    f"CREATE TRIGGER conversations_fts_delete AFTER DELETE ON conversations "
    f"BEGIN {_DELETE_OLD} END",
    f"CREATE TRIGGER conversations_fts_update AFTER UPDATE OF content ON conversations BEGIN "
    f"{_DELETE_OLD} {_INSERT_NEW} END",
)


def _run(statements: Sequence[str]) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for statement in statements:
        op.execute(statement)


def upgrade() -> None:
    _run(_UPGRADE)


def downgrade() -> None:
    _run(_DOWNGRADE)
