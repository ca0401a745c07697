"""Event types the points app emits, with the payloads receivers get (ids, amounts,
balances after, references, currency code; never secrets)."""

from __future__ import annotations

from typing import Any

from webhooks import catalog
from webhooks.services import EventInput, event_record_many

from .models import Account, Hold, Transaction

_BALANCE_EXAMPLE = {"available": 1250, "pending": 300, "held": 0}
_TXN_EXAMPLE = {
    "id": 981,
    "kind": "earn",
    "amount": 120,
    "signed_amount": 120,
    "reference": "receipt-2026-0042",
    "description": "Purchase",
    "location": "paris-01",
    "occurred_at": "2026-03-01T10:15:00Z",
    "pending_until": None,
    "reverses": None,
    "counterparty_member_id": None,
}
_EXAMPLE = {"member_id": 42, "currency": "PTS", "transaction": _TXN_EXAMPLE, "balance": _BALANCE_EXAMPLE}
_HOLD_EXAMPLE = {
    "id": 77,
    "amount": 500,
    "captured_amount": 0,
    "state": "active",
    "expires_at": "2026-03-01T10:30:00Z",
    "reference": "cart-5521",
}

EVENT_TYPES: dict[str, tuple[str, dict[str, Any]]] = {
    "points.earned": ("Points were earned (available now, or pending until `pending_until`).", _EXAMPLE),
    "points.redeemed": (
        "Points were redeemed.",
        {**_EXAMPLE, "transaction": {**_TXN_EXAMPLE, "kind": "redeem"}},
    ),
    "points.adjusted": (
        "A manual adjustment (signed) was made, with its reason.",
        {
            **_EXAMPLE,
            "transaction": {**_TXN_EXAMPLE, "kind": "adjust", "signed_amount": -50},
            "reason": "Goodwill",
        },
    ),
    "points.reversed": (
        "Part or all of an earlier transaction was reversed; `reverses` is its id.",
        {**_EXAMPLE, "transaction": {**_TXN_EXAMPLE, "kind": "reverse", "reverses": 975}},
    ),
    "points.transferred": (
        "Points moved from the member to `counterparty_member_id` (sent once per member, "
        "with that member's balance).",
        {**_EXAMPLE, "transaction": {**_TXN_EXAMPLE, "kind": "transfer", "counterparty_member_id": 43}},
    ),
    "points.expired": (
        "Points expired (lots past their expiry date, or after the inactivity period).",
        {**_EXAMPLE, "transaction": {**_TXN_EXAMPLE, "kind": "expire"}, "lots_expired": 2},
    ),
    "points.activated": (
        "Pending points became available.",
        {**_EXAMPLE, "transaction": {**_TXN_EXAMPLE, "kind": "activate"}},
    ),
    "points.expiring": (
        "Points will expire soon (sent once per member, currency, expiry date and warning offset).",
        {
            "member_id": 42,
            "currency": "PTS",
            "amount": 300,
            "expires_at": "2026-12-31T23:00:00Z",
            "expires_on": "2026-12-31",
            "days_before": 30,
            "balance": _BALANCE_EXAMPLE,
        },
    ),
    "hold.created": ("Points were put on hold (e.g. a web checkout).", {**_EXAMPLE, "hold": _HOLD_EXAMPLE}),
    "hold.captured": (
        "A hold was captured: `hold.captured_amount` points were redeemed, the rest released.",
        {**_EXAMPLE, "hold": {**_HOLD_EXAMPLE, "state": "captured", "captured_amount": 450}},
    ),
    "hold.released": (
        "A hold was released, by request or because it expired (`hold.state`).",
        {**_EXAMPLE, "hold": {**_HOLD_EXAMPLE, "state": "released"}},
    ),
}


def register() -> None:
    for name, (description, example) in EVENT_TYPES.items():
        catalog.register(name, description, example)


def balance_payload(account: Account) -> dict[str, int]:
    return {"available": account.available, "pending": account.pending, "held": account.held}


def transaction_payload(txn: Transaction) -> dict[str, Any]:
    return {
        "id": txn.pk,
        "kind": txn.kind,
        "amount": txn.amount,
        "signed_amount": txn.signed_amount,
        "reference": txn.reference,
        "description": txn.description,
        "location": txn.location.code if txn.location_id else None,
        "occurred_at": txn.occurred_at,
        "pending_until": txn.pending_until,
        "reverses": txn.reverses_id,
        "counterparty_member_id": txn.counterparty_id,
    }


def hold_payload(hold: Hold) -> dict[str, Any]:
    return {
        "id": hold.pk,
        "amount": hold.amount,
        "captured_amount": hold.captured_amount,
        "state": hold.state,
        "expires_at": hold.expires_at,
        "reference": hold.reference,
    }


def transaction_event(type: str, txn: Transaction, account: Account, **extra: Any) -> EventInput:
    """The event about ``txn`` as seen by ``account``'s member."""
    return EventInput(
        program_id=txn.program_id,
        member_id=account.member_id,
        type=type,
        occurred_at=txn.occurred_at,
        data={
            "member_id": account.member_id,
            "currency": account.currency.code,
            "transaction": transaction_payload(txn),
            "balance": balance_payload(account),
            **extra,
        },
    )


def emit_transaction(type: str, txn: Transaction, *accounts: Account, **extra: Any) -> None:
    """Record the event about ``txn`` once per account's member, in one write."""
    event_record_many(events=[transaction_event(type, txn, account, **extra) for account in accounts])
