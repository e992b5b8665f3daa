"""Operator jobs (backup, verify, restore ...), one module per job; the CLI wraps them."""

from __future__ import annotations

import errno
from pathlib import Path

from convostore.errors import OperationError


def write_error(
    exc: OSError, where: Path | str, *, job: str, unfinished: str, failed: str
) -> OperationError:
    """One line for a failed write of ``job`` (``backup``, ``export``) into its directory."""
    if exc.errno == errno.ENOSPC:
        return OperationError(f"{where}: no space left on the device; {unfinished}")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return OperationError(f"{where}: {job} directory is not writable ({exc.strerror})")
    return OperationError(f"{where}: {failed}: {exc.strerror or exc}")
