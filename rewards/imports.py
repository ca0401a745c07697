"""The ``rewards`` import and export kinds (jobs app): the catalog in and out as CSV or
JSON, through the API (``/api/v1/imports/rewards``, ``/api/v1/exports/rewards``) and the
admin (import/export buttons on Rewards). Rows are upserted by ``code`` through
``rewards.services``; each row is its own savepoint, so a bad row changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import transaction
from django.utils import dateparse, timezone

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
from members.models import Label
from membership_site.errors import DomainError
from points.models import Currency
from programs.models import Location, Program
from tiers.models import Tier

from . import services
from .models import Reward

COLUMNS = (
    Column("code", "Unique in the program; existing codes are updated.", required=True, example="coffee-5"),
    Column("name", "Name shown to members (required for a new reward).", example="5 EUR off"),
    Column(
        "kind",
        "amount_voucher, percent_voucher, free_item, physical or points_conversion.",
        example="amount_voucher",
    ),
    Column(
        "costs", "Points per currency, e.g. PTS:500|STAMPS:5 (required for a new reward).", example="PTS:500"
    ),
    Column("description", "Text shown to members."),
    Column("image_url", "Picture URL."),
    Column("sort_order", "Lower first in member catalogs.", example="10"),
    Column("stock", "Units left; empty: unlimited (on update: unchanged).", example="100"),
    Column("limit_total", "Redemptions per member in all.", example="1"),
    Column("limit_per_period", "Redemptions per member per period.", example="1"),
    Column("limit_period", "day, week, month or year (program time).", example="month"),
    Column("valid_from", "ISO date-time; without zone: program time.", example="2026-01-01T00:00:00"),
    Column("valid_until", "ISO date-time: first instant it can no longer be redeemed."),
    Column("eligible_tiers", "Tier codes separated by |; empty: every tier.", example="silver|gold"),
    Column(
        "tier_tags",
        "Tier reward tags separated by |: only members whose tier lists one of them in its "
        "reward_tags may redeem; empty: no tag needed (on update: unchanged).",
        example="lounge",
    ),
    Column("eligible_labels", "Label codes separated by |; empty: everyone.", example="vip"),
    Column("locations", "Location codes where its vouchers work, |-separated; empty: anywhere."),
    Column("is_active", "true or false (default true).", example="true"),
    Column("voucher_amount", "Amount off (amount_voucher).", example="5.00"),
    Column("voucher_percent", "Percent off (percent_voucher).", example="10"),
    Column("sku", "The free item's SKU (free_item)."),
    Column("voucher_min_spend", "Minimum basket for its vouchers.", example="20.00"),
    Column("voucher_skus", "The basket must hold one of these SKUs (|-separated)."),
    Column("voucher_valid_days", "Vouchers valid this many days after issue.", example="30"),
    Column("target_currency", "Conversion: the currency credited.", example="MILES"),
    Column("target_points", "Conversion: the points credited.", example="100"),
)
_NAMES = tuple(column.name for column in COLUMNS)


def _split(value: str) -> list[str]:
    return [item.strip() for item in value.split("|") if item.strip()]


def _int(value: str, field: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise CellError("bad_format", f"'{value}' is not a whole number.", field) from None


def _decimal(value: str, field: str) -> Decimal:
    try:
        return Decimal(value)
    except InvalidOperation:
        raise CellError("bad_format", f"'{value}' is not a number.", field) from None


def _moment(value: str, field: str, program: Program) -> datetime:
    parsed = dateparse.parse_datetime(value)
    if parsed is None:
        day = dateparse.parse_date(value)
        if day is None:
            raise CellError("bad_format", f"'{value}' is not an ISO date or date-time.", field)
        parsed = datetime(day.year, day.month, day.day)
    return timezone.make_aware(parsed, program.tz) if timezone.is_naive(parsed) else parsed


def _by_code(model, program: Program, codes: list[str], field: str) -> list[Any]:
    found = {obj.code: obj for obj in model.objects.filter(program=program, code__in=codes)}
    missing = [code for code in codes if code not in found]
    if missing:
        raise CellError(f"unknown_{field.rstrip('s')}", f"Unknown code(s): {', '.join(missing)}.", field)
    return [found[code] for code in codes]


def _currencies(program: Program) -> dict[str, Currency]:
    return {currency.code: currency for currency in Currency.objects.filter(program=program)}


def parse_row(data: dict[str, str], program: Program, currencies: dict[str, Currency]) -> dict[str, Any]:
    """Service keyword arguments from the row's non-empty cells."""
    values: dict[str, Any] = {}
    for name, raw in data.items():
        value = raw.strip()
        if not value or name == "code":
            continue
        if name in ("name", "description", "image_url", "kind", "limit_period", "sku"):
            values[name] = value
        elif name in (
            "sort_order",
            "stock",
            "limit_total",
            "limit_per_period",
            "voucher_valid_days",
            "target_points",
        ):
            values[name] = _int(value, name)
        elif name in ("voucher_amount", "voucher_percent", "voucher_min_spend"):
            values[name] = _decimal(value, name)
        elif name in ("valid_from", "valid_until"):
            values[name] = _moment(value, name, program)
        elif name == "is_active":
            if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise CellError("bad_format", "Use true or false.", name)
            values[name] = value.lower() in ("true", "1", "yes")
        elif name in ("voucher_skus", "tier_tags"):
            values[name] = _split(value)
        elif name == "costs":
            costs = {}
            for item in _split(value):
                code, _, points = item.partition(":")
                currency = currencies.get(code.strip().upper())
                if currency is None:
                    raise CellError("unknown_currency", f"Unknown currency '{code}'.", name)
                costs[currency] = _int(points.strip(), name)
            values[name] = costs
        elif name == "target_currency":
            currency = currencies.get(value.upper())
            if currency is None:
                raise CellError("unknown_currency", f"Unknown currency '{value}'.", name)
            values[name] = currency
        elif name == "eligible_tiers":
            values[name] = _by_code(Tier, program, _split(value), name)
        elif name == "eligible_labels":
            values[name] = _by_code(Label, program, _split(value), name)
        elif name == "locations":
            values[name] = _by_code(Location, program, _split(value), name)
    return values


def process_rewards(rows: list[ImportRow], ctx: ChunkContext) -> list[RowResult]:
    program = Program.objects.get(pk=ctx.program_id)
    currencies = _currencies(program)
    results = []
    for row in rows:
        code = row.data.get("code", "").strip()
        if not code:
            results.append(
                RowResult.failed(row.number, RowError("missing_field", "The code is required.", "code"))
            )
            continue
        try:
            with transaction.atomic():
                values = parse_row(row.data, program, currencies)
                existing = Reward.objects.filter(program=program, code=code).first()
                if existing is None:
                    for required in ("name", "kind", "costs"):
                        if required not in values:
                            raise CellError("missing_field", f"A new reward needs its {required}.", required)
                    reward = services.reward_create(program=program, code=code, actor=ctx.actor, **values)
                    outcome = "created"
                elif values:
                    reward = services.reward_update(reward=existing, actor=ctx.actor, **values)
                    outcome = "updated"
                else:
                    reward, outcome = existing, "unchanged"
        except CellError as error:
            results.append(RowResult.failed(row.number, error.error, object_ref=code))
            continue
        except DomainError as error:
            results.append(RowResult.failed(row.number, row_error(error), object_ref=code))
            continue
        results.append(RowResult(row=row.number, outcome=outcome, object_id=reward.pk, object_ref=code))
    return results


def _keys(data: dict[str, str], params: dict[str, Any]) -> Iterable[tuple[str, str]]:
    code = (data.get("code") or "").strip()
    return [("code", code)] if code else []


def _joined(objects: Iterable[Any]) -> str:
    return "|".join(sorted(obj.code for obj in objects))


def reward_rows(program_id: int, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
    rewards = (
        Reward.objects.filter(program_id=program_id)
        .select_related("target_currency")
        .prefetch_related("costs__currency", "eligible_tiers", "eligible_labels", "locations")
        .order_by("id")
    )
    for reward in rewards.iterator(chunk_size=500):
        row = {name: getattr(reward, name, "") for name in _NAMES}
        row.update(
            {
                "costs": "|".join(f"{cost.currency.code}:{cost.points}" for cost in reward.costs.all()),
                "eligible_tiers": _joined(reward.eligible_tiers.all()),
                "eligible_labels": _joined(reward.eligible_labels.all()),
                "locations": _joined(reward.locations.all()),
                "tier_tags": "|".join(reward.tier_tags),
                "voucher_skus": "|".join(reward.voucher_skus),
                "target_currency": reward.target_currency.code if reward.target_currency else "",
                "is_active": "true" if reward.is_active else "false",
            }
        )
        yield {name: "" if value is None else value for name, value in row.items()}


def count_rewards(program_id: int, params: dict[str, Any]) -> int:
    return Reward.objects.filter(program_id=program_id).count()


def register() -> None:
    register_import(
        ImportKind(
            name="rewards",
            description="Rewards catalog (create or update by code)",
            columns=COLUMNS,
            process=process_rewards,
            scope="config:write",
            row_keys=_keys,
            error_codes=(
                "unknown_currency",
                "unknown_eligible_tier",
                "unknown_eligible_label",
                "unknown_location",
                "invalid_reward",
                "reward_code_taken",
            ),
        )
    )
    register_export(
        ExportKind(
            name="rewards",
            description="Rewards catalog",
            columns=COLUMNS,
            rows=reward_rows,
            count=count_rewards,
            scope="config:read",
        )
    )
