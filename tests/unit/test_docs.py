"""The README's example is real code, and the docs name only what exists."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_readme_example_compiles_and_uses_the_public_api() -> None:
    import convostore

    examples = _python_blocks((ROOT / "README.md").read_text(encoding="utf-8"))
    # the quickstart's bot code (run for real by .ci/quickstart) and the discord.py bot
    assert len(examples) == 2
    for example in examples:
        tree = ast.parse(example)
        imported = {
            alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module == "convostore"
            for alias in node.names
        }
        assert imported and imported <= set(convostore.__all__)
        assert len(example.splitlines()) <= 30
    [discord_bot] = [e for e in examples if "import discord" in e]
    methods = {n.attr for n in ast.walk(ast.parse(discord_bot)) if isinstance(n, ast.Attribute)}
    assert {"add_discord_message", "history", "from_message", "open"} <= methods


def test_readme_shows_the_setup_and_test_commands() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert 'pip install -e ".[dev]" && alembic upgrade head' in readme
    assert "python -m pytest" in readme
    for link in re.findall(r"\]\((docs/[^)]+|CHANGELOG\.md)\)", readme):
        assert (ROOT / link).exists(), link
