"""Writes for members, cards, labels and consents.

Every write records its actor, and emits its event in the same transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from membership_site.actors import Actor
from programs.models import Program
from webhooks.services import events_redact_member

from . import hooks
from .errors import (
    CardNotActiveError,
    CardNumberTakenError,
    DuplicateMemberError,
    IllegalStatusTransitionError,
    LabelCodeTakenError,
    MemberErasedError,
    MemberTerminatedError,
    UnknownLabelError,
)
from .events import card_payload, emit, member_payload
from .models import Card, Consent, Label, Member, MemberLabel, StatusChange
from .normalize import (
    check_birth_date,
    generate_card_number,
    generate_member_number,
    normalize_card_number,
    normalize_email,
    normalize_member_number,
    normalize_phone,
)
from .selectors import label_get

S = Member.Status
ALLOWED_TRANSITIONS: dict[str, set[str]] = {
    S.PENDING: {S.ACTIVE, S.TERMINATED},
    S.ACTIVE: {S.SUSPENDED, S.TERMINATED},
    S.SUSPENDED: {S.ACTIVE, S.TERMINATED},
    S.TERMINATED: set(),
}

# Named moves offered by the API and the admin: action -> (to, from which statuses).
STATUS_ACTIONS: dict[str, tuple[str, set[str]]] = {
    "activate": (S.ACTIVE, {S.PENDING}),
    "suspend": (S.SUSPENDED, {S.ACTIVE}),
    "reactivate": (S.ACTIVE, {S.SUSPENDED}),
    "terminate": (S.TERMINATED, {S.PENDING, S.ACTIVE, S.SUSPENDED}),
}

PROFILE_FIELDS = (
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
)
_UNIQUE_FIELDS = ("number", "email", "phone", "external_ref")


@dataclass(frozen=True)
class ConsentInput:
    purpose: str
    granted: bool
    source: str = ""


def normalized_profile(program: Program, fields: dict[str, Any]) -> dict[str, Any]:
    """Profile values as they are stored: e-mail lower-case and checked, phone in E.164
    (read in the program's region), country upper-case, ``None`` as empty. Raises the
    domain error of the first bad value. Used by ``member_create``, ``member_update`` and
    the bulk import (``members.bulk``)."""
    fields = dict(fields)
    if "email" in fields:
        fields["email"] = normalize_email(fields["email"] or "")
    if "phone" in fields:
        fields["phone"] = normalize_phone(fields["phone"] or "", program.phone_region)
    if "country" in fields:
        fields["country"] = (fields["country"] or "").upper()
    if isinstance(fields.get("birth_date"), date):
        check_birth_date(fields["birth_date"], program.tz)
    for name in PROFILE_FIELDS:
        if name in fields and fields[name] is None and name not in ("birth_date",):
            fields[name] = {} if name == "preferences" else ""
    return fields


def _check_unique(program: Program, fields: dict[str, Any], exclude_id: int | None = None) -> None:
    """Name the field that clashes, rather than leaving it to the database constraint."""
    for name in _UNIQUE_FIELDS:
        value = fields.get(name)
        if not value:
            continue
        clash = Member.objects.filter(program=program, **{name: value})
        if exclude_id is not None:
            clash = clash.exclude(pk=exclude_id)
        if clash.exists():
            raise DuplicateMemberError(
                f"Another member of this program already has this {name.replace('_', ' ')}.",
                field=name,
            )


def _save_unique(obj: Member, *, program: Program, fields: dict[str, Any]) -> None:
    """Save, turning a unique-constraint race lost to a concurrent writer into the same
    DuplicateMemberError the pre-check gives."""
    try:
        with transaction.atomic():
            obj.save()
    except IntegrityError:
        _check_unique(program, fields, exclude_id=obj.pk)
        raise


def _lock(member: Member) -> Member:
    # FOR NO KEY UPDATE: member services never change the id, and FOR UPDATE would also
    # block the KEY SHARE that PostgreSQL's deferred foreign-key checks take at COMMIT in
    # any transaction writing a row that points at the member (a ledger entry, an event):
    # a points write holding the member's event counter then deadlocked with us.
    return Member.objects.select_for_update(no_key=True).get(pk=member.pk)


def _ensure_not_terminated(member: Member) -> None:
    if member.status == Member.Status.TERMINATED:
        raise MemberTerminatedError(f"Member {member.number} is terminated.")


@transaction.atomic
def member_create(
    *,
    program: Program,
    actor: Actor,
    number: str | None = None,
    status: str = Member.Status.ACTIVE,
    joined_at: datetime | None = None,
    consents: Iterable[ConsentInput] = (),
    labels: Iterable[str] = (),
    card_number: str | None = None,
    card_kind: str = Card.Kind.PHYSICAL,
    **profile: Any,
) -> Member:
    """Create a member with its consents, labels and (given ``card_number``) a card, emit
    ``member.created`` and run the ``members_created`` hook.

    ``profile`` takes the names in ``PROFILE_FIELDS``. ``number`` may come from a legacy
    system; otherwise one is generated.
    """
    unknown = set(profile) - set(PROFILE_FIELDS)
    if unknown:
        raise TypeError(f"Unknown member fields: {sorted(unknown)}")
    if status not in (Member.Status.PENDING, Member.Status.ACTIVE):
        raise IllegalStatusTransitionError(f"A new member starts as pending or active, not {status}.")
    fields = normalized_profile(program, profile)
    if number:
        fields["number"] = normalize_member_number(number)
    _check_unique(program, fields)
    if "number" not in fields:
        fields["number"] = _unused_member_number(program)
    now = timezone.now()
    member = Member(
        program=program,
        status=status,
        status_changed_at=now,
        joined_at=joined_at or now,
        **fields,
    )
    _save_unique(member, program=program, fields=fields)
    for consent in consents:
        _consent_write(member, consent, now)
    label_objects = _labels_by_code(program, labels)
    MemberLabel.objects.bulk_create([MemberLabel(member=member, label=label) for label in label_objects])
    if card_number:
        _card_create(member, number=card_number, kind=card_kind)
    emit(member, "member.created", {"member": member_payload(member)})
    hooks.members_created.run(members=[member], actor=actor)
    return member


def _unused_member_number(program: Program) -> str:
    for _ in range(20):
        number = generate_member_number()
        if not Member.objects.filter(program=program, number=number).exists():
            return number
    raise RuntimeError("Could not find an unused member number in 20 attempts.")


@transaction.atomic
def member_update(*, member: Member, actor: Actor, **changes: Any) -> Member:
    """Change profile fields (names in ``PROFILE_FIELDS``); emits ``member.updated`` with
    the names of the fields whose value changed (nothing is written when none did)."""
    unknown = set(changes) - set(PROFILE_FIELDS)
    if unknown:
        raise TypeError(f"Unknown member fields: {sorted(unknown)}")
    member = _lock(member)
    _ensure_not_terminated(member)
    changes = normalized_profile(member.program, changes)
    changed = [name for name, value in changes.items() if getattr(member, name) != value]
    if not changed:
        return member
    _check_unique(member.program, {name: changes[name] for name in changed}, exclude_id=member.pk)
    for name in changed:
        setattr(member, name, changes[name])
    _save_unique(member, program=member.program, fields={name: changes[name] for name in changed})
    hooks.member_updated.run(member=member, changed=sorted(changed), actor=actor)
    emit(member, "member.updated", {"member": member_payload(member), "changed": sorted(changed)})
    return member


@transaction.atomic
def member_change_status(
    *,
    member: Member,
    to_status: str,
    reason: str,
    actor: Actor,
    from_statuses: set[str] | None = None,
) -> Member:
    """Move a member along its lifecycle; an illegal move raises a 409 problem.
    ``from_statuses`` narrows the statuses the move is accepted from."""
    member = _lock(member)
    from_status = member.status
    allowed = to_status in ALLOWED_TRANSITIONS.get(from_status, set())
    if not allowed or (from_statuses is not None and from_status not in from_statuses):
        raise IllegalStatusTransitionError(
            f"A member cannot move from {from_status} to {to_status}.",
            current_status=from_status,
            allowed=sorted(ALLOWED_TRANSITIONS.get(from_status, set())),
        )
    now = timezone.now()
    member.status = to_status
    member.status_changed_at = now
    member.save(update_fields=["status", "status_changed_at", "updated_at"])
    StatusChange.objects.create(
        member=member,
        from_status=from_status,
        to_status=to_status,
        reason=reason,
        at=now,
        **actor.as_fields(),
    )
    emit(
        member,
        "member.status_changed",
        {"member": member_payload(member), "from": from_status, "to": to_status, "reason": reason},
    )
    hooks.member_status_changed.run(member=member, from_status=from_status, to_status=to_status, actor=actor)
    return member


def member_status_action(*, member: Member, action: str, reason: str, actor: Actor) -> Member:
    """Apply a named move (``STATUS_ACTIONS``): e.g. "reactivate" only from suspended."""
    to_status, from_statuses = STATUS_ACTIONS[action]
    return member_change_status(
        member=member, to_status=to_status, reason=reason, actor=actor, from_statuses=from_statuses
    )


def _consent_write(member: Member, consent: ConsentInput, at: datetime) -> bool:
    existing = Consent.objects.filter(member=member, purpose=consent.purpose).first()
    if existing is not None and existing.granted == consent.granted:
        return False
    if existing is None:
        Consent.objects.create(
            member=member,
            purpose=consent.purpose,
            granted=consent.granted,
            changed_at=at,
            source=consent.source,
        )
    else:
        existing.granted = consent.granted
        existing.changed_at = at
        existing.source = consent.source
        existing.save()
    return True


@transaction.atomic
def consents_set(*, member: Member, consents: Iterable[ConsentInput], actor: Actor) -> Member:
    """Record consents given or withdrawn; each change keeps its time and source (and its
    history row). Emits ``member.updated`` naming ``consents.<purpose>``."""
    member = _lock(member)
    _ensure_not_terminated(member)
    now = timezone.now()
    changed = [f"consents.{c.purpose}" for c in consents if _consent_write(member, c, now)]
    if changed:
        emit(member, "member.updated", {"member": member_payload(member), "changed": sorted(changed)})
    return member


# --- Labels ------------------------------------------------------------------------------


@transaction.atomic
def label_create(*, program: Program, code: str, name: str, description: str = "", actor: Actor) -> Label:
    if Label.objects.filter(program=program, code=code).exists():
        raise LabelCodeTakenError(f"Label '{code}' already exists.", field="code")
    return Label.objects.create(program=program, code=code, name=name or code, description=description)


@transaction.atomic
def label_update(*, label: Label, actor: Actor, **fields: Any) -> Label:
    # Only the given fields, on the locked row (the caller's copy may be stale).
    locked = Label.objects.select_for_update(no_key=True).get(pk=label.pk)
    for name, value in fields.items():
        setattr(locked, name, value)
        setattr(label, name, value)
    locked.save(update_fields=[*fields, "updated_at"] if fields else None)
    return locked


def _labels_by_code(program: Program, codes: Iterable[str], field: str = "labels") -> list[Label]:
    codes = list(dict.fromkeys(codes))
    if not codes:
        return []
    found = {label.code: label for label in Label.objects.filter(program=program, code__in=codes)}
    missing = [code for code in codes if code not in found]
    if missing:
        raise UnknownLabelError(f"Unknown labels: {', '.join(missing)}.", field=field)
    return [found[code] for code in codes]


@transaction.atomic
def label_assign(*, member: Member, label_code: str, actor: Actor) -> bool:
    """Put a label on a member; False (and no event) when it was already there."""
    member = _lock(member)
    _ensure_not_terminated(member)
    (label,) = _labels_by_code(member.program, [label_code], field="label")
    _link, created = MemberLabel.objects.get_or_create(member=member, label=label)
    if created:
        member.save(update_fields=["updated_at"])
        emit(
            member,
            "label.assigned",
            {"member_id": member.pk, "label": {"code": label.code, "name": label.name}},
        )
    return created


@transaction.atomic
def label_remove(*, member: Member, label_code: str, actor: Actor) -> bool:
    """Take a label off a member; False (and no event) when it was not there."""
    member = _lock(member)
    _ensure_not_terminated(member)
    label = label_get(program=member.program, code=label_code)
    deleted, _ = MemberLabel.objects.filter(member=member, label=label).delete()
    if deleted:
        member.save(update_fields=["updated_at"])
        emit(
            member,
            "label.removed",
            {"member_id": member.pk, "label": {"code": label.code, "name": label.name}},
        )
    return bool(deleted)


# --- Cards -------------------------------------------------------------------------------


def _card_create(member: Member, *, number: str | None, kind: str) -> Card:
    number = normalize_card_number(number) if number else None
    if number and Card.objects.filter(program_id=member.program_id, number=number).exists():
        raise CardNumberTakenError(f"Card number {number} is already in use.", field="number")
    for _ in range(20):
        candidate = number or generate_card_number()
        try:
            with transaction.atomic():
                return Card.objects.create(
                    program_id=member.program_id, member=member, number=candidate, kind=kind
                )
        except IntegrityError:
            if number:
                raise CardNumberTakenError(
                    f"Card number {number} is already in use.", field="number"
                ) from None
    raise RuntimeError("Could not find an unused card number in 20 attempts.")


@transaction.atomic
def card_issue(
    *, member: Member, actor: Actor, number: str | None = None, kind: str = Card.Kind.PHYSICAL
) -> Card:
    """Issue a card (a generated number when none is given); emits ``card.issued``."""
    member = _lock(member)
    _ensure_not_terminated(member)
    card = _card_create(member, number=number, kind=kind)
    emit(member, "card.issued", {"member_id": member.pk, "card": card_payload(card)})
    return card


@transaction.atomic
def card_replace(
    *,
    card: Card,
    reason: str,
    actor: Actor,
    new_number: str | None = None,
    kind: str | None = None,
) -> Card:
    """Replace an active or blocked card with a new one. The old number keeps resolving
    to the member but can no longer be used for transactions."""
    member = _lock(card.member)
    _ensure_not_terminated(member)
    card = Card.objects.select_for_update(no_key=True).get(pk=card.pk)
    if card.status == Card.Status.REPLACED:
        raise CardNotActiveError(f"Card {card.number} was already replaced.")
    new_card = _card_create(member, number=new_number, kind=kind or card.kind)
    card.status = Card.Status.REPLACED
    card.status_reason = reason
    card.replaced_by = new_card
    card.save(update_fields=["status", "status_reason", "replaced_by", "updated_at"])
    emit(
        member,
        "card.replaced",
        {
            "member_id": member.pk,
            "card": card_payload(new_card),
            "replaced_number": card.number,
            "reason": reason,
        },
    )
    return new_card


@transaction.atomic
def card_block(*, card: Card, reason: str, actor: Actor) -> Card:
    member = _lock(card.member)
    card = Card.objects.select_for_update(no_key=True).get(pk=card.pk)
    if card.status != Card.Status.ACTIVE:
        raise CardNotActiveError(f"Card {card.number} is {card.status}.")
    card.status = Card.Status.BLOCKED
    card.status_reason = reason
    card.save(update_fields=["status", "status_reason", "updated_at"])
    emit(member, "card.blocked", {"member_id": member.pk, "card": card_payload(card), "reason": reason})
    return card


# --- GDPR erasure -------------------------------------------------------------------------

# Fields holding personal data and the value they are erased to.
_ERASED_VALUES: dict[str, Any] = {
    "email": "",
    "phone": "",
    "first_name": "",
    "last_name": "",
    "birth_date": None,
    "language": "",
    "address_line1": "",
    "address_line2": "",
    "city": "",
    "postal_code": "",
    "region": "",
    "country": "",
    "preferences": {},
    "external_ref": "",
}


def _personal_values(member: Member) -> set[str]:
    """The member's identifying data as the strings events may hold them in. Not the
    city, region, postal code, country, language or birth date: they identify nobody
    alone, and matching them would also blank e.g. a store named after its city."""
    names = ["email", "phone", "first_name", "last_name", "external_ref", "address_line1", "address_line2"]
    # Earlier versions too (the history rows): events keep the values of their time.
    versions = [member, *member.history.all().only(*names)]
    values = {str(getattr(version, name)) for version in versions for name in names}
    values.discard("None")
    cards = Card.objects.filter(member=member)
    values.update(cards.values_list("number", flat=True))
    values.update(Card.history.filter(id__in=cards.values("id")).values_list("number", flat=True))
    return {value for value in values if value}


@transaction.atomic
def member_erase(*, member: Member, reason: str, actor: Actor) -> Member:
    """Erase a member's personal data (GDPR right to erasure).

    The member row stays, with its id and number, so that the ledger and statistics stay
    whole; the membership is terminated, profile fields are blanked (in the history table
    too), consents are deleted and cards are blocked with their numbers replaced. Higher
    apps erase their own data through ``hooks.member_erased``. Emits ``member.erased``.
    """
    member = _lock(member)
    if member.erased_at is not None:
        raise MemberErasedError(f"Member {member.number} was erased at {member.erased_at}.")
    personal_values = _personal_values(member)
    if member.status != Member.Status.TERMINATED:
        member = member_change_status(
            member=member, to_status=Member.Status.TERMINATED, reason=f"Erasure: {reason}", actor=actor
        )
    now = timezone.now()
    for name, value in _ERASED_VALUES.items():
        setattr(member, name, value)
    member.erased_at = now
    member.save()
    # The history table keeps copies of every earlier version: blank them as well.
    member.history.all().update(**_ERASED_VALUES)
    MemberLabel.objects.filter(member=member).delete()
    Consent.objects.filter(member=member).delete()
    # After the delete, which itself writes a last history row per consent.
    Consent.history.filter(member_id=member.pk).delete()
    for card in Card.objects.select_for_update(no_key=True).filter(member=member):
        erased_number = f"ERASED-{card.pk}"
        card.history.all().update(number=erased_number)
        card.number = erased_number
        if card.status == Card.Status.ACTIVE:
            card.status = Card.Status.BLOCKED
        card.status_reason = "Personal data erased"
        card.save()
    # The erasure row itself is the last history entry; it holds no personal data.
    hooks.member_erased.run(member=member, actor=actor)
    # The member's earlier events (kept EVENTS_RETENTION_DAYS, served by the stream and by
    # webhook retries) would still hold the e-mail, phone, names and card numbers.
    events_redact_member(member_id=member.pk, values=personal_values)
    emit(member, "member.erased", {"member": {"id": member.pk, "number": member.number}, "reason": reason})
    return member
