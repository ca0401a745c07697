"""Import kinds of the members app: ``members``, ``labels`` (put labels on members or
take them off) and ``cards`` (issue cards to members). Registered with the jobs app in
``MembersConfig.ready``; the API, the admin and ``import_members`` all run them.

Cells are read here (dates, choices, lengths); everything about members (normalising
e-mails and phones, uniqueness, events, history, hooks) is done by ``bulk`` and
``services``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from datetime import datetime, time
from typing import Any

from django.db import transaction
from django.utils import dateparse, timezone
from rest_framework import serializers

from jobs.registry import (
    CellError,
    ChunkContext,
    Column,
    ImportKind,
    ImportRow,
    RowError,
    RowResult,
    register_import,
    row_error,
)
from membership_site.api.serializers import StrictSerializer
from membership_site.errors import DomainError
from programs.models import Program

from . import bulk, services
from .models import Card, Member
from .normalize import normalize_card_number, normalize_email, normalize_member_number

MATCH_HELP = "The column that finds existing members: number, email or external_ref."

# Domain error codes as row error codes (the others are kept as they are).
_ROW_CODES = {
    "invalid_email": "bad_format",
    "invalid_phone": "bad_format",
    "invalid_member_number": "bad_format",
    "illegal_status_transition": "bad_format",
    "member_not_found": "unknown_member",
    "label_not_found": "unknown_label",
}
_LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
_COUNTRY = re.compile(r"^[A-Za-z]{2}$")
_SEPARATORS = re.compile(r"[\s\-.]")


def _program(ctx: ChunkContext) -> Program:
    return Program.objects.get(pk=ctx.program_id)


# --- members -------------------------------------------------------------------------------

_PROFILE_COLUMNS = (
    Column("email", "E-mail address (stored lower-case; unique in the program).", example="ana@example.com"),
    Column(
        "phone",
        "Phone, international (+33...) or in the program's region; stored in E.164.",
        example="+33612345678",
    ),
    Column("first_name", "First name.", example="Ana"),
    Column("last_name", "Last name.", example="Lopez"),
    Column("birth_date", "Date of birth, YYYY-MM-DD.", example="1990-04-21"),
    Column("language", "Preferred language (BCP 47, e.g. fr-CA).", example="fr"),
    Column("address_line1", "Address, first line.", example="12 rue de la Paix"),
    Column("address_line2", "Address, second line."),
    Column("city", "City.", example="Paris"),
    Column("postal_code", "Postal code.", example="75002"),
    Column("region", "Region or state."),
    Column("country", "Country, ISO 3166 alpha-2.", example="FR"),
    Column("external_ref", "The member's id in your CRM (unique in the program).", example="crm-981"),
)
MEMBER_COLUMNS = (
    Column(
        "number",
        "Member number, 6 to 20 digits. On creation: empty for a generated one. Never changes.",
        example="1234567897",
    ),
    *_PROFILE_COLUMNS,
    Column("status", "On creation only: active (default) or pending.", example="active"),
    Column(
        "joined_at",
        "On creation only: when the member joined (ISO date or date-time; without a time "
        "zone, the program's). Default: now.",
        example="2020-01-15",
    ),
    Column(
        "labels",
        "Label codes separated by '|'; labels are added (never removed) on update.",
        example="vip|newsletter",
    ),
    Column("card", "On creation only: number of a physical card handed over.", example="9123456789012345"),
)
_MAX_LENGTHS = {
    column.name: Member._meta.get_field(column.name).max_length
    for column in _PROFILE_COLUMNS
    if column.name not in ("birth_date",)
}


class MembersImportParams(StrictSerializer):
    match = serializers.ChoiceField(choices=bulk.MATCH_FIELDS, default="number", help_text=MATCH_HELP)
    action = serializers.ChoiceField(
        choices=bulk.ACTIONS,
        default="upsert",
        help_text="create: rows must be new members; update: rows must match a member; "
        "upsert: update when matched, create otherwise.",
    )


def _members_required(params: dict[str, Any]) -> list[str]:
    return [] if params.get("action") == "create" else [params.get("match", "number")]


def _number_key(value: str) -> str:
    return _SEPARATORS.sub("", value)


def _identity_keys(data: dict[str, str]) -> Iterator[tuple[str, str]]:
    # Cheap versions of the stored forms: enough to see two rows about the same member.
    if data.get("number"):
        yield "number", _number_key(data["number"])
    if data.get("email"):
        yield "email", data["email"].strip().lower()
    if data.get("external_ref"):
        yield "external_ref", data["external_ref"].strip()


def _members_keys(data: dict[str, str], params: dict[str, Any]) -> Iterable[tuple[str, str]]:
    return _identity_keys(data)


def _parse_date(value: str, name: str):
    try:
        parsed = dateparse.parse_date(value)
    except ValueError:
        parsed = None
    if parsed is None:
        raise CellError("bad_format", f"'{value}' is not a date (YYYY-MM-DD).", name)
    return parsed


def _parse_moment(value: str, name: str, program: Program) -> datetime:
    try:
        moment = dateparse.parse_datetime(value)
        if moment is None:
            day = dateparse.parse_date(value)
            moment = datetime.combine(day, time.min) if day else None
    except ValueError:
        moment = None
    if moment is None:
        raise CellError("bad_format", f"'{value}' is not an ISO date or date-time.", name)
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment, program.tz)
    return moment


def parse_member_row(data: dict[str, str], program: Program, params: dict[str, Any]) -> bulk.MemberInput:
    """Read a row's cells; raises ``CellError`` for the first unreadable one."""
    match = params.get("match", "number")
    if params.get("action", "upsert") != "create" and not data.get(match):
        raise CellError("missing_field", f"'{match}' is needed to find the member.", match)
    profile: dict[str, Any] = {}
    for name, limit in _MAX_LENGTHS.items():
        value = data.get(name, "")
        if not value:
            continue
        if limit and len(value) > limit:
            raise CellError("bad_format", f"Longer than {limit} characters.", name)
        profile[name] = value
    if data.get("birth_date"):
        profile["birth_date"] = _parse_date(data["birth_date"], "birth_date")
    if "language" in profile and not _LANGUAGE.match(profile["language"]):
        raise CellError("bad_format", f"'{profile['language']}' is not a language tag.", "language")
    if "country" in profile and not _COUNTRY.match(profile["country"]):
        raise CellError("bad_format", f"'{profile['country']}' is not a two-letter country code.", "country")
    status = (data.get("status") or Member.Status.ACTIVE).lower()
    if status not in (Member.Status.ACTIVE, Member.Status.PENDING):
        raise CellError("bad_format", "status is active or pending.", "status")
    joined_at = _parse_moment(data["joined_at"], "joined_at", program) if data.get("joined_at") else None
    labels = [code.strip() for code in (data.get("labels") or "").split("|") if code.strip()]
    card = data.get("card", "")
    if len(card) > Card._meta.get_field("number").max_length:
        raise CellError("bad_format", "Card numbers are at most 40 characters.", "card")
    return bulk.MemberInput(
        profile=profile,
        number=data.get("number", ""),
        status=status,
        joined_at=joined_at,
        labels=labels,
        card=card,
    )


def process_members(rows: list[ImportRow], ctx: ChunkContext) -> list[RowResult]:
    program = _program(ctx)
    results: dict[int, RowResult] = {}
    inputs: list[tuple[ImportRow, bulk.MemberInput]] = []
    for row in rows:
        try:
            inputs.append((row, parse_member_row(row.data, program, ctx.params)))
        except CellError as error:
            results[row.number] = RowResult.failed(row.number, error.error)
    outcomes = bulk.members_upsert_many(
        program=program,
        rows=[member_input for _row, member_input in inputs],
        match=ctx.params.get("match", "number"),
        action=ctx.params.get("action", "upsert"),
        actor=ctx.actor,
    )
    for (row, _input), outcome in zip(inputs, outcomes, strict=True):
        if outcome.error is not None:
            results[row.number] = RowResult.failed(row.number, row_error(outcome.error, _ROW_CODES))
        else:
            member = outcome.member
            results[row.number] = RowResult(
                row.number, outcome.outcome, object_id=member.pk, object_ref=member.number
            )
    return [results[row.number] for row in rows]


MEMBERS = ImportKind(
    name="members",
    description="Create, update or upsert members, found by number, e-mail or external reference.",
    columns=MEMBER_COLUMNS,
    process=process_members,
    scope="members:write",
    params=MembersImportParams,
    row_keys=_members_keys,
    required_columns=_members_required,
    error_codes=(
        "missing_field",
        "bad_format",
        "duplicate_in_file",
        "duplicate_member",
        "unknown_member",
        "unknown_label",
        "member_terminated",
        "card_number_taken",
        "number_mismatch",
        "invalid_birth_date",
    ),
)


# --- Finding the member of a labels / cards row ----------------------------------------------


class MemberMatchParams(StrictSerializer):
    match = serializers.ChoiceField(choices=bulk.MATCH_FIELDS, default="number", help_text=MATCH_HELP)


_MATCH_COLUMNS = (
    Column("number", "Member number (when match=number, the default).", example="1234567897"),
    Column("email", "Member e-mail (when match=email).", example="ana@example.com"),
    Column("external_ref", "Member's CRM id (when match=external_ref).", example="crm-981"),
)


def _match_key(data: dict[str, str], match: str) -> str:
    """The stored form of the row's member key; raises ``CellError``."""
    value = data.get(match, "")
    if not value:
        raise CellError("missing_field", f"'{match}' is needed to find the member.", match)
    try:
        if match == "number":
            return normalize_member_number(value)
        if match == "email":
            return normalize_email(value)
    except DomainError as error:
        raise CellError("bad_format", error.detail, match) from None
    return value


def _members_by_key(program: Program, match: str, keys: set[str]) -> dict[str, Member]:
    return {
        getattr(member, match): member
        for member in Member.objects.filter(program=program, **{f"{match}__in": keys}).select_related(
            "program"
        )
    }


def _per_row(rows: list[ImportRow], ctx: ChunkContext, read, apply) -> list[RowResult]:
    """Read every row (``read(data) -> (key, values)``), find the members in one query,
    then ``apply(member, values) -> RowResult fields`` each row in its own savepoint."""
    program = _program(ctx)
    match = ctx.params.get("match", "number")
    results: dict[int, RowResult] = {}
    readable: list[tuple[ImportRow, str, Any]] = []
    for row in rows:
        try:
            key = _match_key(row.data, match)
            readable.append((row, key, read(row.data)))
        except CellError as error:
            results[row.number] = RowResult.failed(row.number, error.error)
    members = _members_by_key(program, match, {key for _row, key, _values in readable})
    for row, key, values in readable:
        member = members.get(key)
        if member is None:
            results[row.number] = RowResult.failed(
                row.number,
                RowError("unknown_member", f"No member with this {match.replace('_', ' ')}.", match),
            )
            continue
        try:
            with transaction.atomic():
                outcome, ref = apply(member, values, ctx)
            results[row.number] = RowResult(row.number, outcome, object_id=member.pk, object_ref=ref)
        except DomainError as error:
            results[row.number] = RowResult.failed(
                row.number, row_error(error, _ROW_CODES), object_id=member.pk, object_ref=member.number
            )
    return [results[row.number] for row in rows]


def _match_required(params: dict[str, Any]) -> list[str]:
    return [params.get("match", "number")]


# --- labels ----------------------------------------------------------------------------------


def _read_label(data: dict[str, str]) -> tuple[str, str]:
    code = data.get("label", "")
    if not code:
        raise CellError("missing_field", "The label code is empty.", "label")
    operation = (data.get("operation") or "assign").lower()
    if operation not in ("assign", "remove"):
        raise CellError("bad_format", "operation is assign or remove.", "operation")
    return code, operation


def _apply_label(member: Member, values: tuple[str, str], ctx: ChunkContext) -> tuple[str, str]:
    code, operation = values
    if operation == "assign":
        done = services.label_assign(member=member, label_code=code, actor=ctx.actor)
        return ("created" if done else "unchanged"), code
    done = services.label_remove(member=member, label_code=code, actor=ctx.actor)
    return ("updated" if done else "unchanged"), code


def process_labels(rows: list[ImportRow], ctx: ChunkContext) -> list[RowResult]:
    return _per_row(rows, ctx, _read_label, _apply_label)


def _labels_keys(data: dict[str, str], params: dict[str, Any]) -> Iterable[tuple[str, str]]:
    match = params.get("match", "number")
    value = data.get(match, "").strip()
    if value and data.get("label"):
        value = _number_key(value) if match == "number" else value.lower() if match == "email" else value
        yield "member_label", f"{value}\x00{data['label'].strip()}"


LABELS = ImportKind(
    name="labels",
    description="Put labels on members, or take them off (one row per member and label).",
    columns=(
        *_MATCH_COLUMNS,
        Column("label", "Label code (the label must exist).", required=True, example="vip"),
        Column("operation", "assign (default) or remove.", example="assign"),
    ),
    process=process_labels,
    scope="members:write",
    params=MemberMatchParams,
    row_keys=_labels_keys,
    required_columns=lambda params: [*_match_required(params), "label"],
    error_codes=(
        "missing_field",
        "bad_format",
        "duplicate_in_file",
        "unknown_member",
        "unknown_label",
        "member_terminated",
    ),
)


# --- cards -----------------------------------------------------------------------------------


def _read_card(data: dict[str, str]) -> tuple[str, str]:
    number = normalize_card_number(data.get("card", ""))
    if not number:
        raise CellError("missing_field", "The card number is empty.", "card")
    if len(number) > Card._meta.get_field("number").max_length:
        raise CellError("bad_format", "Card numbers are at most 40 characters.", "card")
    kind = (data.get("kind") or Card.Kind.PHYSICAL).lower()
    if kind not in Card.Kind.values:
        raise CellError("bad_format", f"kind is one of {', '.join(Card.Kind.values)}.", "kind")
    return number, kind


def _apply_card(member: Member, values: tuple[str, str], ctx: ChunkContext) -> tuple[str, str]:
    number, kind = values
    owner = Card.objects.filter(program_id=member.program_id, number=number).values_list(
        "member_id", flat=True
    )
    if member.pk in owner:
        return "unchanged", number
    services.card_issue(member=member, number=number, kind=kind, actor=ctx.actor)
    return "created", number


def process_cards(rows: list[ImportRow], ctx: ChunkContext) -> list[RowResult]:
    return _per_row(rows, ctx, _read_card, _apply_card)


def _cards_keys(data: dict[str, str], params: dict[str, Any]) -> Iterable[tuple[str, str]]:
    if data.get("card"):
        yield "card", normalize_card_number(data["card"])


CARDS = ImportKind(
    name="cards",
    description="Issue cards to members (one row per card); a card the member already has is unchanged.",
    columns=(
        *_MATCH_COLUMNS,
        Column(
            "card", "Card number (spaces and dashes are ignored).", required=True, example="9123456789012345"
        ),
        Column("kind", "physical (default) or digital.", example="physical"),
    ),
    process=process_cards,
    scope="members:write",
    params=MemberMatchParams,
    row_keys=_cards_keys,
    required_columns=lambda params: [*_match_required(params), "card"],
    error_codes=(
        "missing_field",
        "bad_format",
        "duplicate_in_file",
        "unknown_member",
        "member_terminated",
        "card_number_taken",
    ),
)


def register() -> None:
    for kind in (MEMBERS, LABELS, CARDS):
        register_import(kind)
