"""Bot YAML files for tests of commands that read a config directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from sqlalchemy.engine import make_url


def write_bot_yaml(
    directory: Path,
    bot: str,
    *,
    url: str | None = None,
    path: Path | str | None = None,
    backups: Path | str | None = None,
    keep: int | None = None,
    legacy: dict[str, Any] | None = None,
    name: bool = True,
) -> Path:
    """``directory/{bot}.yaml`` for a database given by ``url`` or SQLite ``path``; the file."""
    directory.mkdir(parents=True, exist_ok=True)
    storage: dict[str, Any] = {}
    if url is not None:
        storage = {"type": make_url(url).get_backend_name(), "url": url}
    elif path is not None:
        storage = {"type": "sqlite", "path": str(path)}
    if backups is not None or keep is not None:
        storage["backups"] = {
            **({} if backups is None else {"dir": str(backups)}),
            **({} if keep is None else {"keep": keep}),
        }
    document: dict[str, Any] = {"name": bot} if name else {}
    document["storage"] = storage
    if legacy is not None:
        document["legacy"] = legacy
    file = directory / f"{bot}.yaml"
    file.write_text(yaml.safe_dump(document, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return file
