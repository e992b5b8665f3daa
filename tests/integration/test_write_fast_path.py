"""The SQLite write path runs its two statements straight on the driver, by position.

These tests pin that it binds and stores exactly what Core would: the same text for times (any
zone), JSON and booleans, the same session bounds, and the same row as Core's own insert.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Integer, bindparam, create_engine, event, select
from sqlalchemy.exc import DBAPIError

from convostore import BotStore, ChannelInfo
from convostore.models import UTCDateTime
from convostore.repositories import driver
from convostore.repositories.messages import _INSERT
from convostore.repositories.rows import NewMessage
from convostore.repositories.sessions import SessionRepository
from convostore.sessions import fits_session

AT = datetime(2024, 1, 8, 14, 30, 0, 7, tzinfo=UTC)
BERLIN_WINTER = timezone(timedelta(hours=1))
# A repeated parameter, a literal of the statement itself (bound too), and typed ones.
STATEMENT = select(
    bindparam("at", type_=UTCDateTime),
    bindparam("n", type_=Integer) + 1,
    bindparam("at", type_=UTCDateTime),
    bindparam("name"),
    bindparam("late", type_=UTCDateTime),
)


def test_prepared_binds_what_core_binds() -> None:
    engine = create_engine("sqlite://")
    sent: list[tuple[str, Any]] = []

    @event.listens_for(engine, "before_cursor_execute")
    def capture(_c: Any, _cur: Any, sql: str, parameters: Any, _ctx: Any, _many: bool) -> None:
        sent.append((sql, parameters))

    prepared = driver.Prepared(STATEMENT, ("name", "at", "late", "n"))
    with engine.connect() as connection:
        raw = connection.connection.driver_connection
        assert raw is not None
        for at, late in [(AT, None), (AT.astimezone(BERLIN_WINTER), AT + timedelta(days=1))]:
            params = {"name": "général", "at": at, "late": late, "n": 41}
            by_position = prepared.execute(connection, ("général", at, late, 41)).fetchone()
            by_name = driver.execute(connection, STATEMENT, params).fetchone()
            connection.execute(STATEMENT, params)  # Core, with its own conversions
            core = raw.execute(*sent[-1]).fetchone()  # ... as the driver got them
            assert by_position == by_name == core
            assert by_position[0] == by_position[2] == "2024-01-08 14:30:00.000007"
            assert by_position[1:4:2] == (42, "général")
            assert by_position[4] == (None if late is None else "2024-01-09 14:30:00.000007")


def test_prepared_refuses_naive_times_and_wraps_driver_errors() -> None:
    engine = create_engine("sqlite://")
    with engine.connect() as connection:
        prepared = driver.Prepared(STATEMENT, ("name", "at", "late", "n"))
        with pytest.raises(ValueError, match="naive"):
            prepared.execute(connection, ("x", datetime(2024, 1, 1), None, 1))
        with pytest.raises(DBAPIError):
            driver.run(connection, "SELECT * FROM no_such_table", ())


async def test_a_single_write_stores_the_row_core_stores(sqlite_db_path: Path) -> None:
    from convostore import BotConfig

    config = BotConfig.model_validate({"name": "sage", "storage": {"path": str(sqlite_db_path)}})
    thread = ChannelInfo("11", "fil", "channel", parent_id="10")
    fields = {
        "user_id": 42,
        "username": "ålice",
        "role": "assistant",
        "content": "bonjour",
        "timestamp": AT.astimezone(BERLIN_WINTER),
        "metadata": {"k": ["v", 1]},
        "reply_to_message_id": 7,
        "attachments": [{"id": 3, "filename": "a.txt"}],
        "edited_at": AT + timedelta(seconds=5),
        "author_is_bot": True,
    }
    async with BotStore.open(config) as store:
        stored = await store.add_message(thread, message_id=1, **fields)
        later = {**fields, "timestamp": AT + timedelta(seconds=1)}
        extended = await store.add_message(thread, message_id=3, **later)  # the open session's
        assert await store.history(thread) == [stored, extended]  # oldest first
        # The same message through Core's insert statement, as row 2 of the same session.
        core_row = NewMessage(
            **{
                **{f: getattr(stored, f) for f in NewMessage.__dataclass_fields__},
                "message_id": "2",
            }
        ).params("sage")
        async with store.engine.begin() as connection:
            await connection.execute(_INSERT["sqlite"], core_row)
    columns = [f for f in NewMessage.__dataclass_fields__ if f != "message_id"]
    listed = ", ".join(f"{c}, typeof({c})" for c in ["bot_name", *columns])
    with sqlite3.connect(sqlite_db_path) as raw:
        fast, core, _ = raw.execute(
            f"SELECT {listed} FROM conversations ORDER BY message_id"
        ).fetchall()
        session = raw.execute(
            "SELECT started_at, last_activity, message_count FROM sessions"
        ).fetchone()
    assert fast == core
    # One session: the second message fitted it (the bounds bound right) and widened it.
    assert session == ("2024-01-08 14:30:00.000007", "2024-01-08 14:30:01.000007", 2)


@pytest.mark.parametrize("zone", [UTC, BERLIN_WINTER])
def test_the_open_session_takes_exactly_the_messages_the_rule_admits(
    sqlite_db_path: Path, zone: timezone
) -> None:
    """extend_open by position on the driver: its bounds are fits_session's rule, to the second."""
    gap, timeout = 3000, 3600
    start, last = AT, AT + timedelta(minutes=10)
    engine = create_engine(f"sqlite:///{sqlite_db_path}")
    with engine.connect() as connection:
        assert connection.dialect.driver == "pysqlite"
        sessions = SessionRepository(connection, "sage")
        with connection.begin():
            sessions.start("5", "s", start)
            current = sessions.open_session("5")
            assert current is not None
            sessions.count_message(current[0], last)
        offsets = [*range(-3100, 4300, 100), -3001, -3000, -2999, 3599, 3600, 3601]
        taken = []
        for seconds in offsets:
            at = (start + timedelta(seconds=seconds)).astimezone(zone)
            transaction = connection.begin()
            found = sessions.extend_open("5", at, gap=gap, max_span=timeout)
            transaction.rollback()
            expected = fits_session(start, last, at, gap=gap, timeout=timeout)
            taken.append(found == "s")
            assert (found == "s") is expected and found in ("s", None), seconds
    assert True in taken and False in taken
    engine.dispose()
