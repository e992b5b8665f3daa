"""One session's export file under construction: buffered in memory, spilled to a temporary file.

Each file is written to a temporary name beside its target and compared with the file already
there: identical bytes leave the old file (and its modification time) untouched, anything else
replaces it atomically with ``os.replace``. A rerun therefore rewrites only changed sessions.
"""

from __future__ import annotations

import contextlib
import filecmp
import os
import tempfile
from pathlib import Path

from convostore.ops.export.render import ExportedSession

# Rendered text kept in memory per session before it is appended to the session's temporary file.
SPILL_BYTES = 256 * 1024


class SessionFile:
    """One session's file under construction: buffered, spilled to a temporary file."""

    def __init__(self, target: Path, head: str, session: ExportedSession) -> None:
        self.target = target
        self.head = head
        self.session = session
        self.chunks = [head]
        self.size = len(head)
        self.messages = 0
        self.tmp: Path | None = None

    def add(self, text: str) -> None:
        self.chunks.append(text)
        self.size += len(text)
        self.messages += 1
        if self.size >= SPILL_BYTES:
            self._spill()

    def spill(self) -> None:
        """Move the buffered text to the temporary file, freeing the memory."""
        self._spill()

    def _spill(self) -> None:
        if self.tmp is None:
            self.target.parent.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(dir=self.target.parent, prefix=".", suffix=".tmp")
            os.close(fd)
            self.tmp = Path(name)
        with self.tmp.open("a", encoding="utf-8", newline="\n") as out:
            out.write("".join(self.chunks))
        self.chunks, self.size = [], 0

    def finish(self, tail: str) -> bool:
        """Write the file into place if it changed; whether it was (re)written."""
        self.chunks.append(tail)
        if self.tmp is None:
            # The common case, a session that fits in memory: compare without a temporary file.
            data = "".join(self.chunks).encode("utf-8")
            self.chunks = []
            with contextlib.suppress(FileNotFoundError):
                if self.target.stat().st_size == len(data) and self.target.read_bytes() == data:
                    return False
            self._write_new(data)
            return True
        self._spill()
        try:
            if self.target.is_file() and filecmp.cmp(self.tmp, self.target, shallow=False):
                return False
            os.replace(self.tmp, self.target)
            self.tmp = None
            return True
        finally:
            self.discard()

    def _write_new(self, data: bytes) -> None:
        self.target.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=self.target.parent, prefix=".", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(name, self.target)
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise

    def discard(self) -> None:
        if self.tmp is not None:
            self.tmp.unlink(missing_ok=True)
            self.tmp = None
