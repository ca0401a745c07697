"""Event types the rewards app emits, with the payloads receivers get."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from programs.currencies import money_quantum
from programs.models import Program
from webhooks import catalog
from webhooks.services import EventInput, event_record_many

from .codes import format_code
from .models import Redemption, Voucher

PERCENT_QUANTUM = Decimal("0.01")

_VOUCHER_EXAMPLE = {
    "code": "7KQM-9XH4-RT2P-WZ5C",
    "status": "issued",
    "value_kind": "amount",
    "amount": "5.00",
    "percent": None,
    "sku": "",
    "min_spend": "20.00",
    "skus": [],
    "locations": ["paris-01"],
    "valid_until": "2026-04-01T22:00:00Z",
    "member_id": 42,
    "redemption_id": 310,
    "batch_id": None,
}
_REDEMPTION_EXAMPLE = {
    "id": 310,
    "member_id": 42,
    "reward": {"code": "coffee-5", "name": "5 EUR off", "kind": "amount_voucher"},
    "currency": "PTS",
    "points": 500,
    "status": "completed",
    "reference": "app-7781",
    "points_transaction_id": 981,
    "voucher_code": "7KQM-9XH4-RT2P-WZ5C",
    "redeemed_at": "2026-03-01T10:15:00Z",
}

EVENT_TYPES: dict[str, tuple[str, dict[str, Any]]] = {
    "reward.redeemed": (
        "A member redeemed a reward: the points were debited, a unit of stock taken and the "
        "voucher issued (or the shipment recorded, or the points converted).",
        {"redemption": _REDEMPTION_EXAMPLE},
    ),
    "reward.cancelled": (
        "An unused redemption was cancelled: the points were given back (with their "
        "original expiry) and the unit returned to stock.",
        {
            "redemption": {**_REDEMPTION_EXAMPLE, "status": "cancelled", "reversal_transaction_id": 990},
            "reason": "Customer changed their mind",
        },
    ),
    "voucher.issued": (
        "A voucher was issued: to a member by a redemption (`member_id`, `redemption_id`), or "
        "as an unassigned campaign code when a voucher batch is generated in the admin "
        "(`member_id` null, `batch_id` set; one event per code).",
        {"voucher": _VOUCHER_EXAMPLE},
    ),
    "voucher.used": (
        "A voucher was used at a till or web shop (`reference`: the purchase).",
        {
            "voucher": {**_VOUCHER_EXAMPLE, "status": "used"},
            "reference": "receipt-0042",
            "location": "paris-01",
        },
    ),
    "voucher.cancelled": (
        "A voucher was cancelled (by itself or with its redemption).",
        {"voucher": {**_VOUCHER_EXAMPLE, "status": "cancelled"}, "reason": "Issued by mistake"},
    ),
    "voucher.expired": (
        "A voucher passed its validity without being used.",
        {"voucher": {**_VOUCHER_EXAMPLE, "status": "expired"}},
    ),
}


def register() -> None:
    for name, (description, example) in EVENT_TYPES.items():
        catalog.register(name, description, example)


def _decimal(value: Decimal | None, quantum: Decimal) -> str | None:
    return None if value is None else str(value.quantize(quantum, rounding=ROUND_HALF_UP))


def program_currency(program_id: int) -> str:
    return Program.objects.values_list("currency", flat=True).get(pk=program_id)


def voucher_payload(
    voucher: Voucher, location_codes: list[str] | None = None, *, currency: str | None = None
) -> dict[str, Any]:
    """Money in the program's currency with its minor units (``currency``: the program's
    money currency, read when not given), percents with two decimals."""
    if location_codes is None:
        location_codes = sorted(location.code for location in voucher.locations.all())
    if currency is None:
        cached = Voucher._meta.get_field("program").is_cached(voucher)
        currency = voucher.program.currency if cached else program_currency(voucher.program_id)
    quantum = money_quantum(currency)
    return {
        "code": format_code(voucher.code),
        "status": voucher.status,
        "value_kind": voucher.value_kind,
        "amount": _decimal(voucher.amount, quantum),
        "percent": _decimal(voucher.percent, PERCENT_QUANTUM),
        "sku": voucher.sku,
        "min_spend": _decimal(voucher.min_spend, quantum),
        "skus": list(voucher.skus),
        "locations": location_codes,
        "valid_until": voucher.valid_until,
        "member_id": voucher.member_id,
        "redemption_id": voucher.redemption_id,
        "batch_id": voucher.batch_id,
    }


def redemption_payload(redemption: Redemption, voucher: Voucher | None = None) -> dict[str, Any]:
    reward = redemption.reward
    return {
        "id": redemption.pk,
        "member_id": redemption.member_id,
        "reward": {"code": reward.code, "name": reward.name, "kind": reward.kind},
        "currency": redemption.currency.code,
        "points": redemption.points,
        "status": redemption.status,
        "reference": redemption.reference,
        "points_transaction_id": redemption.points_transaction_id,
        "conversion_transaction_id": redemption.conversion_transaction_id,
        "reversal_transaction_id": redemption.reversal_transaction_id,
        "voucher_code": format_code(voucher.code) if voucher is not None else None,
        "redeemed_at": redemption.redeemed_at,
    }


def emit(program_id: int, member_id: int | None, events: list[tuple[str, dict[str, Any]]]) -> None:
    """Record ``events`` ((type, data) pairs) about one member, in one write."""
    event_record_many(
        events=[
            EventInput(program_id=program_id, member_id=member_id, type=type, data=data)
            for type, data in events
        ]
    )
