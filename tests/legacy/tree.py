"""Writers of legacy JSON trees for the tests, byte for byte as the old bots wrote them.

``messy_tree`` builds one tree holding every case of the legacy format page; ``EXPECTED`` says what
an import of it must give.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

C1, C2, C3, C4, C5 = (
    1234567890123456789,
    1111111111111111111,
    2222222222222222222,
    3333333333333333333,
    4444444444444444444,
)
U1, U2 = 987654321098765432, 876543210987654321
M1, M2, M3 = 1391234567890123456, 1391234567890123457, 1391234567890123458
BIG = "long reply " + "é" * 60_000  # over 100 KB in UTF-8
EXOTIC = (
    "emoji 👩‍👩‍👧‍👦 🏳️‍🌈, "
    "RTL \u202e\u05e9\u05dc\u05d5\u05dd \u05e2\u05d5\u05dc\u05dd\u202c, "
    "zero-width a\u200bb\u200dc\ufeff, "
    "decomposed e\u0301 vs composed \u00e9, Hangul filler \u3164, nul-free \U0001f600"
)


def dumps(value: Any) -> bytes:
    """As the legacy writer did: indent=2, ensure_ascii=False, no trailing newline."""
    return json.dumps(value, indent=2, ensure_ascii=False).encode("utf-8")


def write(path: Path, value: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(dumps(value))
    return path


def record(
    role: str, content: str, timestamp: str, bot: str | None = None, **metadata: Any
) -> dict[str, Any]:
    found: dict[str, Any] = {
        "role": role,
        "content": content,
        "timestamp": timestamp,
        "bot_name": bot,
    }
    if metadata:
        found["metadata"] = metadata
    return found


def conversation(
    channel: int | str | None,
    user: int | str | None,
    *records: dict[str, Any],
    participants: list[str] | None = None,
) -> dict[str, Any]:
    found: dict[str, Any] = {}
    if channel is not None:
        found["channel_id"] = channel
    if user is not None:
        found["user_id"] = user
    found["messages"] = list(records)
    found["last_updated"] = "2025-07-08T15:00:00"
    found["topic"] = None
    if participants is not None:
        found["participants"] = participants
    return found


def messy_tree(root: Path) -> Path:
    """A tree with every layout and every trap; returns the data directory."""
    shared = root / "multi_bot_conversations"
    # Era 2, sage: out of order, naive Berlin times around both DST changes, unknown keys, a
    # record claiming another bot (the file's bot wins), long and exotic content.
    write(
        shared / "sage" / f"{C1}_{U1}.json",
        conversation(
            C1,
            U1,
            record("assistant", "second", "2025-07-08T14:58:19", "sage", response_to_message_id=M1),
            record(
                "user",
                "first",
                "2025-07-08T14:58:16.123456",
                None,
                username="alice",
                channel_name="general",
                message_id=M1,
            ),
            record("assistant", "claims spark", "2025-07-08T14:59:00", "spark"),
            {**record("user", EXOTIC, "2025-10-26T02:30:00"), "mood": "happy"},  # ambiguous hour
            record("user", BIG, "2025-03-30T02:30:00"),  # a time that did not exist
            participants=["sage"],
        ),
    )
    # Era 2, spark: ids as strings, aware timestamps.
    write(
        shared / "spark" / f"{C1}_{U1}.json",
        conversation(
            str(C1),
            str(U1),
            record(
                "user",
                "hi spark",
                "2025-07-08T12:00:00Z",
                None,
                message_id=str(M3),
                username="alice",
            ),
            record("assistant", "hello", "2025-07-08T14:00:05+02:00", "spark"),
        ),
    )
    # Era 1 shared file: a user message stored once per answering bot, an unconfigured bot, an
    # assistant record nobody claims, and invalid records.
    write(
        shared / f"{C2}_{U2}.json",
        conversation(
            C2,
            U2,
            record("user", "question", "2025-07-01T10:00:03", None, message_id=M2, username="bob"),
            record("user", "question", "2025-07-01T10:00:00", None, message_id=M2, username="bob"),
            record("assistant", "sage answer", "2025-07-01T10:00:05", "sage"),
            record("assistant", "spark answer", "2025-07-01T10:00:06", "spark"),
            record("assistant", "nobody's", "2025-07-01T10:00:07", None),
            record("moderator", "x", "2025-07-01T10:00:08"),
            {"role": "user", "timestamp": "2025-07-01T10:00:09"},
            participants=["sage", "spark"],
        ),
    )
    # Era 1 index: a mismatched key, and an entry with no bot at all.
    write(
        shared / "shared_conversations.json",
        {
            f"{C4}_{U1}": conversation(
                C4,
                U2,
                record("user", "index hello", "2025-06-01T08:00:00", None),
                record("assistant", "index answer", "2025-06-01T08:00:02", "sage"),
            ),
            f"{C5}_{U2}": conversation(C5, U2, record("user", "alone", "2025-06-02T08:00:00")),
        },
    )
    # Era 0 list files of sage; one with a name that holds no ids.
    write(
        root / "sage" / f"{C3}_{U1}.json",
        [
            {"role": "user", "content": "old times", "timestamp": "2024-01-01T09:00:00"},
            {"role": "assistant", "content": "indeed", "timestamp": "2024-01-01T09:00:01"},
            {"role": "user", "content": "old times", "timestamp": "2024-01-01T09:00:00"},
        ],
    )
    write(root / "sage" / "notes.json", [{"role": "user", "content": "?", "timestamp": "2024"}])
    # An odd name with ids inside imports with a warning.
    write(
        shared / "sage" / "backup copy.json",
        conversation(C5, U1, record("user", "from an odd file", "2025-05-05T05:05:05")),
    )
    # Unreadable files of every class, and files that are not legacy data at all.
    (shared / "coordinator").mkdir(parents=True)
    write(shared / "sage" / f"{C2}_{U1}.json.tmp", conversation(C2, U1))
    (shared / "sage" / f"{C4}_{U2}.json").write_bytes(b"")
    (shared / "spark" / f"{C2}_{U1}.json").write_bytes(dumps(conversation(C2, U1))[:40])
    (shared / "spark" / f"{C3}_{U2}.json").write_bytes(
        dumps(conversation(C3, U2, record("user", "café", "2025-01-01T00:00:00")))
        .decode()
        .encode("latin-1")
    )
    write(shared / "spark" / f"{C4}_{U1}.json", 42)
    write(shared / "spark" / "lost.json", {"messages": []})
    (shared / "README.txt").write_text("not a conversation")
    return root


# What an import of messy_tree with sage and spark configured (Europe/Berlin) must give.
EXPECTED_UNREADABLE = {
    f"multi_bot_conversations/sage/{C2}_{U1}.json.tmp": "temp_file",
    f"multi_bot_conversations/sage/{C4}_{U2}.json": "empty_file",
    f"multi_bot_conversations/spark/{C2}_{U1}.json": "invalid_json",
    f"multi_bot_conversations/spark/{C3}_{U2}.json": "invalid_utf8",
    f"multi_bot_conversations/spark/{C4}_{U1}.json": "invalid_shape",
    "multi_bot_conversations/spark/lost.json": "bad_filename",
    "sage/notes.json": "bad_filename",
}
EXPECTED_IGNORED = {"multi_bot_conversations/README.txt"}


def long_tree(root: Path, files: int, records: int) -> Path:
    """``files`` era-2 files of sage, ``records`` 200-character user records each (about 300
    bytes of JSON a record: 400 files of 200 records is a tree of 24 MB, read with workers)."""
    for n in range(files):
        write(
            root / "multi_bot_conversations" / "sage" / f"{n + 10}_{U1}.json",
            conversation(
                n + 10,
                U1,
                *(
                    record(
                        "user", f"m{i} " + "x" * 200, f"2025-01-01T00:{i // 60:02d}:{i % 60:02d}"
                    )
                    for i in range(records)
                ),
            ),
        )
    return root
