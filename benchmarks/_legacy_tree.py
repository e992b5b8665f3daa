"""A realistic legacy JSON tree for the import benchmark, written as the legacy bots wrote it.

The tree mixes the three layouts a real installation holds: mostly era 2 per-bot files
(``multi_bot_conversations/<bot>/<channel>_<user>.json``), some era 1 shared files whose user
messages are stored once per answering bot with the same ``metadata.message_id``, one
``shared_conversations.json``, some era 0 list files (``<bot>/<channel>_<user>.json``), an empty
``coordinator/`` directory and a few unreadable files (``.tmp``, empty, truncated, latin-1) plus one
file to ignore. Files are written as the bots wrote them: ``indent=2``, ``ensure_ascii=False``, no
trailing newline, Discord ids above 2^53 as JSON integers (a few as strings, as hand edits left
them), naive timestamps without the fraction when the microsecond is 0, a few aware ones, a few
records out of order, optional keys missing and unknown keys present.

Everything is derived from one seed and each file's index, so the tree is the same byte for byte
on every run whatever the number of worker processes. ``messages`` counts the records of readable
files; the messy files come on top. The manifest returned (and written beside the tree) gives the
number of records per layout and the number of rows a correct import makes.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

BOTS = ("sage", "spark", "logic")
SEED = 20261130
DISCORD_EPOCH_MS = 1_420_070_400_000
# Share of the messages per layout; era 2 takes the rest.
ERA1_SHARE = 0.08
ERA0_SHARE = 0.06
SHARED_FILE_SHARE = 0.005
SHARED_FILE_MAX = 5_000  # one file of a fixed size at every scale, so memory compares across scales
MAX_PER_FILE = 4_000

# Words of many scripts: accents composed and decomposed, emoji with ZWJ and skin tones, flags,
# right-to-left text, zero-width and bidi controls, CJK, astral letters, markdown and code.
_WORD_TEXT = (
    "the a to and of is it you that in for on with this bot server message python error please "
    "thanks could would what how why channel role deploy config token yes no maybe lol "
    "café naïve résumé cafe\u0301 nai\u0308ve Zoë Ångström straße привет спасибо "
    "γειά \u03c3\u03bf\u03c5 مرحبا بالعالم שלום עולם नमस्ते "
    "你好 世界 こんにちは ありがとう 안녕하세요 "
    "🙂 👍 🎉 🔥 😂 👨\u200d👩\u200d👧 🏳\ufe0f\u200d🌈 🇫🇷 🇯🇵 👍🏽 a\u200bb zero\u200cwidth "
    '\u200f \u2066x\u2069 `code` **bold** <@123> https://x.y/z back\\slash "quoted" '
    "\U0001d518\U0001d52b\U0001d526 \u210c Ⅻ ∑ √2 € © \u00a0 - item"
)
_WORDS = [*_WORD_TEXT.split(" "), "\n", "\n\n", "\t", "```py\nprint('hi')\n```"]


@dataclass
class FileSpec:
    index: int
    kind: str  # era2 | era1 | era0 | shared | messy
    path: str
    messages: int
    bot: str = ""
    variant: str = ""


@dataclass
class Manifest:
    """What was written: file and record counts, and the rows a correct import makes."""

    messages: int
    files: int
    seed: int
    bytes: int = 0
    records: dict[str, int] = field(default_factory=dict)
    files_by_kind: dict[str, int] = field(default_factory=dict)
    expected_rows: int = 0
    largest_file_bytes: int = 0
    largest_content_chars: int = 0


def _corpus() -> str:
    rng = random.Random(SEED)
    words = rng.choices(_WORDS, k=600_000)
    return " ".join(words)


_CORPUS = ""


def _text(rng: random.Random, length: int) -> str:
    start = rng.randrange(0, len(_CORPUS) - length - 1)
    text = _CORPUS[start : start + length]
    return text if text.strip() else "ok " + text


def _length(rng: random.Random, role: str) -> int:
    draw = rng.random()
    if draw < 0.015:
        return rng.randint(2_000, 8_000)  # a pasted log or a long answer: multi-KB
    if role == "assistant":
        return 40 + int(360 * rng.random() ** 1.5)
    return 20 + int(280 * rng.random() ** 2)


def _iso(at: datetime) -> str:
    # Python's isoformat drops the fraction when the microsecond is 0, as the bots' files show.
    return at.isoformat()


def _snowflake(at: datetime, salt: int) -> int:
    ms = int(at.replace(tzinfo=UTC).timestamp() * 1000) - DISCORD_EPOCH_MS
    return (ms << 22) | (salt & 0x3FFFFF)


def _ids(rng: random.Random, index: int) -> tuple[int, int]:
    channel = 1_100_000_000_000_000_000 + rng.randrange(400) * 7_919_000_000_007
    user = 300_000_000_000_000_000 + index * 1_000_003 + rng.randrange(1_000)
    return channel, user


def _start(rng: random.Random, era: int) -> datetime:
    first = {0: datetime(2022, 1, 1), 1: datetime(2023, 6, 1), 2: datetime(2024, 3, 1)}[era]
    at = first + timedelta(seconds=rng.randrange(360 * 86_400))
    return at.replace(microsecond=0 if rng.random() < 0.1 else rng.randrange(1_000_000))


def _advance(rng: random.Random, at: datetime, reply: bool) -> datetime:
    if reply:
        seconds = rng.uniform(0.8, 25.0)
    elif rng.random() < 0.08:
        seconds = rng.uniform(1_800, 4 * 86_400)  # a new session
    else:
        seconds = rng.uniform(5, 280)
    at = at + timedelta(seconds=seconds)
    return at.replace(microsecond=0) if rng.random() < 0.05 else at


def _stamp(rng: random.Random, at: datetime) -> str:
    draw = rng.random()
    if draw < 0.001:
        return at.replace(tzinfo=UTC).isoformat().replace("+00:00", "Z")
    if draw < 0.002:
        return (at.replace(tzinfo=UTC) + timedelta(hours=2)).isoformat().replace("+00:00", "+02:00")
    return _iso(at)


def _maybe_str(rng: random.Random, value: int, hand_edited: bool) -> int | str:
    return str(value) if hand_edited and rng.random() < 0.5 else value


def _user_record(
    rng: random.Random, at: datetime, content: str, message_id: int | str, names: tuple[str, str]
) -> dict[str, Any]:
    return {
        "role": "user",
        "content": content,
        "timestamp": _stamp(rng, at),
        "bot_name": None,
        "metadata": {"username": names[0], "channel_name": names[1], "message_id": message_id},
    }


def _assistant_record(
    rng: random.Random, at: datetime, content: str, bot: str, answer_to: int
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "role": "assistant",
        "content": content,
        "timestamp": _stamp(rng, at),
        "bot_name": bot,
        "metadata": {"response_to_message_id": answer_to},
    }
    if rng.random() < 0.01:
        record["model"] = "legacy-1"  # an unknown key some versions wrote
    return record


def _names(rng: random.Random, user: int, channel: int) -> tuple[str, str]:
    usernames = ("alice", "bob", "Zoë", "李雷", "محمد", "dev_ops", "x" * 32, "🦊fox")
    channels = ("general", "help", "bots", "off-topic", "日本語", "dev", "support-2")
    return (
        f"{usernames[user % len(usernames)]}{user % 97}",
        channels[channel % len(channels)],
    )


def _per_bot_conversation(
    rng: random.Random, spec: FileSpec, ids: tuple[int, int], hand_edited: bool
) -> dict[str, Any]:
    channel, user = ids
    names = _names(rng, user, channel)
    at = _start(rng, 2)
    messages: list[dict[str, Any]] = []
    last_user = 0
    for i in range(spec.messages):
        if i % 2 == 0:
            at = _advance(rng, at, reply=False)
            last_user = _snowflake(at, spec.index)
            content = _text(rng, _length(rng, "user"))
            message_id = _maybe_str(rng, last_user, hand_edited)
            messages.append(_user_record(rng, at, content, message_id, names))
        else:
            at = _advance(rng, at, reply=True)
            content = _text(rng, _length(rng, "assistant"))
            messages.append(_assistant_record(rng, at, content, spec.bot, last_user))
    if len(messages) > 4 and rng.random() < 0.01:
        k = rng.randrange(len(messages) - 1)
        messages[k], messages[k + 1] = messages[k + 1], messages[k]  # saved out of order
    conversation: dict[str, Any] = {
        "channel_id": _maybe_str(rng, channel, hand_edited),
        "user_id": _maybe_str(rng, user, hand_edited),
        "messages": messages,
        "last_updated": _iso(at),
        "topic": None,
        "participants": [spec.bot],
    }
    if rng.random() < 0.05:
        del conversation["topic"]
    if rng.random() < 0.05:
        del conversation["participants"]
    if rng.random() < 0.02:
        conversation["schema"] = 2  # an unknown key
    return conversation


def _shared_conversation(
    rng: random.Random, index: int, ids: tuple[int, int], messages: int
) -> tuple[dict[str, Any], int]:
    """An era 1 conversation; returns it and the rows a correct import makes from it."""
    channel, user = ids
    names = _names(rng, user, channel)
    participants = rng.sample(BOTS, rng.choice((2, 2, 3)))
    at = _start(rng, 1)
    records: list[dict[str, Any]] = []
    answering_bots: set[str] = set()
    turns: list[int] = []
    while len(records) < messages:
        at = _advance(rng, at, reply=False)
        message_id = _snowflake(at, index)
        content = _text(rng, _length(rng, "user"))
        k = min(
            rng.choice((1, 1, 2, 2, 3)), len(participants), max(1, (messages - len(records)) // 2)
        )
        answering = participants[:k] if rng.random() < 0.5 else participants[-k:]
        stored = at
        for bot in answering:
            # Each answering bot saved its own copy of the user message, a little later each time.
            stored = stored + timedelta(milliseconds=rng.randrange(50, 900))
            records.append(_user_record(rng, stored, content, message_id, names))
            reply_at = _advance(rng, stored, reply=True)
            reply = _text(rng, _length(rng, "assistant"))
            records.append(_assistant_record(rng, reply_at, reply, bot, message_id))
            answering_bots.add(bot)
        turns.append(len(answering))
        at = stored
    conversation: dict[str, Any] = {
        "channel_id": channel,
        "user_id": user,
        "messages": records,
        "last_updated": _iso(at),
        "topic": None,
        "participants": participants,
    }
    if rng.random() < 0.1:
        del conversation["participants"]  # routing falls back to the assistant records' bot_name
        targets = answering_bots
    else:
        targets = set(participants) | answering_bots
    # A user message goes to every target bot (one row per bot after dedupe); a reply to its bot.
    rows = sum(len(targets) + k for k in turns)
    return conversation, rows


def _era0_conversation(rng: random.Random, spec: FileSpec) -> list[dict[str, Any]]:
    at = _start(rng, 0)
    records = []
    for i in range(spec.messages):
        role = "user" if i % 2 == 0 else "assistant"
        at = _advance(rng, at, reply=role == "assistant")
        records.append(
            {"role": role, "content": _text(rng, _length(rng, role)), "timestamp": _iso(at)}
        )
    return records


def _dump(value: Any) -> bytes:
    return json.dumps(value, indent=2, ensure_ascii=False).encode("utf-8")


def _largest(value: Any) -> int:
    if isinstance(value, list):
        return max((len(m.get("content", "")) for m in value), default=0)
    if "messages" in value:
        return max((len(m["content"]) for m in value["messages"]), default=0)
    return max((_largest(v) for v in value.values()), default=0)


def _write(root: Path, spec: FileSpec) -> tuple[str, int, int, int]:
    """Write one file: (kind, bytes written, rows a correct import makes, longest content)."""
    global _CORPUS
    if not _CORPUS:
        _CORPUS = _corpus()
    rng = random.Random(SEED * 1_000_003 + spec.index)
    ids = _ids(rng, spec.index)  # the first draw, so the file name and the inner ids agree
    path = root / spec.path
    path.parent.mkdir(parents=True, exist_ok=True)
    value: Any
    rows = spec.messages
    if spec.kind == "era2":
        value = _per_bot_conversation(rng, spec, ids, hand_edited=rng.random() < 0.01)
    elif spec.kind == "era0":
        value = _era0_conversation(rng, spec)
    elif spec.kind == "era1":
        value, rows = _shared_conversation(rng, spec.index, ids, spec.messages)
    elif spec.kind == "shared":
        value, rows = _shared_file(rng, spec)
    else:
        data = _messy(rng, spec, ids)
        path.write_bytes(data)
        return spec.kind, len(data), 0, 0
    if spec.variant == "huge":
        _plant_huge(rng, value)
    data = _dump(value)
    path.write_bytes(data)
    return spec.kind, len(data), rows, _largest(value)


def _plant_huge(rng: random.Random, value: Any) -> None:
    records = value if isinstance(value, list) else value["messages"]
    target = [r for r in records if r["role"] == "assistant"] or records
    rng.choice(target)["content"] = _text(rng, rng.randint(100_000, 120_000))


def _shared_file(rng: random.Random, spec: FileSpec) -> tuple[dict[str, Any], int]:
    value: dict[str, Any] = {}
    rows = 0
    left = spec.messages
    n = 0
    while left > 0:
        size = min(left, 2 * rng.randint(10, 100))
        index = 900_000 + spec.index * 100 + n
        conversation, made = _shared_conversation(rng, index, _ids(rng, index), size)
        left -= len(conversation["messages"])
        rows += made
        key = f"{conversation['channel_id']}_{conversation['user_id']}"
        value[key] = conversation
        n += 1
    return value, rows


def _messy(rng: random.Random, spec: FileSpec, ids: tuple[int, int]) -> bytes:
    sample = FileSpec(spec.index, "era2", spec.path, 12, "sage")
    whole = _dump(_per_bot_conversation(rng, sample, ids, hand_edited=False))
    if spec.variant in ("tmp_complete", "ignored"):
        return whole if spec.variant == "tmp_complete" else b"notes kept by an operator\n"
    if spec.variant in ("tmp_truncated", "truncated"):
        return whole[: len(whole) // 2]
    if spec.variant == "empty":
        return b""
    # latin-1: an old editor re-saved the file in the Windows code page.
    records = [
        {"role": "user", "content": "café déjà vu, ¿qué tal?", "timestamp": "2022-05-01T10:00:00"},
        {"role": "assistant", "content": "Très bien, merci !", "timestamp": "2022-05-01T10:00:04"},
    ]
    return json.dumps(records, indent=2, ensure_ascii=False).encode("cp1252")


def plan(messages: int, files: int) -> list[FileSpec]:
    """Every file of the tree: its layout, path and number of records."""
    rng = random.Random(SEED)
    shared = 2 * (min(SHARED_FILE_MAX, max(200, int(messages * SHARED_FILE_SHARE))) // 2)
    era1 = int(messages * ERA1_SHARE)
    era0 = int(messages * ERA0_SHARE)
    era2 = messages - shared - era1 - era0
    n_era1 = max(1, int(files * ERA1_SHARE))
    n_era0 = max(1, int(files * ERA0_SHARE))
    n_era2 = max(1, files - n_era1 - n_era0)
    specs: list[FileSpec] = []

    def split(total: int, parts: int, even: bool) -> list[int]:
        # Skewed as real conversations are: many short, a few very long ones.
        weights = [rng.lognormvariate(0, 1.0) for _ in range(parts)]
        scale = total / sum(weights)
        sizes = [max(2, min(MAX_PER_FILE, int(w * scale))) for w in weights]
        if even:
            sizes = [s - s % 2 for s in sizes]
        diff = total - sum(sizes)
        i = 0
        while diff != 0:
            step = (2 if even and abs(diff) >= 2 else 1) * (1 if diff > 0 else -1)
            j = i % parts
            if 2 <= sizes[j] + step <= MAX_PER_FILE:
                sizes[j] += step
                diff -= step
            i += 1
        return sizes

    index = 0
    for n in split(era2, n_era2, even=False):
        bot = BOTS[index % 3]
        specs.append(FileSpec(index, "era2", "", n, bot))
        index += 1
    for n in split(era1, n_era1, even=True):
        specs.append(FileSpec(index, "era1", "", n))
        index += 1
    for n in split(era0, n_era0, even=False):
        specs.append(FileSpec(index, "era0", "", n, BOTS[index % 3]))
        index += 1
    specs.append(
        FileSpec(index, "shared", "multi_bot_conversations/shared_conversations.json", shared)
    )
    index += 1
    huge = max(3, messages // 250_000)
    for spec in rng.sample(
        [s for s in specs if s.kind in ("era2", "era0") and s.messages >= 2], huge
    ):
        spec.variant = "huge"
    for variant in (
        ("tmp_complete",) * 3
        + ("tmp_truncated",) * 3
        + ("empty",) * 2
        + ("truncated",) * 3
        + ("latin1",) * 2
        + ("ignored",)
    ):
        specs.append(FileSpec(index, "messy", "", 0, "sage", variant))
        index += 1
    for spec in specs:
        spec.path = spec.path or _path_of(spec)
    return specs


def _path_of(spec: FileSpec) -> str:
    channel, user = _ids(random.Random(SEED * 1_000_003 + spec.index), spec.index)
    key = f"{channel}_{user}"
    if spec.kind == "era2":
        return f"multi_bot_conversations/{spec.bot}/{key}.json"
    if spec.kind == "era1":
        return f"multi_bot_conversations/{key}.json"
    if spec.kind == "era0":
        return f"{spec.bot}/{key}.json"
    bot = BOTS[spec.index % 3]
    return {
        "tmp_complete": f"multi_bot_conversations/{bot}/{key}.tmp",
        "tmp_truncated": f"multi_bot_conversations/{bot}/{key}.tmp",
        "empty": f"multi_bot_conversations/{bot}/{key}.json",
        "truncated": f"multi_bot_conversations/{bot}/{key}.json",
        "latin1": f"{bot}/{key}.json",
        "ignored": "multi_bot_conversations/NOTES.txt",
    }[spec.variant]


def _chunks(specs: list[FileSpec], size: int) -> Iterator[list[FileSpec]]:
    for start in range(0, len(specs), size):
        yield specs[start : start + size]


def _write_many(root: str, specs: list[FileSpec]) -> list[tuple[str, int, int, int]]:
    return [_write(Path(root), spec) for spec in specs]


def generate(root: Path, messages: int, files: int, workers: int | None = None) -> Manifest:
    """Write the tree under ``root`` (which must not exist yet) and its manifest beside it."""
    specs = plan(messages, files)
    root.mkdir(parents=True)
    (root / "multi_bot_conversations" / "coordinator").mkdir(parents=True)
    manifest = Manifest(messages=messages, files=len(specs), seed=SEED)
    with ProcessPoolExecutor(workers or os.cpu_count() or 1) as pool:
        for results in pool.map(_write_many, [str(root)] * len(specs), _chunks(specs, 200)):
            for kind, size, rows, longest in results:
                manifest.bytes += size
                manifest.files_by_kind[kind] = manifest.files_by_kind.get(kind, 0) + 1
                manifest.expected_rows += rows
                manifest.largest_file_bytes = max(manifest.largest_file_bytes, size)
                manifest.largest_content_chars = max(manifest.largest_content_chars, longest)
    for spec in specs:
        if spec.kind != "messy":
            manifest.records[spec.kind] = manifest.records.get(spec.kind, 0) + spec.messages
    (root.parent / f"{root.name}.manifest.json").write_text(json.dumps(asdict(manifest), indent=2))
    return manifest


def load_manifest(root: Path) -> Manifest:
    return Manifest(**json.loads((root.parent / f"{root.name}.manifest.json").read_text()))
