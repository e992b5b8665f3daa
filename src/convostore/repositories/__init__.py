"""Repositories over an ``AsyncSession`` (``db_session``): they flush, never commit.

Each repository is bound to one bot, so no call can reach another bot's rows.
"""

from convostore.repositories.messages import MessageRepository
from convostore.repositories.sessions import SessionRepository

__all__ = ["MessageRepository", "SessionRepository"]
