"""Export of a bot's conversations to a tree of files a person can browse.

``DIR/{bot}/channels/{safe_name}/{session_id}.json`` and ``DIR/{bot}/dms/{safe_name}/...``, as JSON
(one document per session) or as Markdown transcripts. Everything that becomes part of a path
comes from the database and is treated as hostile: the channel folder is
:attr:`ChannelInfo.safe_name`, session ids outside a conservative pattern are replaced by a cleaned
form with a hash, and every target path is resolved and checked to lie inside ``DIR``.

The export streams: it reads one channel at a time, its messages in one ordered index range scan
(``idx_conversations_bot_channel_time``) fetched in batches, and memory holds at most a few
hundred rendered messages per session. Reading a whole channel once is cheaper than one query per
session, which would scan the channel's index range again for each of its sessions. Each channel is
read in its own short read transaction, so a long export never pins one SQLite snapshot (which
would keep the WAL from being checkpointed) nor blocks a writer.

Each file is written to a temporary name beside its target and compared with the file already
there: identical bytes leave the old file (and its modification time) untouched, anything else
replaces it atomically with ``os.replace``. A rerun therefore rewrites only changed sessions.
"""

from __future__ import annotations

from convostore.ops.export.job import (
    FETCH_BATCH,
    ExportProgress,
    ExportResult,
    export_bot,
    parse_since,
)
from convostore.ops.export.paths import safe_session_name, stored_channel
from convostore.ops.export.render import (
    EXTENSIONS,
    FORMATS,
    ExportedSession,
    ExportFormat,
    author,
    visible,
)

__all__ = [
    "EXTENSIONS",
    "FETCH_BATCH",
    "FORMATS",
    "ExportFormat",
    "ExportProgress",
    "ExportResult",
    "ExportedSession",
    "author",
    "export_bot",
    "parse_since",
    "safe_session_name",
    "stored_channel",
    "visible",
]
