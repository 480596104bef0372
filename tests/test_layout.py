"""The project's layout rule: scripts are thin command lines over the packages, and no script imports another."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

SCRIPTS = sorted((Path(__file__).resolve().parents[1] / "scripts").glob("*.py"))


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
    return names


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_no_script_imports_another_script(path):
    assert not [m for m in imported_modules(path) if m == "scripts" or m.startswith("scripts.")]


def test_the_rule_is_seen_where_it_is_broken(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from scripts.tables import main\nimport scripts.claims\n")
    assert {"scripts.tables", "scripts.claims"} <= imported_modules(bad)
