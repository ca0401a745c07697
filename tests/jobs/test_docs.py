"""The kinds' documentation follows the registry: docs/jobs.md's "Available today" table
and the OpenAPI descriptions name every registered import and export kind with the scope
it needs, so a new kind (or a changed scope) cannot go undocumented; the row error codes
the kinds declare or report are named in docs/jobs.md."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from jobs import registry

from .conftest import csv_bytes, outcomes, report

DOCS = Path(__file__).resolve().parents[2] / "docs" / "jobs.md"


def _kinds_table() -> dict[str, dict[str, str]]:
    """The first table of docs/jobs.md: kind -> its import, export and scope cells."""
    rows = {}
    for line in DOCS.read_text().splitlines():
        match = re.match(r"^\| `(\w+)` \|(.*)\|(.*)\|(.*)\|$", line)
        if match:
            kind, import_cell, export_cell, scope_cell = (cell.strip() for cell in match.groups())
            rows.setdefault(kind, {"import": import_cell, "export": export_cell, "scope": scope_cell})
        elif rows:
            break  # the end of the first table
    return rows


def _scopes(cell: str, side: str) -> set[str]:
    """The scopes a cell gives ``side`` (import or export): "import `a`, export `b`" or one
    scope for both."""
    parts = dict(re.findall(r"(import|export) `([\w:]+)`", cell))
    if parts:
        return {parts[side]} if side in parts else set()
    return set(re.findall(r"`([\w:]+)`", cell))


def test_docs_table_lists_every_kind_with_its_scopes():
    table = _kinds_table()
    imports = {kind.name: kind for kind in registry.import_kinds()}
    exports = {kind.name: kind for kind in registry.export_kinds()}

    assert set(table) == set(imports) | set(exports)
    for name, row in table.items():
        assert (row["import"] != "—") == (name in imports), name
        assert (row["export"] != "—") == (name in exports), name
        if name in imports:
            assert _scopes(row["scope"], "import") == {imports[name].scope}, name
        if name in exports:
            assert _scopes(row["scope"], "export") == {exports[name].scope}, name
    assert table["rewards"]["scope"] == "import `config:write`, export `config:read`"


def _scope_of(description: str, kind: str) -> str:
    """The scope a description gives ``kind``: "`a:write` for x, y and z; `b:write` for w"
    (a scope named without "for" is the one of the kinds not named elsewhere)."""
    default = ""
    for scope, names in re.findall(r"`(\w+:\w+)`(?: for ([\w ,]+))?", description):
        if not names:
            default = default or scope
        elif kind in re.split(r",\s*|\s+and\s+", names.strip()):
            return scope
    return default


@pytest.mark.django_db
def test_openapi_names_every_kind_and_its_scope(client):
    spec = client.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    start_import = spec["paths"]["/api/v1/imports/{kind}"]["post"]
    start_export = spec["paths"]["/api/v1/exports/{kind}"]["post"]
    kind_help = next(p for p in start_import["parameters"] if p["name"] == "kind")["description"]
    imports_named, exports_named = kind_help.split("Exports:")

    for kind in registry.import_kinds():
        assert re.search(rf"\b{kind.name}\b", imports_named), kind.name
        assert _scope_of(start_import["description"], kind.name) == kind.scope, kind.name
    for kind in registry.export_kinds():
        assert re.search(rf"\b{kind.name}\b", exports_named), kind.name
        assert _scope_of(start_export["description"], kind.name) == kind.scope, kind.name


def _error_code_table() -> set[str]:
    """The codes in the first cells of docs/jobs.md's "Error code" table."""
    codes: set[str] = set()
    in_table = False
    for line in DOCS.read_text().splitlines():
        if line.startswith("| Error code |"):
            in_table = True
        elif in_table and line.startswith("|"):
            codes.update(re.findall(r"`(\w+)`", line.split("|")[1]))
        elif in_table:
            break
    return codes


@pytest.mark.django_db
def test_docs_error_table_lists_the_codes_a_member_import_reports(import_and_run):
    job = import_and_run(
        "members",
        csv_bytes(
            [
                {"email": "future@example.com", "birth_date": "2999-01-01"},
                {"email": "old@example.com", "birth_date": "1899-12-31"},
                {"email": "ok@example.com", "birth_date": "1900-01-01"},
            ]
        ),
        match="email",
    )
    assert [outcome for _row, outcome, _codes in outcomes(job)] == ["failed", "failed", "created"]
    reported = {code for line in report(job) for code in line["error_codes"].split("|") if code}
    assert reported == {"invalid_birth_date"}
    assert reported - _error_code_table() == set()
    # ... and the kind declares it, so /api/v1/imports/members/describe lists it too.
    assert reported <= set(registry.import_kind("members").error_codes)


def test_docs_name_every_code_each_import_kind_declares():
    text = DOCS.read_text()
    undocumented = [
        f"{kind.name}: {code}"
        for kind in registry.import_kinds()
        for code in kind.error_codes
        if f"`{code}`" not in text
    ]
    assert undocumented == []


def test_every_code_an_import_kind_declares_has_a_description():
    # /api/v1/imports/{kind}/describe shows these next to each code.
    missing = [
        f"{kind.name}: {code}"
        for kind in registry.import_kinds()
        for code in kind.error_codes
        if not registry.ROW_ERROR_CODES.get(code)
    ]
    assert missing == []
