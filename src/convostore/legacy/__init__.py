"""Import of the legacy JSON conversation tree (see docs/migration.md).

- :mod:`convostore.legacy.reader`: files -> typed records and the problems found;
- :mod:`convostore.legacy.rules`: routing and conversion of records, shared by the importer and
  the read fallback;
- :mod:`convostore.legacy.importer`: the import's two phases, over
  :mod:`~convostore.legacy.stage` (the staging file), :mod:`~convostore.legacy.writer` (rows and
  sessions into the database) and :mod:`~convostore.legacy.report` (what happened);
- :mod:`convostore.legacy.run`: the import of ``migrate-legacy`` and of the Alembic data revision;
- :mod:`convostore.legacy.transition`: files not imported yet, and read-only serving of them;
- :mod:`convostore.legacy.names`: placeholder names replaced from Discord's REST API.

Nothing here is imported by ``import convostore``: the store loads the transition on first use.
"""

from __future__ import annotations

from convostore.legacy.transition import legacy_files, unimported_files

__all__ = ["legacy_files", "unimported_files"]
