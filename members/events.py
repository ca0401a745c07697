"""Event types the members app emits, with the payloads receivers get."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from webhooks import catalog
from webhooks.services import event_record

from .models import Card, Member

_MEMBER_EXAMPLE = {
    "member": {
        "id": 42,
        "number": "1234567897",
        "status": "active",
        "email": "ana@example.com",
        "phone": "+33612345678",
        "first_name": "Ana",
        "last_name": "Lopez",
        "external_ref": "crm-981",
        "labels": ["vip"],
    }
}


def register() -> None:
    catalog.register("member.created", "A member joined the program.", _MEMBER_EXAMPLE)
    catalog.register(
        "member.updated",
        "Profile fields or consents changed; `changed` lists them.",
        {**_MEMBER_EXAMPLE, "changed": ["email", "consents.sms"]},
    )
    catalog.register(
        "member.status_changed",
        "The member's status moved (pending, active, suspended, terminated).",
        {**_MEMBER_EXAMPLE, "from": "active", "to": "suspended", "reason": "Fraud review"},
    )
    catalog.register(
        "member.erased",
        "The member's personal data was erased (GDPR); the id and number remain for the ledger. "
        "Receivers should erase what they hold about this member.",
        {"member": {"id": 42, "number": "1234567897"}, "reason": "Request by the member"},
    )
    card_example = {
        "member_id": 42,
        "card": {"number": "9123456789012345", "kind": "physical", "status": "active"},
    }
    catalog.register("card.issued", "A card was issued to a member.", card_example)
    catalog.register(
        "card.replaced",
        "A card was replaced; the old number stays resolvable but unusable.",
        {**card_example, "replaced_number": "9000000000000017", "reason": "Lost"},
    )
    catalog.register("card.blocked", "A card was blocked.", {**card_example, "reason": "Reported stolen"})
    label_example = {"member_id": 42, "label": {"code": "vip", "name": "VIP"}}
    catalog.register("label.assigned", "A label was put on a member.", label_example)
    catalog.register("label.removed", "A label was taken off a member.", label_example)


def member_payload(member: Member, labels: Iterable[str] | None = None) -> dict[str, Any]:
    """The ``member`` object of member events. ``labels``: the member's label codes when
    the caller knows them (bulk imports), saving a query per member."""
    return {
        "id": member.pk,
        "number": member.number,
        "status": member.status,
        "email": member.email,
        "phone": member.phone,
        "first_name": member.first_name,
        "last_name": member.last_name,
        "external_ref": member.external_ref,
        "labels": sorted(member.labels.values_list("code", flat=True) if labels is None else labels),
    }


def card_payload(card: Card) -> dict[str, Any]:
    return {"number": card.number, "kind": card.kind, "status": card.status}


def emit(member: Member, type: str, data: dict[str, Any]) -> None:
    event_record(program_id=member.program_id, member_id=member.pk, type=type, data=data)
