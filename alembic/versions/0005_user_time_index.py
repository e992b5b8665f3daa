"""One user's messages in time order: ``idx_conversations_bot_user_time``.

Replaces ``idx_conversations_bot_user`` (``bot_name``, ``user_id``) by an index on (``bot_name``,
``user_id``, ``timestamp``, ``id``): a user's newest messages across channels (the viewer's user
page) become one index range scan read backwards, with no sort of all the user's rows. Its first
two columns are the old index's, so the erase and export of a user's data find their rows through
it as before.

Downgrade restores the old index. Messages are untouched on both backends (no table copy).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "idx_conversations_bot_user_time",
        "conversations",
        ["bot_name", "user_id", "timestamp", "id"],
    )
    op.drop_index("idx_conversations_bot_user", table_name="conversations")


def downgrade() -> None:
    op.create_index("idx_conversations_bot_user", "conversations", ["bot_name", "user_id"])
    op.drop_index("idx_conversations_bot_user_time", table_name="conversations")
