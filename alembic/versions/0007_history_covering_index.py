"""SQLite: ``idx_conversations_history``, every column the history read selects, in channel order.

A history read takes a channel's newest rows through ``idx_conversations_bot_channel_time`` and
then fetches each row from the table. Rows are stored in arrival order, so in a database shared by
many channels each of a channel's newest 100 rows lies on a table page of its own: 100 page reads
per call, from the operating system's cache or the disk once the file is larger than SQLite's page
cache. This index holds the columns the read selects after its key (``channel_id``, ``bot_name``,
``timestamp``, ``id``), so the read is one range scan over a few adjacent index pages and never
touches the table (``USING COVERING INDEX``): its cost no longer grows with the table. The key
starts with ``channel_id`` so that no query on ``bot_name`` alone can use the index: without
statistics, SQLite would rather scan all of a bot's rows in it (it holds every column a query may
want) than look them up through a narrower index such as ``idx_conversations_bot_user_time``.

The price is space and write work: the index repeats the row (all columns but ``source``), so the
messages take about twice the room on disk and every insert writes the row twice.

PostgreSQL is unchanged: a B-tree entry holds at most about 2.7 kB, so an ``INCLUDE`` of the
content would make longer messages fail to insert, and its index-only scans still visit the heap
for rows newer than the last vacuum, which are exactly the newest rows a history read wants.

Downgrade drops the index; messages are untouched on both backends.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen here (a revision never imports the models): the key, then the history read's columns.
_COLUMNS = [
    "channel_id",
    "bot_name",
    "timestamp",
    "id",
    "channel_name",
    "channel_type",
    "user_id",
    "username",
    "session_id",
    "message_id",
    "role",
    "content",
    "metadata",
    "parent_id",
    "reply_to_message_id",
    "attachments",
    "edited_at",
    "author_is_bot",
]


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.create_index("idx_conversations_history", "conversations", _COLUMNS)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.drop_index("idx_conversations_history", table_name="conversations")
