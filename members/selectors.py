"""Reads for members: lists, one member, identification at a till, compact profiles."""

from __future__ import annotations

from typing import Any

from django.db.models import Prefetch, QuerySet

from programs.models import Program

from . import hooks
from .errors import (
    CardNotFoundError,
    CardNotUsableError,
    LabelNotFoundError,
    LookupCriteriaError,
    MemberNotFoundError,
)
from .models import Card, Consent, Label, Member
from .normalize import normalize_card_number, normalize_email, normalize_member_number, normalize_phone


def member_list(*, program: Program) -> QuerySet[Member]:
    """Members with what the full representation shows (labels, consents, cards)."""
    return Member.objects.filter(program=program).prefetch_related(
        Prefetch("labels", queryset=Label.objects.only("id", "code")),
        Prefetch("consents", queryset=Consent.objects.order_by("purpose")),
        Prefetch("cards", queryset=Card.objects.order_by("-issued_at", "-id")),
    )


def member_get(*, program: Program, member_id: int | str) -> Member:
    try:
        return member_list(program=program).get(pk=int(member_id))
    except (Member.DoesNotExist, ValueError, TypeError):
        raise MemberNotFoundError(f"No member {member_id} in this program.") from None


def card_get(*, member: Member, number: str) -> Card:
    try:
        return Card.objects.select_related("member").get(member=member, number=normalize_card_number(number))
    except Card.DoesNotExist:
        raise CardNotFoundError(f"Member {member.number} has no card {number}.") from None


def label_list(*, program: Program) -> QuerySet[Label]:
    return Label.objects.filter(program=program).order_by("code")


def label_get(*, program: Program, code: str) -> Label:
    try:
        return Label.objects.get(program=program, code=code)
    except Label.DoesNotExist:
        raise LabelNotFoundError(f"No label '{code}' in this program.") from None


def member_identify(
    *,
    program: Program,
    member_id: int | str | None = None,
    card: str | None = None,
    phone: str | None = None,
    email: str | None = None,
    number: str | None = None,
    for_transaction: bool = False,
) -> tuple[Member, Card | None]:
    """Find a member by exactly one identifier, as a till or a web shop knows them.

    Returns the member and, for a card lookup, the card. A replaced or blocked card still
    identifies its member, but with ``for_transaction`` it raises ``CardNotUsableError``.
    """
    given = {
        key: value
        for key, value in {
            "id": member_id,
            "card": card,
            "phone": phone,
            "email": email,
            "number": number,
        }.items()
        if value not in (None, "")
    }
    if len(given) != 1:
        raise LookupCriteriaError("Give exactly one of id, card, phone, email or number.", field=None)
    ((key, value),) = given.items()
    members = Member.objects.filter(program=program).select_related("program")
    found_card = None
    if key == "id":
        return member_get(program=program, member_id=value), None
    if key == "card":
        found_card = (
            Card.objects.filter(program=program, number=normalize_card_number(value))
            .select_related("member__program")
            .first()
        )
        if found_card is None:
            raise MemberNotFoundError("No member has this card.")
        if for_transaction and found_card.status != Card.Status.ACTIVE:
            raise CardNotUsableError(
                f"Card {found_card.number} is {found_card.status}.", card_status=found_card.status
            )
        return found_card.member, found_card
    if key == "phone":
        member = members.filter(phone=normalize_phone(value, program.phone_region)).first()
    elif key == "email":
        member = members.filter(email=normalize_email(value)).first()
    else:
        member = members.filter(number=normalize_member_number(value)).first()
    if member is None:
        raise MemberNotFoundError(f"No member with this {key}.")
    return member, found_card


def member_profiles(members: list[Member]) -> dict[int, dict[str, Any]]:
    """Compact profiles for real-time recognition, in a fixed number of queries whatever
    the number of members: the member, its labels, plus the sections higher apps add
    (tier, balances) through ``hooks.profile_sections``."""
    if not members:
        return {}
    ids = [member.pk for member in members]
    labels: dict[int, list[str]] = {member_id: [] for member_id in ids}
    for member_id, code in Member.labels.through.objects.filter(member_id__in=ids).values_list(
        "member_id", "label__code"
    ):
        labels[member_id].append(code)
    profiles = {
        member.pk: {
            "id": member.pk,
            "number": member.number,
            "status": member.status,
            "first_name": member.first_name,
            "last_name": member.last_name,
            "language": member.language,
            "joined_at": member.joined_at,
            "labels": sorted(labels[member.pk]),
        }
        for member in members
    }
    for section, data in hooks.profile_sections.run(members=members):
        for member_id, value in data.items():
            profiles[member_id][section] = value
    return profiles


def member_export(*, member: Member) -> dict[str, Any]:
    """Everything the platform holds about a member (GDPR right of access), including the
    sections higher apps add through ``hooks.export_sections``."""
    profile_fields = (
        "id",
        "number",
        "status",
        "status_changed_at",
        "email",
        "phone",
        "first_name",
        "last_name",
        "birth_date",
        "language",
        "address_line1",
        "address_line2",
        "city",
        "postal_code",
        "region",
        "country",
        "preferences",
        "external_ref",
        "joined_at",
        "erased_at",
        "created_at",
        "updated_at",
    )
    data: dict[str, Any] = {
        "member": {name: getattr(member, name) for name in profile_fields},
        "program": member.program.code,
        "labels": sorted(member.labels.values_list("code", flat=True)),
        "consents": list(
            member.consents.order_by("purpose").values("purpose", "granted", "changed_at", "source")
        ),
        "cards": list(
            member.cards.order_by("issued_at").values(
                "number", "kind", "status", "issued_at", "status_reason"
            )
        ),
        "status_changes": list(
            member.status_changes.order_by("at").values("from_status", "to_status", "reason", "at")
        ),
    }
    for section, section_data in hooks.export_sections.run(member=member):
        data[section] = section_data
    return data
