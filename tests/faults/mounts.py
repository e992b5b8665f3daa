"""Real read-only mounts and small file systems for the tests (they run as root on our machines).

Root ignores file modes, so a read-only place is a read-only bind mount, and a full disk is a
small tmpfs. Anything that cannot be set up raises: a test that needs it fails loudly rather than
skipping silently.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path


def _run(*args: str) -> None:
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {done.stderr.strip()} (needs root)")


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[Path]:
    """``path`` (a file or a directory) bind-mounted read-only over itself."""
    _run("mount", "--bind", str(path), str(path))
    try:
        _run("mount", "-o", "remount,ro,bind", str(path))
        yield path
    finally:
        _run("umount", str(path))


@contextlib.contextmanager
def tmpfs(path: Path, size_kb: int) -> Iterator[Path]:
    """A tmpfs of ``size_kb`` KiB mounted at ``path`` (created), unmounted afterwards."""
    path.mkdir(parents=True, exist_ok=True)
    _run("mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(path))
    try:
        yield path
    finally:
        _run("umount", "-l", str(path))


def fill(directory: Path, leave_bytes: int = 0) -> None:
    """Fill the file system of ``directory`` up to ``leave_bytes`` free."""
    import shutil

    free = shutil.disk_usage(directory).free - leave_bytes
    filler = directory / "filler"
    with open(filler, "wb") as file:
        while free > 0:
            chunk = min(free, 1 << 20)
            try:
                file.write(b"\0" * chunk)
                file.flush()
            except OSError:
                break
            free -= chunk
