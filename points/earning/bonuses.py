"""Event bonuses: enrolment, birthday, referral and profile completion.

Each is given at most once per (member, kind, key) (``BonusAward``'s unique constraint):
once ever for enrolment, profile completion and the referee; once per year for birthdays;
once per referee for the referrer. The amounts and the currency are the program's
``EarningSettings``; a bonus of 0 is off. Bonuses are ledger earns (``points.earned``
with a ``bonus`` member) but not qualifying activity for tiers.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from members.models import Member
from membership_site.actors import Actor
from programs.models import Program

from .. import services
from ..errors import MemberTerminatedError
from ..models import BonusAward, Currency, EarningSettings, Purchase, Referral, ReferralCode
from ..selectors import default_currency
from .errors import AlreadyReferredError, ReferralTooLateError, SelfReferralError, UnknownReferralCodeError
from .ledger_bulk import points_earn_many
from .qualifying import lock_members

logger = logging.getLogger(__name__)
Kind = BonusAward.Kind
MS = Member.Status
# No 0/O or 1/I/L: codes are read aloud and typed from paper.
_CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
CODE_LENGTH = 8
# pg_advisory_xact_lock(namespace, program id): one birthday batch of a program at a time.
_BIRTHDAY_LOCK_NAMESPACE = 5_0701
_DESCRIPTIONS = {
    Kind.ENROLMENT: "Welcome bonus",
    Kind.BIRTHDAY: "Birthday bonus",
    Kind.REFERRER: "Referral bonus",
    Kind.REFEREE: "Referral welcome bonus",
    Kind.PROFILE: "Profile completed",
}


def _settings(program_id: int) -> EarningSettings | None:
    return (
        EarningSettings.objects.select_related("bonus_currency__program")
        .filter(program_id=program_id)
        .first()
    )


def _currency(settings_: EarningSettings) -> Currency:
    return settings_.bonus_currency or default_currency(program_id=settings_.program_id)


def _may_credit(currency: Currency) -> bool:
    # A deactivated bonus currency gives no bonus: the enrolment, update or purchase that
    # would have earned it still goes through (one member or a bulk list alike).
    if not currency.is_active:
        logger.info("No bonus: the currency %s is inactive", currency.code)
    return currency.is_active


def _bonus_event(kind: str, key: str = "") -> dict[str, Any]:
    return {"bonus": {"kind": kind, "key": key}}


def award_bonus(
    *, member: Member, kind: str, points: int, currency: Currency, actor: Actor, key: str = ""
) -> BonusAward | None:
    """Give one bonus if this (member, kind, key) has none yet; None when it had one (or
    ``points`` is 0, or the currency is inactive)."""
    if points <= 0 or not _may_credit(currency):
        return None
    if BonusAward.objects.filter(member_id=member.pk, kind=kind, key=key).exists():
        return None
    try:
        with transaction.atomic():
            result = services.points_earn(
                member=member,
                amount=points,
                actor=actor,
                currency=currency,
                description=_DESCRIPTIONS[kind],
                metadata={"bonus": kind},
                event_data=_bonus_event(kind, key),
            )
            return BonusAward.objects.create(
                program_id=member.program_id,
                member=member,
                kind=kind,
                key=key,
                currency=currency,
                points=points,
                transaction=result.transaction,
            )
    except IntegrityError:  # given meanwhile by a concurrent request
        if BonusAward.objects.filter(member_id=member.pk, kind=kind, key=key).exists():
            return None
        raise


def _award_many(
    *, members: Sequence[Member], kind: str, points: int, currency: Currency, actor: Actor, key: str = ""
) -> int:
    """Give the bonus to each of ``members`` (new to it) in a fixed number of queries."""
    if points <= 0 or not members or not _may_credit(currency):
        return 0
    txns = points_earn_many(
        credits=[(member, points) for member in members],
        currency=currency,
        actor=actor,
        description=_DESCRIPTIONS[kind],
        metadata={"bonus": kind},
        event_data=lambda _member: _bonus_event(kind, key),
    )
    BonusAward.objects.bulk_create(
        [
            BonusAward(
                program_id=member.program_id,
                member=member,
                kind=kind,
                key=key,
                currency=currency,
                points=points,
                transaction=txns[member.pk],
            )
            for member in members
        ]
    )
    return len(members)


# --- Enrolment and profile completion ----------------------------------------------------


def profile_complete(member: Member, fields: Sequence[str]) -> bool:
    return bool(fields) and all(getattr(member, name) not in (None, "", {}, []) for name in fields)


def members_created_bonuses(*, members: Sequence[Member], actor: Actor) -> None:
    """The ``members.hooks.members_created`` receiver: the enrolment bonus for every new
    member, and the profile-completion bonus for those whose profile is already complete;
    set-based (a fixed number of queries for a whole import chunk)."""
    members = [member for member in members if member.status != MS.TERMINATED]
    if not members:
        return
    settings_ = _settings(members[0].program_id)
    if settings_ is None or not (settings_.enrolment_bonus or settings_.profile_completion_bonus):
        return
    currency = _currency(settings_)
    # An existing member cannot be new; checked anyway so that a re-run hook stays harmless.
    done = set(
        BonusAward.objects.filter(
            member_id__in=[m.pk for m in members], kind__in=[Kind.ENROLMENT, Kind.PROFILE], key=""
        ).values_list("member_id", "kind")
    )
    _award_many(
        members=[m for m in members if (m.pk, Kind.ENROLMENT) not in done],
        kind=Kind.ENROLMENT,
        points=settings_.enrolment_bonus,
        currency=currency,
        actor=actor,
    )
    fields = settings_.profile_completion_fields or []
    _award_many(
        members=[m for m in members if (m.pk, Kind.PROFILE) not in done and profile_complete(m, fields)],
        kind=Kind.PROFILE,
        points=settings_.profile_completion_bonus,
        currency=currency,
        actor=actor,
    )


def _completed_profile(member: Member, changed: Sequence[str], fields: Sequence[str]) -> bool:
    """The update filled the last of the configured fields (it changed one of them and now
    none is empty)."""
    return bool(set(changed) & set(fields)) and profile_complete(member, fields)


def member_updated_bonus(*, member: Member, changed: Sequence[str], actor: Actor) -> None:
    """The ``members.hooks.member_updated`` receiver: the profile-completion bonus, once,
    when the update filled the last of the configured fields."""
    settings_ = _settings(member.program_id)
    if settings_ is None or not settings_.profile_completion_bonus:
        return
    if not _completed_profile(member, changed, settings_.profile_completion_fields or []):
        return
    award_bonus(
        member=member,
        kind=Kind.PROFILE,
        points=settings_.profile_completion_bonus,
        currency=_currency(settings_),
        actor=actor,
    )


def members_updated_bonuses(*, updates: Sequence[tuple[Member, Sequence[str]]], actor: Actor) -> None:
    """The ``members.hooks.members_updated`` receiver (bulk updates): what
    ``member_updated_bonus`` gives each member, in a fixed number of queries for the list
    (the settings read once per program, one check of the bonuses given, one set-based
    earn). The members are locked by the bulk update, as ``member_update`` locks one, so no
    concurrent update can give the same bonus meanwhile."""
    by_program: dict[int, list[tuple[Member, Sequence[str]]]] = {}
    for member, changed in updates:
        by_program.setdefault(member.program_id, []).append((member, changed))
    for program_id, pairs in by_program.items():
        settings_ = _settings(program_id)
        if settings_ is None or not settings_.profile_completion_bonus:
            continue
        fields = settings_.profile_completion_fields or []
        completed = list(
            {
                member.pk: member for member, changed in pairs if _completed_profile(member, changed, fields)
            }.values()
        )
        if not completed:
            continue
        given = set(
            BonusAward.objects.filter(
                member_id__in=[member.pk for member in completed], kind=Kind.PROFILE, key=""
            ).values_list("member_id", flat=True)
        )
        _award_many(
            members=[member for member in completed if member.pk not in given],
            kind=Kind.PROFILE,
            points=settings_.profile_completion_bonus,
            currency=_currency(settings_),
            actor=actor,
        )


# --- Birthdays ---------------------------------------------------------------------------


def birthday_filter(on: date, mode: str) -> Q:
    """Members whose birthday bonus is due on ``on``: born on that day (29 February
    birthdays fall on 28 February in other years), or in that month."""
    if mode == EarningSettings.BirthdayMode.MONTH:
        return Q(birth_date__month=on.month)
    days = [on.day]
    leap = on.year % 4 == 0 and (on.year % 100 != 0 or on.year % 400 == 0)
    if on.month == 2 and on.day == 28 and not leap:
        days.append(29)
    return Q(birth_date__month=on.month, birth_date__day__in=days)


@dataclass
class BirthdaySummary:
    program: str
    on: date
    members: int = 0
    points: int = 0


def _lock_program_birthdays(program: Program) -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [_BIRTHDAY_LOCK_NAMESPACE, program.pk])


def birthday_candidates(*, program: Program, on: date, mode: str):
    """Active members whose birthday bonus of ``on``'s year is due and not given yet."""
    given = BonusAward.objects.filter(program_id=program.pk, kind=Kind.BIRTHDAY, key=str(on.year)).values(
        "member_id"
    )
    return (
        Member.objects.filter(program=program, status=MS.ACTIVE, birth_date__isnull=False)
        .filter(birthday_filter(on, mode))
        .exclude(pk__in=given)
        .order_by("pk")
    )


@transaction.atomic
def _birthday_batch(program: Program, settings_: EarningSettings, on: date, after_id: int, size: int, actor):
    """One batch, re-selected under the program's lock (a concurrent run cannot give the
    same bonus twice). Returns the last member id done, or None when nothing was left."""
    _lock_program_birthdays(program)
    batch = list(
        birthday_candidates(program=program, on=on, mode=settings_.birthday_mode)
        .filter(pk__gt=after_id)
        .select_related("program")[:size]
    )
    if not batch:
        return None, 0
    given = _award_many(
        members=batch,
        kind=Kind.BIRTHDAY,
        key=str(on.year),
        points=settings_.birthday_bonus,
        currency=_currency(settings_),
        actor=actor,
    )
    return batch[-1].pk, given


def birthday_bonuses(
    *,
    program: Program,
    actor: Actor,
    on: date | None = None,
    batch_size: int = 1000,
    on_start: Callable[[int], Any] | None = None,
    on_batch: Callable[[int], Any] | None = None,
) -> BirthdaySummary:
    """Give the birthday bonus due on program-local day ``on`` (default: today there), once
    per member and year. Commits per batch; safe to re-run and to run concurrently."""
    on = on or timezone.now().astimezone(program.tz).date()
    summary = BirthdaySummary(program=program.code, on=on)
    settings_ = _settings(program.pk)
    if settings_ is None or not settings_.birthday_bonus:
        if on_start:
            on_start(0)
        return summary
    if on_start:
        on_start(birthday_candidates(program=program, on=on, mode=settings_.birthday_mode).count())
    last_id = 0
    while True:
        last_id, given = _birthday_batch(program, settings_, on, last_id, batch_size, actor)
        if last_id is None:
            break
        summary.members += given
        summary.points += given * settings_.birthday_bonus
        if on_batch:
            on_batch(given)
    return summary


# --- Referrals ---------------------------------------------------------------------------


def _new_code() -> str:
    return "".join(secrets.choice(_CODE_ALPHABET) for _ in range(CODE_LENGTH))


@transaction.atomic
def referral_code_get_or_create(*, member: Member, actor: Actor) -> ReferralCode:
    """The member's referral code, created on first use."""
    existing = ReferralCode.objects.filter(member_id=member.pk).first()
    if existing is not None:
        return existing
    for _attempt in range(20):
        try:
            with transaction.atomic():
                return ReferralCode.objects.create(
                    program_id=member.program_id, member=member, code=_new_code()
                )
        except IntegrityError:
            existing = ReferralCode.objects.filter(member_id=member.pk).first()
            if existing is not None:  # created by a concurrent request
                return existing
    raise RuntimeError("Could not find an unused referral code in 20 attempts.")


@transaction.atomic
def referral_record(*, member: Member, code: str, actor: Actor) -> Referral:
    """Record that ``member`` was referred by the owner of ``code``. It must come before
    the member's first purchase, which then gives both their bonuses."""
    found = (
        ReferralCode.objects.select_related("member")
        .filter(program_id=member.program_id, code=(code or "").strip().upper())
        .first()
    )
    if found is None:
        raise UnknownReferralCodeError("No member of this program has this referral code.", field="code")
    if found.member_id == member.pk:
        raise SelfReferralError("This is the member's own referral code.", field="code")
    if member.status == MS.TERMINATED:
        raise MemberTerminatedError(f"Member {member.number} is terminated.", member_id=member.pk)
    # The locks a purchase takes first (tier row, default account): a first purchase
    # recorded meanwhile is seen below, or waits for this referral.
    lock_members([member], [default_currency(program_id=member.program_id)], actor=actor)
    if Referral.objects.filter(referee_id=member.pk).exists():
        raise AlreadyReferredError("The member was already referred.")
    if Purchase.objects.filter(member_id=member.pk).exists():
        raise ReferralTooLateError("The member has already made a purchase.")
    return Referral.objects.create(
        program_id=member.program_id, referrer=found.member, referee=member, code=found.code
    )


def referral_complete(
    *, referral: Referral, purchase: Purchase, settings_: EarningSettings, actor: Actor
) -> None:
    """On the referee's first purchase (inside it, both members' accounts locked): the
    referee's and the referrer's bonuses, and the referral marked completed."""
    currency = _currency(settings_)
    referee = purchase.member
    award_bonus(
        member=referee,
        kind=Kind.REFEREE,
        points=settings_.referral_referee_bonus,
        currency=currency,
        actor=actor,
    )
    referrer = Member.objects.select_related("program").get(pk=referral.referrer_id)
    if referrer.status != MS.TERMINATED:
        award_bonus(
            member=referrer,
            kind=Kind.REFERRER,
            key=str(referee.pk),
            points=settings_.referral_referrer_bonus,
            currency=currency,
            actor=actor,
        )
    referral.status = Referral.Status.COMPLETED
    referral.completed_at = timezone.now()
    referral.purchase = purchase
    referral.save(update_fields=["status", "completed_at", "purchase"])


def birthday_programs(*, program: Program | None = None) -> list[Program]:
    """Programs that give a birthday bonus (or just ``program``)."""
    programs = Program.objects.filter(earning_settings__birthday_bonus__gt=0).order_by("code")
    if program is not None:
        programs = programs.filter(pk=program.pk)
    return list(programs)
