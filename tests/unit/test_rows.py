"""The one row -> record mapping: built from the record's own field list, equal to ``__init__``."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone

from convostore.records import MESSAGE_FIELDS, StoredMessage
from convostore.repositories.rows import (
    DRIVER_SELECT,
    MESSAGE_COLUMNS,
    MESSAGE_INDEX,
    NEW_MESSAGE_FIELDS,
    SESSION_COLUMNS,
    NewMessage,
    message_columns,
    message_from_row,
    message_from_sqlite_row,
    messages_from_driver_rows,
    new_message,
    session_from_row,
    sqlite_values,
    stored_messages,
)

AT = datetime(2024, 1, 8, 14, 30, 0, 123456, tzinfo=UTC)
NEW = NewMessage(
    "7",
    "général",
    "channel",
    "42",
    "ålice",
    "s1",
    "99",
    "user",
    "hi",
    AT,
    {"k": [1]},
    parent_id="3",
    reply_to_message_id="98",
    attachments=[{"id": "1", "filename": "a", "url": None, "content_type": None, "size": 2}],
    edited_at=AT,
    author_is_bot=True,
)
_TEXT_AT = "2024-01-08 14:30:00.123456"
_ATTACHMENTS_JSON = '[{"id": "1", "filename": "a", "url": null, "content_type": null, "size": 2}]'
# The Discord fields of revision 0003 as the driver returns them on SQLite.
_DRIVER_DISCORD = ("3", "98", _ATTACHMENTS_JSON, _TEXT_AT, 1)


def test_one_field_list_everywhere() -> None:
    assert MESSAGE_FIELDS[2:] == NEW_MESSAGE_FIELDS
    assert MESSAGE_FIELDS[:2] == ("id", "bot_name")
    assert tuple(c.key for c in MESSAGE_COLUMNS) == MESSAGE_FIELDS
    assert tuple(c.key for c in message_columns("sqlite")) == MESSAGE_FIELDS
    assert list(MESSAGE_INDEX) == list(MESSAGE_FIELDS)
    assert [c.key for c in SESSION_COLUMNS] == [
        "session_id",
        "channel_id",
        "started_at",
        "last_activity",
        "message_count",
        "is_active",
    ]
    for name in MESSAGE_FIELDS:
        if name not in ("bot_name", "channel_id"):
            assert name in DRIVER_SELECT


def test_every_builder_makes_the_record_init_makes() -> None:
    expected = StoredMessage(5, "sage", *(getattr(NEW, f) for f in NEW_MESSAGE_FIELDS))
    stored = NEW.stored(5, "sage")
    assert stored == expected and type(stored) is StoredMessage
    assert stored.metadata is not NEW.metadata  # detached from the caller's dict
    values = dataclasses.astuple(expected)
    assert message_from_row(values) == expected
    text_row = (*values[:11], _TEXT_AT, values[12], *values[13:16], _TEXT_AT, values[17])
    assert message_from_sqlite_row(text_row) == expected
    driver_row = (5, *values[3:11], _TEXT_AT, '{"k": [1]}', *_DRIVER_DISCORD)
    [built] = messages_from_driver_rows([driver_row], "sage", "7")
    assert built == expected and built.timestamp.tzinfo is UTC
    assert built.edited_at is not None and built.edited_at.tzinfo is UTC
    assert built.author_is_bot is True
    null_json = (*driver_row[:10], "null", *_DRIVER_DISCORD)
    sql_null = (*driver_row[:10], None, *_DRIVER_DISCORD)
    assert messages_from_driver_rows([null_json, sql_null], "sage", "7")[0].metadata is None
    assert messages_from_driver_rows([sql_null], "sage", "7")[0].metadata is None
    plain = (*driver_row[:11], None, None, None, None, 0)  # a row that predates revision 0003
    [old] = messages_from_driver_rows([plain], "sage", "7")
    assert (old.attachments, old.edited_at, old.author_is_bot) == ([], None, False)


def test_params_bind_every_column_but_the_id() -> None:
    assert NEW.params("sage") == {"bot_name": "sage", **dataclasses.asdict(NEW)}


def test_session_rows_give_bools() -> None:
    row = ("s1", "7", AT, AT, 3, 1)
    record = session_from_row(row)
    assert record.is_active is True and record.message_count == 3


def test_batch_builders_equal_the_dataclass_and_the_single_write() -> None:
    """The backfill's generated builders: the same rows, records and stored values."""
    values = [getattr(NEW, f) for f in NEW_MESSAGE_FIELDS]
    built = new_message(*values)
    assert built == NEW and type(built) is NewMessage
    plain = dataclasses.replace(NEW, metadata=None, attachments=[], edited_at=None)
    records = stored_messages([NEW, plain], ["s9", "s8"], [5, 6], "sage")
    assert records == [
        dataclasses.replace(NEW, session_id="s9").stored(5, "sage"),
        dataclasses.replace(plain, session_id="s8").stored(6, "sage"),
    ]
    assert records[0].metadata is not NEW.metadata  # a record shares no mutable value
    assert records[0].attachments[0] is not NEW.attachments[0]
    # As SQLite stores them (Core's conversions): bot_name first, then the fields in order.
    stored = sqlite_values([NEW, plain], ["s9", "s8"], [1, 0], "sage")
    width = len(NEW_MESSAGE_FIELDS) + 1
    second, first = stored[:width], stored[width:]
    assert len(stored) == 2 * width and second[0] == first[0] == "sage"
    assert first[1:] == [
        "7", "général", "channel", "42", "ålice", "s9", "99", "user", "hi", _TEXT_AT,
        '{"k": [1]}', "3", "98", _ATTACHMENTS_JSON, _TEXT_AT, 1,
    ]  # fmt: skip
    assert second[NEW_MESSAGE_FIELDS.index("session_id") + 1] == "s8"
    assert [second[NEW_MESSAGE_FIELDS.index(f) + 1] for f in ("metadata", "attachments")] == [
        "null",
        "[]",
    ]
    assert second[NEW_MESSAGE_FIELDS.index("edited_at") + 1] is None
    elsewhere = NEW.timestamp.astimezone(timezone(timedelta(hours=-5)))
    moved = dataclasses.replace(NEW, timestamp=elsewhere)
    assert sqlite_values([moved], ["s9"], [0], "sage")[10] == _TEXT_AT
