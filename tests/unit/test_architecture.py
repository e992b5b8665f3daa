"""The dependency rule of docs/architecture.md, checked on the source (every import, lazy too).

- library code never imports ``convostore.cli`` (the CLI wraps the library, not the reverse);
- the core (``repositories/``, ``models``, ``records``, ``sessions``) never imports ``store``,
  ``ops``, ``legacy`` or ``cli``;
- Alembic revisions never import ``convostore.models``: they describe the tables they change with
  ``sa.table``/``sa.column`` and stay valid whatever the models become.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "convostore"
REVISIONS = sorted(
    {*(ROOT / "alembic" / "versions").glob("*.py"), *PACKAGE.glob("**/versions/*.py")}
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path) -> Iterator[tuple[int, str]]:
    """Every module ``path`` imports, absolute, with its line (relative imports resolved)."""
    package = module_name(path).split(".") if path.is_relative_to(PACKAGE) else []
    if package and path.name != "__init__.py":
        package.pop()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package[: len(package) - node.level + 1], base]).strip(".")
            yield node.lineno, base
            for alias in node.names:  # ``from convostore import cli`` imports a module too
                yield node.lineno, f"{base}.{alias.name}"


def within(name: str, module: str) -> bool:
    return name == module or name.startswith(module + ".")


def violations(paths: list[Path], forbidden: tuple[str, ...]) -> list[str]:
    return [
        f"{path.name}:{line} imports {name}"
        for path in paths
        for line, name in imports(path)
        if any(within(name, f) for f in forbidden)
    ]


LIBRARY = [
    p
    for p in PACKAGE.rglob("*.py")
    if not within(module_name(p), "convostore.cli") and module_name(p) != "convostore.__main__"
]
CORE = [
    p
    for p in PACKAGE.rglob("*.py")
    if any(
        within(module_name(p), m)
        for m in (
            "convostore.repositories",
            "convostore.models",
            "convostore.records",
            "convostore.sessions",
        )
    )
]


def test_the_rule_sees_the_files_it_is_about() -> None:
    assert len(LIBRARY) > 30 and len(CORE) >= 5 and REVISIONS
    assert any(module_name(p) == "convostore.repositories.rows" for p in CORE)


def test_library_code_never_imports_the_cli() -> None:
    assert violations(LIBRARY, ("convostore.cli",)) == []


def test_the_core_never_imports_the_layers_above_it() -> None:
    above = ("convostore.store", "convostore.ops", "convostore.legacy", "convostore.cli")
    assert violations(CORE, above) == []


@pytest.mark.parametrize("revision", REVISIONS, ids=lambda p: p.name)
def test_revisions_never_import_the_models(revision: Path) -> None:
    found = [
        f"{revision.name}:{line} imports {name}"
        for line, name in imports(revision)
        if within(name, "convostore.models")
    ]
    assert found == []


def test_the_check_catches_a_violation(tmp_path: Path) -> None:
    bad = PACKAGE / "repositories" / "rows.py"
    text = bad.read_text(encoding="utf-8")
    assert violations([bad], ("convostore.store",)) == []
    probe = tmp_path / "probe.py"
    probe.write_text(text + "\n\ndef late():\n    from convostore.store import BotStore\n")
    assert violations([probe], ("convostore.store",)) != []
