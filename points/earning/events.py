"""Event types of earning (``purchase.recorded``, ``purchase.refunded``) and the summaries
that ``points.earned`` / ``points.reversed`` carry about the purchase or refund."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from webhooks import catalog
from webhooks.services import event_record

from ..models import PointsAward, Purchase, Refund

PURCHASE_RECORDED = "purchase.recorded"
PURCHASE_REFUNDED = "purchase.refunded"

_PURCHASE_EXAMPLE = {
    "reference": "receipt-2026-0042",
    "location": "paris-01",
    "occurred_at": "2026-03-01T10:15:00Z",
    "currency": "EUR",
    "total": "62.38",
    "eligible_amount": "29.48",
    "points": {"PTS": 108},
    "first_purchase": False,
}


def register() -> None:
    catalog.register(
        PURCHASE_RECORDED,
        "A purchase was recorded (`points`: what it earned per points currency; the "
        "`points.earned` events carry the breakdown).",
        {"member_id": 42, "purchase": _PURCHASE_EXAMPLE},
    )
    catalog.register(
        PURCHASE_REFUNDED,
        "A purchase was refunded in part or in full; `points` per currency: `reversed` taken "
        "back and `shortfall` the member no longer had.",
        {
            "member_id": 42,
            "purchase": {**_PURCHASE_EXAMPLE, "refunded_amount": "20.00", "fully_refunded": False},
            "refund": {
                "reference": "refund-0042-1",
                "amount": "20.00",
                "completes_purchase": False,
                "points": {"PTS": {"reversed": 33, "shortfall": 0}},
            },
        },
    )


def purchase_summary(purchase: Purchase, points: dict[str, int]) -> dict[str, Any]:
    return {
        "reference": purchase.reference,
        "location": purchase.location.code if purchase.location_id else None,
        "occurred_at": purchase.occurred_at,
        "currency": purchase.currency,
        "total": str(purchase.total),
        "eligible_amount": str(purchase.eligible_amount),
        "points": points,
        "first_purchase": purchase.first_purchase,
    }


def breakdown_summary(awards: Iterable[PointsAward]) -> list[dict[str, Any]]:
    """What ``points.earned`` says about where a purchase's points came from."""
    return [{"source": a.source, "code": a.code, "points": a.points} for a in awards]


def emit_purchase_recorded(purchase: Purchase, points: dict[str, int]) -> None:
    event_record(
        program_id=purchase.program_id,
        member_id=purchase.member_id,
        type=PURCHASE_RECORDED,
        occurred_at=purchase.occurred_at,
        data={"member_id": purchase.member_id, "purchase": purchase_summary(purchase, points)},
    )


def emit_purchase_refunded(
    purchase: Purchase, refund: Refund, points: dict[str, int], taken: dict[str, dict[str, int]]
) -> None:
    event_record(
        program_id=purchase.program_id,
        member_id=purchase.member_id,
        type=PURCHASE_REFUNDED,
        occurred_at=refund.occurred_at,
        data={
            "member_id": purchase.member_id,
            "purchase": {
                **purchase_summary(purchase, points),
                "refunded_amount": str(purchase.refunded_amount),
                "fully_refunded": purchase.fully_refunded,
            },
            "refund": {
                "reference": refund.reference,
                "amount": str(refund.amount),
                "completes_purchase": refund.completes_purchase,
                "points": taken,
            },
        },
    )
