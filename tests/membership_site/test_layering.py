"""The direction of imports (DESIGN.md): domain apps import only apps below them, and
the ``webhooks`` and ``jobs`` apps import no domain app. Lazy imports inside functions
count too."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ORDER = ["programs", "integrations", "members", "tiers", "points", "rewards"]


def _imports(app: str):
    for path in sorted((ROOT / app).rglob("*.py")):
        if "migrations" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                yield f"{path.relative_to(ROOT)}:{node.lineno}", name.split(".")[0]


def test_domain_apps_import_only_downward():
    upward = [
        f"{where} imports {top}"
        for app in ORDER
        for where, top in _imports(app)
        if top in ORDER and ORDER.index(top) > ORDER.index(app)
    ]
    assert upward == []


def test_webhooks_imports_no_domain_app():
    assert [f"{where} imports {top}" for where, top in _imports("webhooks") if top in ORDER] == []


def test_jobs_imports_no_domain_app():
    assert [f"{where} imports {top}" for where, top in _imports("jobs") if top in ORDER] == []
