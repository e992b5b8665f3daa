"""Declarative models of the ``conversations`` and ``sessions`` tables.

Column names, CHECK constraints and the original index names follow the storage plan, but for
``idx_conversations_bot_channel``, dropped by revision 0008 (the key of
``idx_conversations_bot_channel_time`` starts with its key). The additions are the two unique keys,
the foreign key that ties messages to their session, a covering index for "newest N messages of a
channel", the partial unique index that allows one open session per bot and channel, the
``source`` marker of imported rows, ``legacy_imports``, the ledger of legacy JSON imports,
(revision 0003) the Discord columns of a message and ``message_revisions``, the earlier versions of
edited messages, (revision 0005) an index on a message's user and time, and (revision 0007) on
SQLite only ``idx_conversations_history``, which holds every column a history read selects.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on every backend.

    SQLite has no time zone type and silently drops offsets, so values are stored there as naive
    UTC; PostgreSQL keeps ``timestamptz``.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes cannot be stored; pass an aware (UTC) datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# SQLite's rowid alias must be INTEGER; PostgreSQL gets a 64-bit key.
_PrimaryKey = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class ChatSessionModel(Base):
    """A row of ``sessions``: one conversation session of a bot in a channel."""

    __tablename__ = "sessions"

    id: Mapped[int] = mapped_column(_PrimaryKey, primary_key=True, autoincrement=True)
    bot_name: Mapped[str] = mapped_column(Text)
    channel_id: Mapped[str] = mapped_column(Text)
    session_id: Mapped[str] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_activity: Mapped[datetime] = mapped_column(UTCDateTime)
    message_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    is_active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    source: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        UniqueConstraint("bot_name", "channel_id", "session_id"),
        CheckConstraint("message_count >= 0", name="message_count_not_negative"),
        Index("idx_sessions_bot_channel", "bot_name", "channel_id"),
        Index("idx_sessions_active", "is_active"),
        Index(
            "uq_sessions_one_active",
            "bot_name",
            "channel_id",
            unique=True,
            sqlite_where=text("is_active"),
            postgresql_where=text("is_active"),
        ),
        {"sqlite_autoincrement": True},
    )


# ``idx_conversations_history`` on SQLite (revision 0007): the key of a channel's history in time
# order, then every other column a history read selects (all but ``source``), so the read never
# visits the table. ``channel_id`` comes first so that a query on ``bot_name`` alone cannot use it:
# without statistics SQLite would rather scan all of a bot's rows in it (it holds every column)
# than look a user's rows up through idx_conversations_bot_user_time.
HISTORY_INDEX_COLUMNS: tuple[str, ...] = (
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
)


class ConversationModel(Base):
    """A row of ``conversations``: one message."""

    __tablename__ = "conversations"

    id: Mapped[int] = mapped_column(_PrimaryKey, primary_key=True, autoincrement=True)
    bot_name: Mapped[str] = mapped_column(Text)
    channel_id: Mapped[str] = mapped_column(Text)
    channel_name: Mapped[str] = mapped_column(Text)
    channel_type: Mapped[str] = mapped_column(Text)
    user_id: Mapped[str] = mapped_column(Text)
    username: Mapped[str] = mapped_column(Text)
    session_id: Mapped[str] = mapped_column(Text)
    message_id: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(Text)
    content: Mapped[str] = mapped_column(Text)
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime)
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSON)
    source: Mapped[str | None] = mapped_column(Text)
    parent_id: Mapped[str | None] = mapped_column(Text)
    reply_to_message_id: Mapped[str | None] = mapped_column(Text)
    attachments: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    edited_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    author_is_bot: Mapped[bool] = mapped_column(Boolean, server_default=false())

    __table_args__ = (
        CheckConstraint("channel_type IN ('channel', 'dm')", name="channel_type"),
        CheckConstraint("role IN ('user', 'assistant', 'system')", name="role"),
        UniqueConstraint("bot_name", "message_id"),
        ForeignKeyConstraint(
            ["bot_name", "channel_id", "session_id"],
            ["sessions.bot_name", "sessions.channel_id", "sessions.session_id"],
            ondelete="CASCADE",
        ),
        Index("idx_conversations_session", "session_id"),
        Index("idx_conversations_bot_channel_time", "bot_name", "channel_id", "timestamp", "id"),
        Index("idx_conversations_bot_user_time", "bot_name", "user_id", "timestamp", "id"),
        # SQLite only (revision 0007): history read from the index alone (HISTORY_INDEX_COLUMNS).
        Index("idx_conversations_history", *HISTORY_INDEX_COLUMNS).ddl_if(dialect="sqlite"),
        {"sqlite_autoincrement": True},
    )


class MessageRevisionModel(Base):
    """A row of ``message_revisions``: an earlier version of an edited message.

    Deleting the message deletes its revisions (the store also deletes them explicitly, so that
    connections without SQLite's foreign keys on leave none behind).
    """

    __tablename__ = "message_revisions"

    id: Mapped[int] = mapped_column(_PrimaryKey, primary_key=True, autoincrement=True)
    conversation_id: Mapped[int] = mapped_column(_PrimaryKey)
    content: Mapped[str] = mapped_column(Text)
    edited_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    replaced_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        ForeignKeyConstraint(["conversation_id"], ["conversations.id"], ondelete="CASCADE"),
        Index("idx_message_revisions_conversation", "conversation_id", "id"),
        {"sqlite_autoincrement": True},
    )


class LegacyImportModel(Base):
    """A row of ``legacy_imports``: one finished import of a bot's legacy JSON files."""

    __tablename__ = "legacy_imports"

    id: Mapped[int] = mapped_column(_PrimaryKey, primary_key=True, autoincrement=True)
    bot_name: Mapped[str] = mapped_column(Text)
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime)
    data_dir: Mapped[str] = mapped_column(Text)
    messages: Mapped[int] = mapped_column(Integer)

    __table_args__ = (
        Index("idx_legacy_imports_bot", "bot_name", "finished_at"),
        {"sqlite_autoincrement": True},
    )
