"""Discord message structure: thread parent, reply, attachments, edits, bot authors, revisions.

Adds to ``conversations`` the columns ``parent_id`` (a thread's parent channel),
``reply_to_message_id``, ``attachments`` (JSON list), ``edited_at`` and ``author_is_bot`` (false
for every existing row), the index ``idx_conversations_bot_user`` that finds one user's rows (the
erase and export of a user's data), and the table ``message_revisions``: the earlier versions of
edited messages, tied to their message (deleting the message deletes them). Columns are added in
place (``ALTER TABLE … ADD COLUMN``), so existing rows are not copied on either backend.

Downgrade drops the table, the index and the columns (earlier versions of edited messages are
lost; the current content stays).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_pk = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_NEW_COLUMNS = ("parent_id", "reply_to_message_id", "attachments", "edited_at", "author_is_bot")


def upgrade() -> None:
    op.add_column("conversations", sa.Column("parent_id", sa.Text(), nullable=True))
    op.add_column("conversations", sa.Column("reply_to_message_id", sa.Text(), nullable=True))
    op.add_column("conversations", sa.Column("attachments", sa.JSON(), nullable=True))
    op.add_column(
        "conversations", sa.Column("edited_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column(
        "conversations",
        sa.Column("author_is_bot", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.create_index("idx_conversations_bot_user", "conversations", ["bot_name", "user_id"])
    op.create_table(
        "message_revisions",
        sa.Column("id", _pk, primary_key=True, autoincrement=True),
        sa.Column("conversation_id", _pk, nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("edited_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("replaced_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message_revisions")),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_message_revisions_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "idx_message_revisions_conversation", "message_revisions", ["conversation_id", "id"]
    )


def downgrade() -> None:
    op.drop_index("idx_message_revisions_conversation", table_name="message_revisions")
    op.drop_table("message_revisions")
    op.drop_index("idx_conversations_bot_user", table_name="conversations")
    for column in reversed(_NEW_COLUMNS):
        # SQLite 3.35+ drops a column in place (no index or constraint uses these).
        op.drop_column("conversations", column)
