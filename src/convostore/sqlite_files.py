"""What the file system says about a SQLite database file: can it be written, can it be read.

One place for the diagnosis that ``BotStore.open``, ``doctor``, ``verify``, ``backup`` and the
guarded upgrade share, so a healthy database in a read-only place is called read-only everywhere,
never corrupt or missing. A WAL database cannot even be read where its ``-shm`` cannot be created;
when it has no pending ``-wal`` content it can still be read as an immutable file.
"""

from __future__ import annotations

import os
from pathlib import Path


def unwritable_reason(path: Path) -> str | None:
    """Why SQLite cannot write the database ``path`` (and its side files), or ``None``."""
    directory = path.absolute().parent
    try:
        if os.statvfs(directory).f_flag & os.ST_RDONLY:
            return f"{directory} is on a read-only file system"
    except OSError:
        return None
    if not os.access(directory, os.W_OK | os.X_OK):
        return f"its directory {directory} is not writable"
    if path.exists() and not os.access(path, os.W_OK):
        return f"the file {path} is read-only"
    return None


def read_only_uri(path: Path) -> str:
    """A URI that reads ``path`` without writing anything, even where ``-shm`` cannot be made.

    Plain ``mode=ro`` for a writable place. In a read-only place, ``immutable=1`` when the file
    has no pending ``-wal`` content (the file alone is the whole database).
    """
    uri = f"{path.absolute().as_uri()}?mode=ro"
    if unwritable_reason(path) is None:
        return uri
    wal = Path(str(path) + "-wal")
    if not wal.exists() or wal.stat().st_size == 0:
        return uri + "&immutable=1"
    return uri


def is_wal_file(path: Path) -> bool:
    """Whether the file's header says WAL (bytes 18-19), read without SQLite.

    An immutable connection reports ``journal_mode`` as ``delete`` whatever the file says.
    """
    try:
        with open(path, "rb") as file:
            header = file.read(20)
    except OSError:
        return False
    return len(header) == 20 and header[:16] == b"SQLite format 3\x00" and header[18] == 2
