"""Where an export writes: file and folder names from stored values, treated as hostile.

The channel folder is :attr:`ChannelInfo.safe_name`; session ids outside a conservative pattern are
replaced by a cleaned form with a hash; every target path is resolved and checked to lie inside
the export directory.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from pathlib import Path
from typing import Literal

from convostore.channels import ChannelInfo, is_windows_reserved
from convostore.errors import OperationError

# Session ids the store generates look like 2024-01-08_14-30-00_3600s or ...-2: lower case, so two
# ids never differ only in case (the same file on Windows and macOS).
_SAFE_SESSION_ID = re.compile(r"[a-z0-9][a-z0-9._-]{0,149}")


# --- names -----------------------------------------------------------------------------------


def digest(value: str, length: int = 12) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:length]


def stored_channel(channel_id: str, name: str | None, channel_type: str | None) -> ChannelInfo:
    """The :class:`ChannelInfo` of a channel as stored, whatever its columns hold.

    Ids written by the store are decimal; an id that is not (imported or hand-written rows) is
    replaced, for the file name only, by a decimal digest of it, and kept readable in the name.
    """
    kind: Literal["channel", "dm"] = "dm" if channel_type == "dm" else "channel"
    if channel_id.isascii() and channel_id.isdigit() and len(channel_id) <= 64:
        return ChannelInfo(channel_id, name or "", kind)
    substitute = str(int(digest(channel_id, 15), 16))
    return ChannelInfo(substitute, f"{name or ''} {channel_id}", kind)


def safe_session_name(session_id: str) -> str:
    """A file-name stem for ``session_id``: itself when it is plainly safe, else cleaned + hash.

    The hashed form contains ``~``, which a plainly safe id never does, so the two kinds cannot
    collide; the hash keeps different ids apart after cleaning.
    """
    if (
        _SAFE_SESSION_ID.fullmatch(session_id)
        and not session_id.endswith(".")
        and ".." not in session_id
        and not is_windows_reserved(session_id)
    ):
        return session_id
    cleaned = "".join(
        char if char.isascii() and (char.isalnum() or char in "-_") else "-"
        for char in unicodedata.normalize("NFKC", session_id).lower()
    )
    cleaned = re.sub(r"-{2,}", "-", cleaned).strip("-_")[:80] or "session"
    return f"{cleaned}~{digest(session_id)}"


def inside(root: Path, *parts: str) -> Path:
    target = root.joinpath(*parts)
    resolved = target.resolve()
    if not resolved.is_relative_to(root):
        raise OperationError(f"{target}: refusing to write outside the export directory {root}")
    return resolved
