"""Initial schema: conversations and sessions.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_pk = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "sessions",
        sa.Column("id", _pk, primary_key=True, autoincrement=True),
        sa.Column("bot_name", sa.Text(), nullable=False),
        sa.Column("channel_id", sa.Text(), nullable=False),
        sa.Column("session_id", sa.Text(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_activity", sa.DateTime(timezone=True), nullable=False),
        sa.Column("message_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("is_active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("source", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sessions")),
        sa.UniqueConstraint(
            "bot_name",
            "channel_id",
            "session_id",
            name=op.f("uq_sessions_bot_name_channel_id_session_id"),
        ),
        sa.CheckConstraint(
            "message_count >= 0", name=op.f("ck_sessions_message_count_not_negative")
        ),
        sqlite_autoincrement=True,
    )
    op.create_index("idx_sessions_bot_channel", "sessions", ["bot_name", "channel_id"])
    op.create_index("idx_sessions_active", "sessions", ["is_active"])
    op.create_index(
        "uq_sessions_one_active",
        "sessions",
        ["bot_name", "channel_id"],
        unique=True,
        sqlite_where=sa.text("is_active"),
        postgresql_where=sa.text("is_active"),
    )
    op.create_table(
        "conversations",
        sa.Column("id", _pk, primary_key=True, autoincrement=True),
        sa.Column("bot_name", sa.Text(), nullable=False),
        sa.Column("channel_id", sa.Text(), nullable=False),
        sa.Column("channel_name", sa.Text(), nullable=False),
        sa.Column("channel_type", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("username", sa.Text(), nullable=False),
        sa.Column("session_id", sa.Text(), nullable=False),
        sa.Column("message_id", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("metadata", sa.JSON(), nullable=True),
        sa.Column("source", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversations")),
        sa.CheckConstraint(
            "channel_type IN ('channel', 'dm')", name=op.f("ck_conversations_channel_type")
        ),
        sa.CheckConstraint(
            "role IN ('user', 'assistant', 'system')", name=op.f("ck_conversations_role")
        ),
        sa.UniqueConstraint(
            "bot_name", "message_id", name=op.f("uq_conversations_bot_name_message_id")
        ),
        sa.ForeignKeyConstraint(
            ["bot_name", "channel_id", "session_id"],
            ["sessions.bot_name", "sessions.channel_id", "sessions.session_id"],
            name=op.f("fk_conversations_bot_name_channel_id_session_id_sessions"),
            ondelete="CASCADE",
        ),
        sqlite_autoincrement=True,
    )
    op.create_index("idx_conversations_bot_channel", "conversations", ["bot_name", "channel_id"])
    op.create_index("idx_conversations_session", "conversations", ["session_id"])
    op.create_index(
        "idx_conversations_bot_channel_time",
        "conversations",
        ["bot_name", "channel_id", "timestamp", "id"],
    )


def downgrade() -> None:
    op.drop_table("conversations")
    op.drop_table("sessions")
