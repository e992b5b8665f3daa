"""The reader: layouts, id forms, odd names and every unreadable class, without a database."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from convostore.legacy.reader import ParsedFile, parse_id, read_file, scan
from tests.legacy.tree import (
    BIG,
    C1,
    C3,
    C4,
    EXOTIC,
    EXPECTED_IGNORED,
    EXPECTED_UNREADABLE,
    M1,
    U1,
    U2,
    conversation,
    messy_tree,
    record,
    write,
)


def parse_all(data: Path) -> dict[str, ParsedFile]:
    return {file.rel: read_file(file) for file in scan(data)}


def test_every_file_is_classified(tmp_path: Path) -> None:
    data = messy_tree(tmp_path / "data")
    parsed = parse_all(data)
    unreadable = {rel: p.unreadable.kind for rel, p in parsed.items() if p.unreadable}
    ignored = {rel for rel, p in parsed.items() if p.file.ignored}
    assert unreadable == EXPECTED_UNREADABLE
    assert ignored == EXPECTED_IGNORED
    eras = {rel: p.file.era for rel, p in parsed.items()}
    assert eras[f"multi_bot_conversations/sage/{C1}_{U1}.json"] == 2
    assert eras["multi_bot_conversations/shared_conversations.json"] == 1
    assert eras[f"sage/{C3}_{U1}.json"] == 0


def test_ids_stay_exact_and_strings_are_accepted(tmp_path: Path) -> None:
    data = messy_tree(tmp_path / "data")
    parsed = parse_all(data)
    sage = parsed[f"multi_bot_conversations/sage/{C1}_{U1}.json"]
    spark = parsed[f"multi_bot_conversations/spark/{C1}_{U1}.json"]
    for found in (sage, spark):
        (conv,) = found.conversations
        assert (conv.channel_id, conv.user_id) == (str(C1), str(U1))
    first = sage.conversations[0].records[1]
    assert first.message_id == str(M1) and first.username == "alice"
    assert first.channel_name == "general"
    assert parse_id(2**63 + 1) == str(2**63 + 1)
    assert parse_id(1.5e18) is None and parse_id(True) is None and parse_id("12a") is None


def test_records_keep_content_naive_times_and_unknown_keys(tmp_path: Path) -> None:
    data = messy_tree(tmp_path / "data")
    sage = parse_all(data)[f"multi_bot_conversations/sage/{C1}_{U1}.json"]
    records = sage.conversations[0].records
    assert [r.content for r in records][3:] == [EXOTIC, BIG]
    assert records[3].metadata == {"legacy_extra": {"mood": "happy"}}
    assert records[0].timestamp == datetime(2025, 7, 8, 14, 58, 19)
    assert records[1].timestamp.tzinfo is None


def test_mismatched_and_odd_names_import_with_a_warning(tmp_path: Path) -> None:
    data = messy_tree(tmp_path / "data")
    parsed = parse_all(data)
    index = parsed["multi_bot_conversations/shared_conversations.json"]
    kinds = {w.kind for w in index.warnings}
    assert kinds == {"id_mismatch"}
    keyed = {c.where.split("#")[1]: c for c in index.conversations}
    assert keyed[f"{C4}_{U1}"].user_id == str(U2)  # inner ids win
    odd = parsed["multi_bot_conversations/sage/backup copy.json"]
    assert [w.kind for w in odd.warnings] == ["odd_filename"]
    assert odd.record_count == 1


def test_invalid_records_are_reported_with_their_index(tmp_path: Path) -> None:
    data = messy_tree(tmp_path / "data")
    shared = next(
        p
        for rel, p in parse_all(data).items()
        if rel.endswith(".json") and rel.count("/") == 1 and "shared_" not in rel
    )
    found = {(p.index, p.detail) for p in shared.invalid}
    assert found == {(5, "invalid role 'moderator'"), (6, "missing content")}


def test_missing_optional_keys_and_bad_message_ids(tmp_path: Path) -> None:
    path = write(
        tmp_path / "data" / "multi_bot_conversations" / "sage" / "5_6.json",
        {
            "messages": [
                {"role": "user", "content": "bare", "timestamp": "2025-01-01T00:00:00"},
                record("user", "odd id", "2025-01-01T00:00:01", None, message_id="not-an-id"),
                record("user", "bad stamp", "yesterday"),
            ],
        },
    )
    (parsed,) = [read_file(f) for f in scan(path.parents[2])]
    (conv,) = parsed.conversations
    assert (conv.channel_id, conv.user_id, conv.participants) == ("5", "6", ())
    assert [r.message_id for r in conv.records] == [None, None]
    assert [w.kind for w in parsed.warnings] == ["bad_message_id"]
    assert [p.detail for p in parsed.invalid] == ["invalid timestamp 'yesterday'"]


def test_the_reader_never_writes(tmp_path: Path) -> None:
    data = messy_tree(tmp_path / "data")
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in data.rglob("*") if p.is_file()}
    parse_all(data)
    after = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in data.rglob("*") if p.is_file()}
    assert before == after
    assert conversation(1, 2)["messages"] == []


def test_nul_characters_are_reported_not_stored(tmp_path: Path) -> None:
    path = write(
        tmp_path / "data" / "multi_bot_conversations" / "sage" / "5_6.json",
        conversation(
            5,
            6,
            record("user", "a\x00b", "2025-01-01T00:00:00"),
            record("user", "fine", "2025-01-01T00:00:01", None, username="x\x00y"),
        ),
    )
    (parsed,) = [read_file(f) for f in scan(path.parents[2])]
    assert [(p.index, p.kind) for p in parsed.invalid] == [(0, "invalid_record")]
    assert "NUL" in parsed.invalid[0].detail
    (kept,) = parsed.conversations[0].records
    assert kept.content == "fine" and kept.username is None
