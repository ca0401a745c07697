"""Job kinds of the tiers app (jobs app), run from the API, the admin and commands:

- import ``tier_assignments``: put members on a tier by hand, in bulk, through
  ``services.member_tier_assign`` (reason required; optional lock and lifetime floor);
- import and export ``tiers``: tier definitions, created or updated by code through
  ``services.tier_create`` / ``tier_update``, cells read by the API's own serializer (so a
  file gets the API's validation). An export can be edited and imported back.

Each row runs in its own savepoint: a bad row changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import dateparse

from jobs.registry import (
    CellError,
    ChunkContext,
    Column,
    ExportKind,
    ImportKind,
    ImportRow,
    RowError,
    RowResult,
    register_export,
    register_import,
    row_error,
)
from members.bulk import member_key, members_by_key
from members.imports import MemberMatchParams
from members.models import Member
from membership_site.errors import DomainError
from programs.currencies import money_quantum
from programs.models import Program

from . import services
from .models import MemberTier, Tier, TierChange
from .serializers import TierCreateSerializer

_TRUE = ("true", "1", "yes")
_FALSE = ("false", "0", "no")
_MAX_NOTE = TierChange._meta.get_field("note").max_length


def _boolean(value: str, field: str) -> bool:
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise CellError("bad_format", "Use true or false.", field)


# --- tier_assignments ---------------------------------------------------------------------------

ASSIGNMENT_COLUMNS = (
    Column("number", "Member number (when match=number, the default).", example="1234567897"),
    Column("email", "Member e-mail (when match=email).", example="ana@example.com"),
    Column("external_ref", "Member's CRM id (when match=external_ref).", example="crm-981"),
    Column("tier", "Tier code.", required=True, example="gold"),
    Column("reason", "Why (kept in the tier history).", required=True, example="Status match"),
    Column(
        "locked_until",
        "Optional: not moved down before this day (YYYY-MM-DD, after today).",
        example="2026-12-31",
    ),
    Column(
        "lifetime", "Optional: true: the member never goes below this tier. Default false.", example="false"
    ),
)


@dataclass(frozen=True)
class _Assignment:
    key: str
    tier: str
    reason: str
    locked_until: date | None
    lifetime: bool


def parse_assignment_row(data: dict[str, str], match: str) -> _Assignment:
    if not data.get(match, "").strip():
        raise CellError("missing_field", f"'{match}' is needed to find the member.", match)
    try:
        key = member_key(match, data[match])
    except DomainError as error:
        raise CellError("bad_format", error.detail, match) from None
    tier = data.get("tier", "").strip()
    if not tier:
        raise CellError("missing_field", "The tier code is required.", "tier")
    reason = data.get("reason", "").strip()
    if not reason:
        raise CellError("missing_field", "The reason is required.", "reason")
    if len(reason) > _MAX_NOTE:
        raise CellError("bad_format", f"Longer than {_MAX_NOTE} characters.", "reason")
    locked_until = None
    if data.get("locked_until", "").strip():
        value = data["locked_until"].strip()
        try:
            locked_until = dateparse.parse_date(value)
        except ValueError:
            locked_until = None
        if locked_until is None:
            raise CellError("bad_format", f"'{value}' is not a date (YYYY-MM-DD).", "locked_until")
    lifetime = _boolean(data["lifetime"].strip(), "lifetime") if data.get("lifetime", "").strip() else False
    return _Assignment(key, tier, reason, locked_until, lifetime)


def process_assignments(rows: list[ImportRow], ctx: ChunkContext) -> list[RowResult]:
    program = Program.objects.get(pk=ctx.program_id)
    match = ctx.params.get("match", "number")
    results: dict[int, RowResult] = {}
    readable: list[tuple[ImportRow, _Assignment]] = []
    for row in rows:
        try:
            readable.append((row, parse_assignment_row(row.data, match)))
        except CellError as error:
            results[row.number] = RowResult.failed(row.number, error.error)
    members = members_by_key(program=program, match=match, keys=[item.key for _row, item in readable])
    tiers = {tier.code: tier for tier in Tier.objects.filter(program=program)}
    todo: list[tuple[ImportRow, _Assignment, Member, Tier]] = []
    for row, assignment in readable:
        member = members.get(assignment.key)
        tier = tiers.get(assignment.tier)
        if member is None:
            results[row.number] = RowResult.failed(
                row.number,
                RowError("unknown_member", f"No member with this {match.replace('_', ' ')}.", match),
            )
        elif tier is None:
            results[row.number] = RowResult.failed(
                row.number,
                RowError("unknown_tier", f"No tier '{assignment.tier}' in this program.", "tier"),
                object_id=member.pk,
                object_ref=member.number,
            )
        else:
            todo.append((row, assignment, member, tier))
    # Members in id order (file order for one member's rows): the chunk's transaction
    # keeps each tier row and event counter it locks until it commits, and two jobs that
    # lock them in the same order wait for each other instead of deadlocking.
    for row, assignment, member, tier in sorted(todo, key=lambda item: (item[2].pk, item[0].number)):
        results[row.number] = _assign(row, assignment, member, tier, ctx)
    return [results[row.number] for row in rows]


def _assign(row: ImportRow, assignment: _Assignment, member: Member, tier: Tier, ctx) -> RowResult:
    done = {"object_id": member.pk, "object_ref": member.number}
    # Locked until the chunk commits, as the service would lock it.
    state = MemberTier.objects.select_for_update().filter(member_id=member.pk).first()
    already = (
        state is not None
        and state.tier_id == tier.pk
        and state.grace_until is None
        and state.locked_until == assignment.locked_until
        and state.lifetime_tier_id == (tier.pk if assignment.lifetime else None)
    )
    if already:  # importing the same file again writes no second history row
        return RowResult(row.number, "unchanged", **done)
    try:
        # The service is atomic: a failing row leaves nothing behind.
        services.member_tier_assign(
            member=member,
            tier=tier,
            reason=assignment.reason,
            actor=ctx.actor,
            locked_until=assignment.locked_until,
            lifetime=assignment.lifetime,
        )
    except DomainError as error:
        return RowResult.failed(row.number, row_error(error), **done)
    return RowResult(row.number, "updated", **done)


def _assignment_keys(data: dict[str, str], params: dict[str, Any]) -> Iterable[tuple[str, str]]:
    match = params.get("match", "number")
    try:
        key = member_key(match, data.get(match, ""))
    except DomainError:
        return []
    return [("member", key)] if key else []


TIER_ASSIGNMENTS = ImportKind(
    name="tier_assignments",
    description="Put members on a tier by hand (reason required; optional lock and lifetime floor).",
    columns=ASSIGNMENT_COLUMNS,
    process=process_assignments,
    scope="tiers:write",
    params=MemberMatchParams,
    row_keys=_assignment_keys,
    required_columns=lambda params: [params.get("match", "number"), "tier", "reason"],
    error_codes=("unknown_member", "unknown_tier", "invalid_tier_assignment", "member_terminated"),
)


# --- tiers (definitions) ---------------------------------------------------------------------

_DEFINITION_FIELDS = ("code", *services.TIER_FIELDS)
TIER_COLUMNS = (
    Column(
        "code", "Tier code; an existing code is updated, a new one created.", required=True, example="gold"
    ),
    Column("name", "Name (required for a new tier).", example="Gold"),
    Column("rank", "Higher is better; unique in the program (required for a new tier).", example="30"),
    Column("is_default", "true: the tier new members get (moves the default here).", example="false"),
    Column("qualify_mode", "any (one threshold is enough) or all.", example="any"),
    Column("qualify_spend", "Spend (program money) to reach the tier in the window.", example="1000.00"),
    Column("qualify_points", "Qualifying points to reach it.", example=""),
    Column("qualify_visits", "Visits to reach it.", example="40"),
    Column("retain_spend", "Spend that keeps it (empty: the qualification threshold).", example="800.00"),
    Column("retain_points", "Points that keep it.", example=""),
    Column("retain_visits", "Visits that keep it.", example="30"),
    Column(
        "window_kind",
        "rolling_months, calendar_year, anniversary_year or lifetime.",
        example="rolling_months",
    ),
    Column("window_months", "Rolling windows: their length in months.", example="12"),
    Column("grace_months", "Months kept after falling below retention.", example="3"),
    Column("downgrade_policy", "one_level or supported_level.", example="one_level"),
    Column(
        "earn_multiplier",
        "Multiplies purchase points from base rates and multipliers (1 = none).",
        example="1.5",
    ),
    Column("discount_percent", "Member price discount, 0-100.", example="10"),
    Column("perks", "Free text shown to members.", example="Free delivery"),
    Column("rewards_eligible", "true or false: may redeem rewards at all.", example="true"),
    Column("reward_tags", "Reward tags this tier unlocks, separated by '|'.", example="gold|lounge"),
)
_BOOLEAN_FIELDS = ("is_default", "rewards_eligible")


def _serializer_error(errors: dict[str, Any]) -> RowError:
    field, messages = next(iter(errors.items()))
    detail = messages[0] if isinstance(messages, list) else messages
    code = "missing_field" if getattr(detail, "code", "") == "required" else "bad_format"
    return RowError(code, str(detail), None if field == "non_field_errors" else field)


def parse_tier_row(data: dict[str, str], *, creating: bool) -> dict[str, Any]:
    """The row's non-empty cells, read by the API's tier serializer: for a new tier with
    the API's defaults, for an existing one only the cells given. Raises ``CellError``."""
    values: dict[str, Any] = {}
    for name in _DEFINITION_FIELDS:
        value = (data.get(name) or "").strip()
        if not value:
            continue
        if name == "reward_tags":
            values[name] = [tag.strip() for tag in value.split("|") if tag.strip()]
        elif name in _BOOLEAN_FIELDS:
            values[name] = _boolean(value, name)
        else:
            values[name] = value
    serializer = TierCreateSerializer(data=values, partial=not creating)
    if not serializer.is_valid():
        error = _serializer_error(serializer.errors)
        raise CellError(error.code, error.message, error.field or "code")
    return dict(serializer.validated_data)


def process_tiers(rows: list[ImportRow], ctx: ChunkContext) -> list[RowResult]:
    program = Program.objects.get(pk=ctx.program_id)
    results = []
    for row in rows:
        code = (row.data.get("code") or "").strip()
        try:
            with transaction.atomic():
                existing = Tier.objects.filter(program=program, code=code).first() if code else None
                values = parse_tier_row(row.data, creating=existing is None)
                values.pop("code", None)
                if existing is None:
                    tier = services.tier_create(program=program, code=code, actor=ctx.actor, **values)
                    outcome = "created"
                else:
                    changes = {
                        name: value for name, value in values.items() if getattr(existing, name) != value
                    }
                    tier, outcome = existing, "unchanged"
                    if changes:
                        tier = services.tier_update(tier=existing, actor=ctx.actor, **changes)
                        outcome = "updated"
        except CellError as error:
            results.append(RowResult.failed(row.number, error.error, object_ref=code))
            continue
        except DomainError as error:
            results.append(RowResult.failed(row.number, row_error(error), object_ref=code))
            continue
        results.append(RowResult(row.number, outcome, object_id=tier.pk, object_ref=tier.code))
    return results


def _tier_keys(data: dict[str, str], params: dict[str, Any]) -> Iterable[tuple[str, str]]:
    code = (data.get("code") or "").strip()
    return [("code", code)] if code else []


def _money(value: Decimal | None, currency: str) -> str:
    return "" if value is None else str(value.quantize(money_quantum(currency)))


def tier_values(tier: Tier, currency: str) -> dict[str, Any]:
    """A tier as a row of the ``tiers`` kind (what the export writes and the import reads)."""
    row: dict[str, Any] = {name: getattr(tier, name) for name in _DEFINITION_FIELDS}
    row["qualify_spend"] = _money(tier.qualify_spend, currency)
    row["retain_spend"] = _money(tier.retain_spend, currency)
    row["reward_tags"] = "|".join(tier.reward_tags or [])
    row["earn_multiplier"] = f"{tier.earn_multiplier.normalize():f}"  # 1.5, not 1.500
    return {name: "" if value is None else value for name, value in row.items()}


def tier_rows(program_id: int, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
    program = Program.objects.get(pk=program_id)
    for tier in Tier.objects.filter(program_id=program_id).order_by("rank").iterator(chunk_size=500):
        yield tier_values(tier, program.currency)


def count_tiers(program_id: int, params: dict[str, Any]) -> int:
    return Tier.objects.filter(program_id=program_id).count()


TIERS = ImportKind(
    name="tiers",
    description="Tier definitions, created or updated by code (the API's validation).",
    columns=TIER_COLUMNS,
    process=process_tiers,
    scope="config:write",
    row_keys=_tier_keys,
    error_codes=(
        "invalid_tier",
        "tier_code_taken",
        "tier_rank_taken",
        "default_tier_required",
    ),
)
TIERS_EXPORT = ExportKind(
    name="tiers",
    description="Tier definitions, by rank (the columns of the tiers import).",
    columns=TIER_COLUMNS,
    rows=tier_rows,
    count=count_tiers,
    scope="config:read",
)


def register() -> None:
    register_import(TIER_ASSIGNMENTS)
    register_import(TIERS)
    register_export(TIERS_EXPORT)
