"""Data: import the legacy JSON conversation tree (and the ``legacy_imports`` ledger).

Upgrade imports ``legacy.dir`` of the bots using this database (or ``-x legacy_dir=DIR``; naive
times read in ``legacy.timezone`` or ``-x legacy_tz=ZONE``; ``-x legacy_report=FILE.json`` writes
the full report). A missing legacy directory is a no-op. Downgrade removes exactly the imported rows
(``source = 'legacy'``) and their sessions, nothing a live bot wrote, and drops the ledger.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_conversations = sa.table("conversations", sa.column("source", sa.Text()))
_sessions = sa.table("sessions", sa.column("source", sa.Text()))


_pk = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "legacy_imports",
        sa.Column("id", _pk, primary_key=True, autoincrement=True),
        sa.Column("bot_name", sa.Text(), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data_dir", sa.Text(), nullable=False),
        sa.Column("messages", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_legacy_imports")),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "idx_legacy_imports_bot", "legacy_imports", ["bot_name", "finished_at"], unique=False
    )
    from convostore.legacy.run import run_data_migration

    run_data_migration(
        op.get_bind(), context.config.attributes, context.get_x_argument(as_dictionary=True)
    )


def downgrade() -> None:
    # Messages first: on SQLite migrations run with foreign keys off, so nothing cascades.
    op.execute(_conversations.delete().where(_conversations.c.source == "legacy"))
    op.execute(_sessions.delete().where(_sessions.c.source == "legacy"))
    op.drop_index("idx_legacy_imports_bot", table_name="legacy_imports")
    op.drop_table("legacy_imports")
