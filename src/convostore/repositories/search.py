"""Full-text search over one bot's ``conversations`` rows (the index of revisions 0004 and 0006).

SQLite matches through the FTS5 table ``conversations_fts``; PostgreSQL through the generated
``search_vector`` column. On SQLite new rows reach the index in batches (:func:`index_pending`);
``conversations_fts_state.indexed_through`` is the highest id it holds, and a search matches the
rows above it (pending: at most a few hundred while a store writes) through a private in-memory
FTS5 table of the reading connection with the same tokenizer, so they match exactly as indexed
rows do, and nothing is written to the database.

The caller hands in terms already split (words and phrases, as text): each is passed to the
database as a bound value that the database itself turns into a phrase, so no user input is ever
read as FTS5 or ``tsquery`` syntax.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    bindparam,
    column,
    func,
    insert,
    literal_column,
    select,
    table,
    text,
)
from sqlalchemy.engine import Connection

from convostore.models import UTCDateTime
from convostore.records import StoredMessage
from convostore.repositories.rows import MESSAGES, message_columns, message_reader

_T = MESSAGES
_FTS = table("conversations_fts", column("rowid", Integer))
_FTS_NAME: ColumnElement[Any] = literal_column("conversations_fts")
_VECTOR: ColumnElement[Any] = literal_column("conversations.search_vector")
_STATE = table("conversations_fts_state", column("id", Integer), column("indexed_through", Integer))
_INDEXED_THROUGH = select(_STATE.c.indexed_through).where(_STATE.c.id == 1)
_NEWEST_ID = select(func.max(_T.c.id))
_INDEX_PENDING = text(
    "INSERT INTO conversations_fts(rowid, content) SELECT id, content FROM conversations"
    " WHERE id > :after AND id <= :through ORDER BY id"
)
_AUTOMERGE = text(
    "INSERT INTO conversations_fts(conversations_fts, rank) VALUES ('automerge', :pages)"
)
_DEFAULT_AUTOMERGE = 4  # FTS5's own default
# Tokenizer of revision 0004's index; the pending rows' private table must split words alike.
_TOKENIZE = "unicode61 remove_diacritics 0"
_PENDING_FTS = table(
    "convostore_pending_fts", column("rowid", Integer), column("content"), schema="temp"
)
_PENDING_FTS_NAME: ColumnElement[Any] = literal_column("convostore_pending_fts")
_CREATE_PENDING_FTS = text(
    "CREATE VIRTUAL TABLE IF NOT EXISTS temp.convostore_pending_fts"
    f" USING fts5(content, tokenize='{_TOKENIZE}')"
)
_CLEAR_PENDING_FTS = text("DELETE FROM temp.convostore_pending_fts")
_MARK_INDEXED = _STATE.update().where(_STATE.c.id == 1).values(indexed_through=bindparam("through"))


def indexed_through(connection: Connection) -> int | None:
    """SQLite: the highest message id the search index holds; None on PostgreSQL."""
    if connection.dialect.name != "sqlite":
        return None
    return int(connection.execute(_INDEXED_THROUGH).scalar_one())


def _has_state(connection: Connection) -> bool:
    found = connection.execute(
        text("SELECT 1 FROM sqlite_master WHERE name = 'conversations_fts_state'")
    ).first()
    return found is not None


def index_pending(connection: Connection, *, bulk: bool = False) -> int:
    """SQLite: add the pending rows to the search index, in a write transaction; how many.

    Run inside ``BEGIN IMMEDIATE`` (or any transaction holding the write lock): no row can be
    inserted below the new mark by another connection meanwhile. On PostgreSQL, 0 (nothing waits).
    ``bulk`` (the legacy import, a million rows in one go) turns FTS5's incremental merging off
    for this one statement (its ``automerge`` option, back to the default in the same
    transaction; the ``crisismerge`` limit still merges): 15 % less time to fill the index.
    """
    if connection.dialect.name != "sqlite" or not _has_state(connection):
        return 0  # PostgreSQL, or a revision before batched indexing (the legacy import, 0002)
    after = indexed_through(connection)
    assert after is not None
    through = connection.execute(_NEWEST_ID).scalar()
    if through is None or through <= after:
        return 0
    if bulk:
        connection.execute(_AUTOMERGE, {"pages": 0})
    added = connection.execute(_INDEX_PENDING, {"after": after, "through": through}).rowcount
    if bulk:
        connection.execute(_AUTOMERGE, {"pages": _DEFAULT_AUTOMERGE})
    connection.execute(_MARK_INDEXED, {"through": through})
    return int(added)


def pending_count(connection: Connection) -> int:
    """SQLite: how many stored rows the search index does not hold yet (0 on PostgreSQL)."""
    after = indexed_through(connection)
    if after is None:
        return 0
    return int(
        connection.execute(select(func.count()).select_from(_T).where(_T.c.id > after)).scalar_one()
    )


def fts5_query(terms: Sequence[str]) -> str:
    """An FTS5 query matching every term as a phrase: each a string literal, quotes doubled."""
    return " ".join('"' + term.replace('"', '""') + '"' for term in terms)


def _tsquery(count: int) -> ColumnElement[Any]:
    query: ColumnElement[Any] | None = None
    for n in range(count):
        phrase = func.phraseto_tsquery(literal_column("'simple'::regconfig"), bindparam(f"t{n}"))
        query = phrase if query is None else query.op("&&")(phrase)
    assert query is not None
    return query


def _filters(
    query: Select[Any], channel_id: str | None, user_id: str | None, since: datetime | None
) -> Select[Any]:
    query = query.where(_T.c.bot_name == bindparam("bot_name"))
    if channel_id is not None:
        query = query.where(_T.c.channel_id == bindparam("channel_id"))
    if user_id is not None:
        query = query.where(_T.c.user_id == bindparam("user_id"))
    if since is not None:
        query = query.where(_T.c.timestamp >= bindparam("since", type_=UTCDateTime))
    return query


def _sqlite_pending_rows(
    channel_id: str | None, user_id: str | None, since: datetime | None
) -> Select[Any]:
    query = select(_T.c.id, _T.c.content).where(_T.c.id > bindparam("indexed"))
    return _filters(query, channel_id, user_id, since)


def _sqlite_pending_matches(
    channel_id: str | None, user_id: str | None, since: datetime | None
) -> Select[Any]:
    query = (
        select(*message_columns("sqlite"))
        .select_from(_PENDING_FTS.join(_T, _T.c.id == _PENDING_FTS.c.rowid))
        .where(_PENDING_FTS_NAME.op("MATCH")(bindparam("match")))
    )
    return (
        _filters(query, channel_id, user_id, since)
        .order_by(_T.c.id.desc())
        .limit(bindparam("limit", type_=Integer))
    )


def _sqlite_statement(
    channel_id: str | None, user_id: str | None, since: datetime | None
) -> Select[Any]:
    # Newest stored first, read straight off the FTS5 doclists backwards (rowid is the message's
    # id): the query stops after ``limit`` matches of this bot, however common the words are.
    # Ordering by bm25 instead costs a pass over every match (14 s for a word in 83% of 1M rows).
    query = (
        select(*message_columns("sqlite"))
        .select_from(_FTS.join(_T, _T.c.id == _FTS.c.rowid))
        .where(_FTS_NAME.op("MATCH")(bindparam("match")), _FTS.c.rowid <= bindparam("indexed"))
    )
    return (
        _filters(query, channel_id, user_id, since)
        .order_by(_FTS.c.rowid.desc())
        .limit(bindparam("limit", type_=Integer))
    )


def _postgresql_statement(
    terms: int, channel_id: str | None, user_id: str | None, since: datetime | None
) -> Select[Any]:
    query = select(*message_columns("postgresql")).where(_VECTOR.op("@@")(_tsquery(terms)))
    return (
        _filters(query, channel_id, user_id, since)
        .order_by(_T.c.id.desc())
        .limit(bindparam("limit", type_=Integer))
    )


class SearchRepository:
    def __init__(self, connection: Connection, bot_name: str) -> None:
        self.connection = connection
        self.bot_name = bot_name

    def search(
        self,
        terms: Sequence[str],
        *,
        channel_id: str | None,
        user_id: str | None,
        since: datetime | None,
        limit: int,
    ) -> list[StoredMessage]:
        """This bot's messages matching every term, the most recently stored first."""
        params: dict[str, Any] = {
            "bot_name": self.bot_name,
            "channel_id": channel_id,
            "user_id": user_id,
            "since": since,
            "limit": limit,
        }
        read = message_reader(self.connection.dialect.name)
        if self.connection.dialect.name != "sqlite":
            statement = _postgresql_statement(len(terms), channel_id, user_id, since)
            params.update({f"t{n}": term for n, term in enumerate(terms)})
            return [read(row) for row in self.connection.execute(statement, params)]
        # The pending rows are the newest: matched first, then the index for the rest. The mark is
        # read first, so a batch indexed meanwhile is neither missed nor found twice.
        indexed = indexed_through(self.connection)
        params.update(indexed=indexed, match=fts5_query(terms))
        found: list[StoredMessage] = []
        if (self.connection.execute(_NEWEST_ID).scalar() or 0) > (indexed or 0):
            found = self._pending_matches(params, channel_id, user_id, since)
        params["limit"] = limit - len(found)
        statement = _sqlite_statement(channel_id, user_id, since)
        found.extend(read(row) for row in self.connection.execute(statement, params))
        return found

    def _pending_matches(
        self,
        params: dict[str, Any],
        channel_id: str | None,
        user_id: str | None,
        since: datetime | None,
    ) -> list[StoredMessage]:
        # A TEMP table is private to this connection and lives in memory: nothing is written to
        # the database, and a read-only database can be searched too.
        self.connection.execute(_CREATE_PENDING_FTS)
        self.connection.execute(_CLEAR_PENDING_FTS)
        pending = _sqlite_pending_rows(channel_id, user_id, since)
        self.connection.execute(
            insert(_PENDING_FTS).from_select(["rowid", "content"], pending), params
        )
        read = message_reader("sqlite")
        matches = self.connection.execute(
            _sqlite_pending_matches(channel_id, user_id, since), params
        )
        found = [read(row) for row in matches]
        self.connection.execute(_CLEAR_PENDING_FTS)
        return found
