"""The registry of job kinds.

The jobs app knows nothing about members, points or tiers: each domain app describes the
imports and exports it offers as an ``ImportKind`` or ``ExportKind`` and registers it in
its ``AppConfig.ready``. The engine (``jobs.engine``) reads files, cuts them into chunks,
commits progress and reports; a kind only says what its columns are and how to process a
chunk of rows (import) or which rows to write (export).

An import kind's ``process`` must keep each row atomic: a failing row is reported with
its errors and leaves nothing written (a savepoint per row, or validate-then-write), so
that good rows go on in ``continue`` mode.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from rest_framework import serializers

from membership_site.actors import Actor

Outcome = Literal["created", "updated", "unchanged", "failed", "not_applied"]
# "not_applied": an all-or-nothing import failed, and this valid row was not written.
OUTCOMES: tuple[str, ...] = ("created", "updated", "unchanged", "failed", "not_applied")


@dataclass(frozen=True)
class Column:
    """A column of an import file or an export, documented in the template."""

    name: str
    description: str
    required: bool = False
    example: str = ""


@dataclass(frozen=True)
class RowError:
    """Why a row failed: a stable ``code`` (see ``ROW_ERROR_CODES``), the column it is
    about (when there is one) and a message for people."""

    code: str
    message: str
    field: str | None = None


class CellError(Exception):
    """A cell of an import row that cannot be read: raised while a kind parses a row, and
    reported as that row's error (the other rows go on)."""

    def __init__(self, code: str, message: str, field: str) -> None:
        super().__init__(message)
        self.error = RowError(code, message, field)


def row_error(error: Any, codes: Mapping[str, str] | None = None) -> RowError:
    """A domain error (``membership_site.errors.DomainError``: ``code``, ``detail``,
    ``field``) as a row error; ``codes`` renames domain codes to the kind's row codes."""
    field = getattr(error, "field", None) or error.extra.get("field")
    return RowError((codes or {}).get(error.code, error.code), error.detail, field)


@dataclass
class RowResult:
    row: int
    outcome: Outcome
    errors: list[RowError] = field(default_factory=list)
    object_id: int | None = None
    object_ref: str = ""

    @classmethod
    def failed(cls, row: int, *errors: RowError, object_id: int | None = None, object_ref: str = ""):
        return cls(row=row, outcome="failed", errors=list(errors), object_id=object_id, object_ref=object_ref)


@dataclass(frozen=True)
class ImportRow:
    """One row of an import file: its number (1 is the first data row, after the header)
    and its values by lower-case column name, as strings (empty cells are '')."""

    number: int
    data: dict[str, str]


@dataclass(frozen=True)
class ChunkContext:
    """What a kind's ``process`` knows about the chunk it runs: the job's program, who
    started it, its (validated) parameters, whether it is a dry run, and the job's id
    (None in the admin's preview) for kinds that record where a write came from."""

    program_id: int
    actor: Actor
    params: dict[str, Any]
    dry_run: bool
    job_id: int | None = None


# Codes a row can fail with. Kinds may add their own (documented in docs/jobs.md); these
# are shared so that clients can branch on them across kinds.
ROW_ERROR_CODES: dict[str, str] = {
    "missing_field": "A required value is empty or its column is missing.",
    "bad_format": "A value cannot be read (e-mail, phone, date, number, choice, length...).",
    "unknown_field": "A JSON row has a key that is not a column of this kind.",
    "duplicate_in_file": "An earlier row of the same file has the same key (member, card...).",
    "unknown_member": "No member of the program matches the row's key.",
    "invalid_birth_date": "The birth date is in the future (program time) or before 1900.",
    "duplicate_member": "Another member already has this number, e-mail, phone or reference.",
    "unknown_label": "No label with this code in the program.",
    "member_terminated": "The membership is terminated; nothing can be changed.",
    "card_number_taken": "The card number belongs to another member.",
    "number_mismatch": "The row's member number is not the number of the member it matched "
    "(by e-mail or reference); member numbers never change.",
    "would_go_negative": "The adjustment would take a balance below zero.",
    "unknown_currency": "No points currency with this code in the program.",
    "currency_inactive": "The points currency is switched off.",
    "duplicate_reference": "The reference was already used: the same operation again is "
    "unchanged (already done); another operation with it fails.",
    "unknown_tier": "No tier with this code in the program.",
    "invalid_tier_assignment": "The tier assignment is not valid (locked_until not after today).",
    "invalid_tier": "The tier definition breaks a rule (the field says which).",
    "tier_code_taken": "Another tier of the program has this code.",
    "tier_rank_taken": "Another tier of the program has this rank.",
    "default_tier_required": "The program must keep a default tier.",
    "unknown_eligible_tier": "An eligible tier code does not exist in the program.",
    "unknown_eligible_label": "An eligible label code does not exist in the program.",
    "unknown_location": "A location code does not exist in the program.",
    "invalid_reward": "The reward definition breaks a rule (the field says which).",
    "reward_code_taken": "Another reward of the program has this code.",
}


@dataclass(frozen=True)
class ImportKind:
    """An import: rows in, domain writes out.

    - ``columns``: the template, in order; required ones must be in the header.
    - ``params``: a serializer class for the kind's own parameters (e.g. ``match``).
    - ``required_columns``: given the validated params, the columns the file must have
      (defaults to the columns marked ``required``).
    - ``row_keys``: given a row and the params, the keys identifying what the row acts
      on (e.g. ``("email", "ana@example.com")``); a later row with a key seen earlier in
      the file fails with ``duplicate_in_file``. It must not raise: unreadable values give
      no key (the processor reports them).
    - ``process``: processes one chunk of rows inside the chunk's transaction and returns
      one ``RowResult`` per row, in order.
    - ``scope``: the API scope needed on top of ``jobs:write`` (e.g. ``members:write``).
    """

    name: str
    description: str
    columns: tuple[Column, ...]
    process: Callable[[list[ImportRow], ChunkContext], list[RowResult]]
    scope: str
    params: type[serializers.Serializer] | None = None
    row_keys: Callable[[dict[str, str], dict[str, Any]], Iterable[tuple[str, str]]] | None = None
    required_columns: Callable[[dict[str, Any]], Iterable[str]] | None = None
    error_codes: tuple[str, ...] = ()
    operation: str = "import"

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)

    def required(self, params: dict[str, Any]) -> list[str]:
        if self.required_columns is not None:
            return list(self.required_columns(params))
        return [column.name for column in self.columns if column.required]


@dataclass(frozen=True)
class ExportKind:
    """An export: ``rows(program_id, params)`` yields one dict per row (keys: the
    column names), streamed from the database (``.iterator(chunk_size)``), so writing
    a file never holds all rows in memory. ``count`` gives the total for progress."""

    name: str
    description: str
    columns: tuple[Column, ...]
    rows: Callable[[int, dict[str, Any]], Iterator[dict[str, Any]]]
    count: Callable[[int, dict[str, Any]], int]
    scope: str
    params: type[serializers.Serializer] | None = None
    operation: str = "export"

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)


_imports: dict[str, ImportKind] = {}
_exports: dict[str, ExportKind] = {}


def register_import(kind: ImportKind) -> ImportKind:
    _imports[kind.name] = kind
    return kind


def register_export(kind: ExportKind) -> ExportKind:
    _exports[kind.name] = kind
    return kind


def import_kind(name: str) -> ImportKind | None:
    return _imports.get(name)


def export_kind(name: str) -> ExportKind | None:
    return _exports.get(name)


def get(operation: str, name: str) -> ImportKind | ExportKind | None:
    return import_kind(name) if operation == "import" else export_kind(name)


def import_kinds() -> list[ImportKind]:
    return sorted(_imports.values(), key=lambda kind: kind.name)


def export_kinds() -> list[ExportKind]:
    return sorted(_exports.values(), key=lambda kind: kind.name)


# How the command bases (``jobs.commands``) find the program named by ``--program``: the
# jobs app imports no domain app, so the programs app registers the lookup in its
# ``AppConfig.ready``. It takes a program code, or None for "the only program there is",
# and returns the program, or None when there is no such program (or not exactly one).
ProgramLookup = Callable[[str | None], Any]
_program_lookup: ProgramLookup | None = None


def register_program_lookup(lookup: ProgramLookup) -> ProgramLookup:
    global _program_lookup
    _program_lookup = lookup
    return lookup


def program_lookup(code: str | None) -> Any:
    if _program_lookup is None:
        raise RuntimeError("No program lookup registered with jobs (is the programs app installed?).")
    return _program_lookup(code)
