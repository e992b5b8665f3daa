"""Repositories over one transaction's ``Connection``: they execute, never commit.

Each repository is bound to one bot, so no call can reach another bot's rows. They are plain
synchronous code over prebuilt Core statements, so that a whole unit of work runs in one step: in
one greenlet on PostgreSQL (``AsyncConnection.run_sync``) and in one hop to a worker thread on
SQLite, instead of one hop per driver call.
"""

from convostore.repositories.messages import MessageRepository
from convostore.repositories.sessions import SessionRepository

__all__ = ["MessageRepository", "SessionRepository"]
