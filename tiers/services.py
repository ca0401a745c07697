"""Writes for tiers: definitions, qualifying activity, manual assignment and the evaluation.

The contract for the apps above (points, rewards) is ``activity_record``: the earning code
calls it inside its own transaction for every purchase, refund, earn or reversal, and the
member is upgraded in that same transaction when the activity crosses a threshold, so the
very next purchase earns with the new tier's multiplier (read it with
``tiers.selectors.member_benefits``).

Every change of a member's tier (or grace) writes a ``TierChange`` row and a
``tier.changed`` event in the transaction that makes it.
"""

from __future__ import annotations

import functools
import re
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from members.models import Member
from membership_site.actors import Actor
from programs.currencies import money_quantum
from programs.models import Program
from webhooks.services import EventInput, event_record_many

from . import rules
from .errors import (
    ActivityReferenceConflictError,
    DefaultTierRequiredError,
    EvaluationRunningError,
    InvalidActivityError,
    InvalidTierError,
    MemberTerminatedError,
    TierAssignmentError,
    TierCodeTakenError,
    TierInUseError,
    TierRankTakenError,
    UnknownTierError,
)
from .events import TIER_CHANGED, tier_changed_payload
from .models import MemberTier, Tier, TierActivity, TierChange, TierEvaluation, TierSettings
from .rules import local_today, start_of_day
from .selectors import adjustments_qualify

ACTIVITY_UNIQUE = next(
    constraint.fields
    for constraint in TierActivity._meta.constraints
    if constraint.name == "tier_activity_reference_unique"
)

ZERO = Decimal("0")
Reason = TierChange.Reason

# Fields of a tier definition that tier_create / tier_update accept besides program and code.
TIER_FIELDS = (
    "name",
    "rank",
    "is_default",
    "qualify_mode",
    "qualify_spend",
    "qualify_points",
    "qualify_visits",
    "retain_spend",
    "retain_points",
    "retain_visits",
    "window_kind",
    "window_months",
    "grace_months",
    "downgrade_policy",
    "earn_multiplier",
    "discount_percent",
    "perks",
    "rewards_eligible",
    "reward_tags",
)
_METRICS = ("spend", "points", "visits")
_TAG = re.compile(r"^[-a-zA-Z0-9_]{1,50}$")
MAX_WINDOW_MONTHS = 120
MAX_GRACE_MONTHS = 60
MAX_EARN_MULTIPLIER = Decimal("100")
DEFAULT_BATCH_SIZE = 20_000
# pg_try_advisory_lock(namespace, program id): one evaluation per program at a time.
_EVALUATION_LOCK_NAMESPACE = 6_0601


def _lock_program(program: Program) -> None:
    # Tier definitions of a program change one writer at a time (default and rank checks).
    Program.objects.select_for_update().filter(pk=program.pk).values_list("pk", flat=True).get()


# --- Tier definitions -------------------------------------------------------------------


def tier_check(*, program: Program, values: dict[str, Any]) -> None:
    """Raise ``InvalidTierError`` (naming the field) if a complete set of tier values breaks
    a rule the serializers and forms cannot see (the admin form calls it too)."""
    quantum = money_quantum(program.currency)
    for name in ("qualify_spend", "retain_spend"):
        amount = values.get(name)
        if amount is not None and amount != amount.quantize(quantum):
            raise InvalidTierError(
                f"{program.currency} amounts have at most {-quantum.as_tuple().exponent} decimals.",
                field=name,
            )
    for metric in _METRICS:
        entry, keep = values.get(f"qualify_{metric}"), values.get(f"retain_{metric}")
        if entry is not None and entry <= 0:
            raise InvalidTierError(
                "A qualification threshold must be greater than 0.", field=f"qualify_{metric}"
            )
        if keep is None:
            continue
        if entry is None:
            raise InvalidTierError(
                f"A retention threshold needs a qualification threshold on {metric}.",
                field=f"retain_{metric}",
            )
        if keep < 0 or keep > entry:
            raise InvalidTierError(
                "The retention threshold must be between 0 and the qualification threshold.",
                field=f"retain_{metric}",
            )
    if values.get("window_kind") == Tier.Window.ROLLING_MONTHS and not (
        1 <= (values.get("window_months") or 0) <= MAX_WINDOW_MONTHS
    ):
        raise InvalidTierError(f"A rolling window is 1 to {MAX_WINDOW_MONTHS} months.", field="window_months")
    if not 0 <= (values.get("grace_months") or 0) <= MAX_GRACE_MONTHS:
        raise InvalidTierError(f"The grace period is 0 to {MAX_GRACE_MONTHS} months.", field="grace_months")
    multiplier = values.get("earn_multiplier")
    if multiplier is not None and not ZERO <= multiplier <= MAX_EARN_MULTIPLIER:
        raise InvalidTierError(f"The earn multiplier is 0 to {MAX_EARN_MULTIPLIER}.", field="earn_multiplier")
    discount = values.get("discount_percent")
    if discount is not None and not ZERO <= discount <= Decimal("100"):
        raise InvalidTierError("The discount is 0 to 100 percent.", field="discount_percent")
    tags = values.get("reward_tags") or []
    if not isinstance(tags, list) or not all(isinstance(tag, str) and _TAG.match(tag) for tag in tags):
        raise InvalidTierError(
            "Reward tags are a list of short codes (letters, digits, - and _).", field="reward_tags"
        )


def _check_unique(program: Program, *, code: str | None, rank: int | None, exclude_id: int | None) -> None:
    others = Tier.objects.filter(program=program)
    if exclude_id is not None:
        others = others.exclude(pk=exclude_id)
    if code is not None and others.filter(code=code).exists():
        raise TierCodeTakenError(f"Tier '{code}' already exists in this program.", field="code")
    if rank is not None and others.filter(rank=rank).exists():
        raise TierRankTakenError(f"Another tier of this program has rank {rank}.", field="rank")


def _values_of(tier: Tier) -> dict[str, Any]:
    return {name: getattr(tier, name) for name in TIER_FIELDS}


@transaction.atomic
def tier_create(*, program: Program, code: str, name: str, rank: int, actor: Actor, **fields: Any) -> Tier:
    """Create a tier (see ``TIER_FIELDS`` for the optional fields). The first tier of a
    program is its default; ``is_default=True`` moves the default here."""
    unknown = set(fields) - set(TIER_FIELDS)
    if unknown:
        raise TypeError(f"Unknown tier fields: {sorted(unknown)}")
    _lock_program(program)
    tier = Tier(program=program, code=code, name=name, rank=rank, **fields)
    if not Tier.objects.filter(program=program).exists():
        tier.is_default = True
    tier_check(program=program, values=_values_of(tier))
    _check_unique(program, code=code, rank=rank, exclude_id=None)
    if tier.is_default:
        Tier.objects.filter(program=program, is_default=True).update(is_default=False)
    tier.save()
    return tier


@transaction.atomic
def tier_update(*, tier: Tier, actor: Actor, **changes: Any) -> Tier:
    """Change a tier's definition. Members move only at their next activity or evaluation."""
    unknown = set(changes) - set(TIER_FIELDS)
    if unknown:
        raise TypeError(f"Unknown tier fields: {sorted(unknown)}")
    _lock_program(tier.program)
    tier = Tier.objects.select_for_update().get(pk=tier.pk)
    if changes.get("is_default") is False and tier.is_default:
        raise DefaultTierRequiredError(
            "This is the program's default tier; make another tier the default instead.", field="is_default"
        )
    values = {**_values_of(tier), **changes}
    tier_check(program=tier.program, values=values)
    _check_unique(tier.program, code=None, rank=changes.get("rank"), exclude_id=tier.pk)
    if changes.get("is_default") and not tier.is_default:
        Tier.objects.filter(program_id=tier.program_id, is_default=True).update(is_default=False)
    for name, value in changes.items():
        setattr(tier, name, value)
    tier.save()
    return tier


@transaction.atomic
def tier_delete(*, tier: Tier, actor: Actor) -> None:
    """Delete a tier nobody holds and no history mentions (a tier set up by mistake)."""
    _lock_program(tier.program)
    if tier.is_default:
        raise DefaultTierRequiredError(
            "The default tier cannot be deleted; make another tier the default first."
        )
    held = MemberTier.objects.filter(Q(tier=tier) | Q(lifetime_tier=tier)).exists()
    mentioned = TierChange.objects.filter(Q(from_tier=tier) | Q(to_tier=tier)).exists()
    if held or mentioned:
        raise TierInUseError(f"Tier '{tier.code}' is held by members or appears in their tier history.")
    tier.delete()


@transaction.atomic
def tier_settings_update(*, program: Program, actor: Actor, adjustments_qualify: bool) -> TierSettings:
    tier_settings, _ = TierSettings.objects.select_for_update().get_or_create(program=program)
    if tier_settings.adjustments_qualify != adjustments_qualify:
        tier_settings.adjustments_qualify = adjustments_qualify
        tier_settings.save()
    return tier_settings


# --- Default tier for new and existing members ------------------------------------------


def members_assign_default(*, members: Sequence[Member], actor: Actor) -> int:
    """Give new members their program's default tier, in two queries whatever their number
    (the ``members_created`` hook). Members of a program without tiers get nothing yet: the
    evaluation assigns them once the program has tiers. Returns the number assigned.

    No savepoint of its own: it is on the path of every earn, and one read followed by one
    ``INSERT ... ON CONFLICT DO NOTHING`` is safe without one."""
    if not members:
        return 0
    defaults = dict(
        Tier.objects.filter(program_id__in={m.program_id for m in members}, is_default=True).values_list(
            "program_id", "pk"
        )
    )
    rows = [
        MemberTier(
            member_id=member.pk,
            program_id=member.program_id,
            tier_id=defaults[member.program_id],
            since=member.joined_at,
        )
        for member in members
        if member.program_id in defaults and member.status != Member.Status.TERMINATED
    ]
    MemberTier.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


def member_tiers_fill_missing(*, program: Program, actor: Actor, chunk_size: int = 5000) -> int:
    """Give the default tier to every member of ``program`` who has no tier yet (members
    that joined before the program had tiers). Commits per chunk; safe to re-run."""
    default = Tier.objects.filter(program=program, is_default=True).first()
    if default is None:
        return 0
    missing = (
        Member.objects.filter(program=program, tier_state__isnull=True)
        .exclude(status=Member.Status.TERMINATED)
        .order_by("pk")
        .values_list("pk", "joined_at")
    )
    assigned = 0
    chunk: list[MemberTier] = []
    for member_id, joined_at in missing.iterator(chunk_size=chunk_size):
        chunk.append(MemberTier(member_id=member_id, program=program, tier=default, since=joined_at))
        if len(chunk) >= chunk_size:
            assigned += _insert_states(chunk)
            chunk = []
    if chunk:
        assigned += _insert_states(chunk)
    return assigned


@transaction.atomic
def _insert_states(rows: list[MemberTier]) -> int:
    MemberTier.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


def _state_for_update(member: Member, *, create: bool = True) -> MemberTier | None:
    """The member's tier state, locked; created with the default tier when missing (and
    ``create``). None when the program has no tiers."""
    state = MemberTier.objects.select_for_update().filter(member_id=member.pk).first()
    if state is not None or not create:
        return state
    default = Tier.objects.filter(program_id=member.program_id, is_default=True).first()
    if default is None:
        return None
    MemberTier.objects.bulk_create(
        [MemberTier(member_id=member.pk, program_id=member.program_id, tier=default, since=member.joined_at)],
        ignore_conflicts=True,
    )
    return MemberTier.objects.select_for_update().get(member_id=member.pk)


# --- Writing a change -------------------------------------------------------------------


def _snapshot(state: MemberTier) -> rules.StateSnapshot:
    return rules.StateSnapshot(state.tier_id, state.grace_until, state.locked_until, state.lifetime_tier_id)


def _change_state(
    state: MemberTier,
    *,
    reason: str,
    to_tier: Tier,
    effective_on: date,
    at: datetime,
    since: datetime,
    actor: Actor,
    grace_until: date | None = None,
    note: str = "",
    locked_until: date | None = None,
    lifetime_tier: Tier | bool | None = False,
) -> TierChange:
    """Apply a change to ``state`` (not saved) and return its history row (not saved).

    ``lifetime_tier``: False leaves the lifetime floor as it is; None clears it.
    """
    from_tier_id = state.tier_id
    if to_tier.pk != from_tier_id:
        state.since = since
    state.tier = to_tier
    state.grace_until = grace_until
    if reason == Reason.MANUAL:
        state.locked_until = locked_until
    if lifetime_tier is not False:
        state.lifetime_tier = lifetime_tier
    state.changed_on = effective_on
    return TierChange(
        program_id=state.program_id,
        member_id=state.member_id,
        from_tier_id=from_tier_id,
        to_tier=to_tier,
        reason=reason,
        note=note,
        grace_until=grace_until,
        locked_until=state.locked_until,
        effective_on=effective_on,
        at=at,
        **actor.as_fields(),
    )


def _emit(changes: Sequence[TierChange], codes: dict[int, str]) -> None:
    """One ``tier.changed`` event per change, in a fixed number of queries."""
    event_record_many(
        events=[
            EventInput(
                program_id=change.program_id,
                member_id=change.member_id,
                type=TIER_CHANGED,
                occurred_at=change.at,
                data=tier_changed_payload(
                    change,
                    from_code=codes.get(change.from_tier_id) if change.from_tier_id else None,
                    to_code=codes[change.to_tier_id],
                ),
            )
            for change in changes
        ]
    )


_STATE_FIELDS = ["tier", "since", "grace_until", "locked_until", "lifetime_tier", "changed_on", "updated_at"]


def _save_change(state: MemberTier, change: TierChange, codes: dict[int, str]) -> TierChange:
    state.save(update_fields=_STATE_FIELDS)
    change.save()
    _emit([change], codes)
    return change


# --- Qualifying activity (the contract for the earning code) ----------------------------


@dataclass(frozen=True)
class ActivityRecorded:
    """What ``activity_record`` did.

    ``created`` is False when this (member, source, reference) was already recorded (a
    retried caller): nothing was written. ``tier`` is the member's tier afterwards (None
    when the program has no tiers); ``change`` the upgrade or grace end it caused, if any.
    """

    activity: TierActivity
    created: bool
    tier: Tier | None
    change: TierChange | None


def _check_activity(
    program: Program,
    *,
    occurred_at: datetime,
    source: str,
    reference: str,
    spend: Any,
    points: Any,
    visits: Any,
) -> None:
    if not isinstance(occurred_at, datetime) or timezone.is_naive(occurred_at):
        raise InvalidActivityError("occurred_at must be an aware datetime.", field="occurred_at")
    if source not in TierActivity.Source.values:
        raise InvalidActivityError(
            f"Unknown source '{source}'; one of {', '.join(TierActivity.Source.values)}.", field="source"
        )
    if not isinstance(reference, str) or not reference.strip() or len(reference) > 100:
        raise InvalidActivityError("reference is 1 to 100 characters.", field="reference")
    if not isinstance(spend, Decimal) or not spend.is_finite():
        raise InvalidActivityError("spend must be a Decimal (never a float).", field="spend")
    quantum = money_quantum(program.currency)
    if spend != spend.quantize(quantum) or abs(spend) >= Decimal("1e13"):
        raise InvalidActivityError(
            f"spend has more decimals than {program.currency} allows, or is too large.", field="spend"
        )
    for name, value in (("points", points), ("visits", visits)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise InvalidActivityError(f"{name} must be an integer.", field=name)


@transaction.atomic
def activity_record(
    *,
    member: Member,
    occurred_at: datetime,
    source: str,
    reference: str,
    spend: Decimal = ZERO,
    points: int = 0,
    visits: int = 0,
    actor: Actor,
    locked: bool = False,
) -> ActivityRecorded:
    """Record qualifying activity for ``member`` and upgrade them at once if it crosses a
    threshold. Call it inside the transaction that books the purchase, earn or refund.

    - ``source``: a ``TierActivity.Source`` value: ``purchase``, ``refund``, ``earn``
      (points earned outside a purchase), ``reversal``, ``adjustment`` (counts only when the
      program's tier settings say so), ``visit`` or ``import``.
    - ``reference``: the receipt, order or ledger transaction id. The same
      (member, source, reference) recorded again with the same values is a no-op
      (``created=False``); with other values it raises ``ActivityReferenceConflictError``.
    - ``spend`` (program money, Decimal, at most the currency's decimals), ``points``
      (qualifying points, int) and ``visits`` (int) are signed: refunds and reversals pass
      negative values. For a refund, pass the original purchase's ``occurred_at`` so the
      reduction falls in the same window as the purchase.
    - ``occurred_at``: when it happened (offline sales keep their original time); its day
      in the program's time zone decides which windows it counts in.

    In the same transaction, the member is upgraded to the highest tier whose qualification
    thresholds are now met, or leaves grace when retention is met again. Activity never
    moves a member down: refunds lower the metrics and a downgrade waits for the evaluation
    and the grace period. Raises ``InvalidActivityError`` (400) for bad values.

    Lock order: the member's tier row is locked here (concurrent calls for one member
    queue), and then, on a change, the member's event counter. Call this *before* writing
    your own events for the member in the same transaction (e.g. ``points.earned``):
    everywhere the tier row is locked before the event counter, so the evaluation and a
    purchase can never deadlock.

    ``locked``: the caller has already locked the member's tier row in this transaction and
    given them the default tier where the program has one
    (``points.earning.qualifying.lock_members``), and ``member.status`` is current: neither
    the default tier nor the member's status is looked up again (two queries less per earn).
    """
    program = member.program
    _check_activity(
        program,
        occurred_at=occurred_at,
        source=source,
        reference=reference,
        spend=spend,
        points=points,
        visits=visits,
    )
    # A terminated member's activity is kept (late refunds) but changes no tier.
    terminated = (member.status if locked else _current_status(member)) == Member.Status.TERMINATED
    state = _state_for_update(member, create=not (terminated or locked))
    values = {"occurred_at": occurred_at, "spend": spend, "points": points, "visits": visits}
    activity = TierActivity(
        program_id=member.program_id,
        member_id=member.pk,
        occurred_on=occurred_at.astimezone(program.tz).date(),
        source=source,
        reference=reference,
        **values,
        **actor.as_fields(),
    )
    if not _insert_activity(activity):
        existing = TierActivity.objects.get(member_id=member.pk, source=source, reference=reference)
        if any(getattr(existing, name) != value for name, value in values.items()):
            raise ActivityReferenceConflictError(
                f"{source} '{reference}' was already recorded for this member with other values."
            ) from None
        return ActivityRecorded(existing, False, _tier_of(state), None)
    change = None
    if state is not None and not terminated:
        change = _upgrade_if_qualified(state, program, actor)
    return ActivityRecorded(activity, True, _tier_of(state), change)


@functools.cache
def _activity_insert() -> tuple[str, list]:
    meta = TierActivity._meta
    fields = [field for field in meta.concrete_fields if not field.primary_key]
    quote = connection.ops.quote_name
    unique = ", ".join(quote(meta.get_field(name).column) for name in ACTIVITY_UNIQUE)
    sql = (
        f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(field.column) for field in fields)}) "
        f"VALUES ({', '.join(['%s'] * len(fields))}) "
        f"ON CONFLICT ({unique}) DO NOTHING RETURNING {quote(meta.pk.column)}"
    )
    return sql, fields


def _insert_activity(activity: TierActivity) -> bool:
    """Insert ``activity`` unless its (member, source, reference) is already recorded: True
    (and its pk set) when inserted. ``ON CONFLICT DO NOTHING`` instead of catching the
    IntegrityError, which would need a savepoint (two more round trips) on every purchase,
    earn and refund. PostgreSQL and SQLite (3.35+) both speak this statement."""
    sql, fields = _activity_insert()
    params = [field.get_db_prep_save(field.pre_save(activity, add=True), connection) for field in fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return False
    activity.pk = row[0]
    activity._state.adding = False
    activity._state.db = connection.alias
    return True


def _current_status(member: Member) -> str:
    # The caller's object may predate a status change made in this transaction.
    return Member.objects.filter(pk=member.pk).values_list("status", flat=True).get()


def _tier_of(state: MemberTier | None) -> Tier | None:
    return state.tier if state is not None else None


def _upgrade_if_qualified(state: MemberTier, program: Program, actor: Actor) -> TierChange | None:
    return _upgrade_many([state], program, actor).get(state.member_id)


def _upgrade_many(states: Sequence[MemberTier], program: Program, actor: Actor) -> dict[int, TierChange]:
    """Upgrade each member (their tier row locked) whose live metrics meet a higher tier's
    thresholds, or end their grace; the tiers and the metrics are read once for all."""
    if not states:
        return {}
    tiers = {tier.pk: tier for tier in Tier.objects.filter(program=program)}
    for state in states:
        if not MemberTier.tier.is_cached(state) and state.tier_id in tiers:
            state.tier = tiers[state.tier_id]  # the caller reads it: spare the lazy query
    ladder = rules.Ladder.of(tiers.values())
    today = local_today(program)
    metrics = rules.window_metrics(
        TierActivity.objects.filter(member_id__in=[state.member_id for state in states]),
        ladder.windows,
        on=today,
        live=True,
        tz=program.tz,
        adjustments_qualify=adjustments_qualify(program_id=program.pk),
    )
    changes = {}
    codes = {pk: tier.code for pk, tier in tiers.items()}
    for state in states:
        decision = rules.decide(
            ladder, _snapshot(state), metrics.get(state.member_id, {}), on=today, live=True
        )
        if decision is None:
            continue
        now = timezone.now()
        change = _change_state(
            state,
            reason=decision.reason,
            to_tier=tiers[decision.to_tier_id],
            effective_on=today,
            at=now,
            since=now,
            actor=actor,
        )
        changes[state.member_id] = _save_change(state, change, codes)
    return changes


@dataclass(frozen=True)
class Activity:
    """One qualifying activity for ``activity_record_many`` (fields as ``activity_record``)."""

    member: Member
    occurred_at: datetime
    source: str
    reference: str
    spend: Decimal = ZERO
    points: int = 0
    visits: int = 0


@transaction.atomic
def activity_record_many(*, program: Program, activities: Sequence[Activity], actor: Actor) -> None:
    """``activity_record(locked=True)`` for many activities of ``program``'s members at once
    (bulk imports): the caller has locked the members' tier rows in this transaction and
    given them the default tier (``points.earning.qualifying.lock_members``), and every
    (member, source, reference) is new (e.g. a ledger transaction created in this
    transaction). The rows are inserted together, then each member's upgrade is checked
    once, after all of their activities. For activities that only raise the metrics
    (credits), the member ends on the tier that a check after each would reach, with one
    ``tier.changed`` for the whole batch."""
    if not activities:
        return
    rows = []
    for item in activities:
        if item.member.program_id != program.pk:
            raise ValueError("Every activity must be of a member of the program.")
        _check_activity(
            program,
            occurred_at=item.occurred_at,
            source=item.source,
            reference=item.reference,
            spend=item.spend,
            points=item.points,
            visits=item.visits,
        )
        rows.append(
            TierActivity(
                program_id=program.pk,
                member_id=item.member.pk,
                occurred_at=item.occurred_at,
                occurred_on=item.occurred_at.astimezone(program.tz).date(),
                source=item.source,
                reference=item.reference,
                spend=item.spend,
                points=item.points,
                visits=item.visits,
                **actor.as_fields(),
            )
        )
    TierActivity.objects.bulk_create(rows)
    # A terminated member's activity is kept but changes no tier (as in activity_record).
    member_ids = sorted(
        {item.member.pk for item in activities if item.member.status != Member.Status.TERMINATED}
    )
    states = list(
        MemberTier.objects.select_for_update().filter(member_id__in=member_ids).order_by("member_id")
    )
    _upgrade_many(states, program, actor)


# --- Manual assignment ------------------------------------------------------------------


@transaction.atomic
def member_tier_assign(
    *,
    member: Member,
    tier: Tier,
    reason: str,
    actor: Actor,
    locked_until: date | None = None,
    lifetime: bool = False,
) -> TierChange:
    """Put a member on ``tier`` by hand (staff or API), with the reason recorded.

    ``locked_until``: the member is not moved down before that day. ``lifetime``: the
    member never goes below this tier. Both replace what an earlier manual assignment set;
    grace ends. Upgrades by activity still happen.
    """
    if tier.program_id != member.program_id:
        raise UnknownTierError("The tier belongs to another program.", field="tier")
    if _current_status(member) == Member.Status.TERMINATED:
        raise MemberTerminatedError(f"Member {member.number} is terminated.")
    if not reason or not reason.strip():
        raise TierAssignmentError("Give the reason for the assignment.", field="reason")
    program = member.program
    today = local_today(program)
    if locked_until is not None and locked_until <= today:
        raise TierAssignmentError("locked_until must be a day after today.", field="locked_until")
    state = _state_for_update(member)
    if state is None:  # cannot happen while the program has a tier; kept for safety
        state = MemberTier(member_id=member.pk, program_id=member.program_id, tier=tier, since=timezone.now())
        state.save()
    codes = dict(Tier.objects.filter(program_id=member.program_id).values_list("pk", "code"))
    now = timezone.now()
    change = _change_state(
        state,
        reason=Reason.MANUAL,
        to_tier=tier,
        effective_on=today,
        at=now,
        since=now,
        actor=actor,
        note=reason.strip(),
        locked_until=locked_until,
        lifetime_tier=tier if lifetime else None,
    )
    return _save_change(state, change, codes)


@transaction.atomic
def member_tier_erase(*, member: Member, actor: Actor) -> None:
    """GDPR erasure (``member_erased`` hook): the notes staff wrote on the member's manual
    tier changes may name the person; they are blanked. Tiers, history and activity stay
    (they hold no personal data and keep the ledger of benefits auditable)."""
    TierChange.objects.filter(member_id=member.pk).exclude(note="").update(note="")


# --- The evaluation ---------------------------------------------------------------------


@contextmanager
def _evaluation_lock(program: Program) -> Iterator[None]:
    if connection.vendor != "postgresql":  # SQLite has one writer at a time anyway
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [_EVALUATION_LOCK_NAMESPACE, program.pk])
        acquired = cursor.fetchone()[0]
    if not acquired:
        raise EvaluationRunningError(f"An evaluation of program '{program.code}' is already running.")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [_EVALUATION_LOCK_NAMESPACE, program.pk])


def tiers_evaluate(
    *,
    program: Program,
    actor: Actor,
    on: date | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    on_start: Callable[[int], Any] | None = None,
    on_batch: Callable[[int], Any] | None = None,
) -> TierEvaluation:
    """Evaluate every member of ``program`` as of the start of day ``on`` (program-local;
    default today): activity before ``on`` counts. Grace starts, ends and downgrades happen
    here (and upgrades that activity did not trigger, e.g. after a threshold was lowered).

    Members without a tier first get the default one. Then members are taken in batches of
    ``batch_size`` (by id): their metrics are summed by one grouped query per batch, the
    decisions made in memory, and the changes of a batch written in one transaction (rows
    re-checked under lock; a member changed meanwhile is left alone). Not one transaction
    on purpose: a large program would hold locks for the whole run. Members changed on or
    after ``on`` are skipped, so running the same day again changes nothing.

    ``on_start(total)`` and ``on_batch(members_done)`` report progress. Raises
    ``EvaluationRunningError`` when another evaluation of the program is running.
    """
    today = local_today(program)
    on = on or today
    if on > today:
        raise TierAssignmentError(f"Cannot evaluate a future day ({on}; today is {today}).", field="date")
    with _evaluation_lock(program):
        run = TierEvaluation.objects.create(program=program, as_of=on, triggered_by=actor.label[:100])
        try:
            _evaluate(run, program, actor, on, batch_size, on_start, on_batch)
        except Exception as error:
            run.status = TierEvaluation.Status.FAILED
            run.error = f"{type(error).__name__}: {error}"[:2000]
            run.finished_at = timezone.now()
            run.save()
            raise
        run.status = TierEvaluation.Status.FINISHED
        run.finished_at = timezone.now()
        run.save()
    return run


def _evaluate(run, program, actor, on, batch_size, on_start, on_batch) -> None:
    tiers = {tier.pk: tier for tier in Tier.objects.filter(program=program)}
    if not tiers:
        if on_start:
            on_start(0)
        return
    ladder = rules.Ladder.of(tiers.values())
    counts_adjustments = adjustments_qualify(program_id=program.pk)
    run.assigned = member_tiers_fill_missing(program=program, actor=actor)
    states = MemberTier.objects.filter(program=program)
    if on_start:
        on_start(states.count())
    last_id = 0
    while True:
        ids = list(
            states.filter(member_id__gt=last_id)
            .order_by("member_id")
            .values_list("member_id", flat=True)[:batch_size]
        )
        if not ids:
            break
        _evaluate_batch(run, program, actor, on, ladder, tiers, counts_adjustments, ids[0], ids[-1])
        last_id = ids[-1]
        run.save()
        if on_batch:
            on_batch(len(ids))


def _evaluate_batch(run, program, actor, on, ladder, tiers, counts_adjustments, first_id, last_id) -> None:
    in_batch = {"member_id__gte": first_id, "member_id__lte": last_id}
    # Terminated members as a subquery on the same id range: a join would make PostgreSQL
    # scan the whole member table for each batch.
    terminated = Member.objects.filter(
        pk__gte=first_id, pk__lte=last_id, status=Member.Status.TERMINATED
    ).values("pk")
    states = (
        MemberTier.objects.filter(program=program, **in_batch)
        .filter(Q(changed_on__isnull=True) | Q(changed_on__lt=on))
        .exclude(member_id__in=terminated)
        .values_list("member_id", "tier_id", "grace_until", "locked_until", "lifetime_tier_id")
    )
    layout = rules.MetricLayout.of(ladder.windows)
    rows = rules.metric_rows(
        TierActivity.objects.filter(program=program, **in_batch),
        layout,
        on=on,
        live=False,
        tz=program.tz,
        adjustments_qualify=counts_adjustments,
    )
    screen = rules.Screen(ladder, layout)
    zero = layout.zero_row()
    decisions: dict[int, tuple[rules.StateSnapshot, rules.Decision]] = {}
    looked_at = 0
    for member_id, tier_id, grace_until, locked_until, lifetime_tier_id in states:
        looked_at += 1
        row = rows.get(member_id, zero)
        if not screen(tier_id, row, grace_until):
            continue
        state = rules.StateSnapshot(tier_id, grace_until, locked_until, lifetime_tier_id)
        decision = rules.decide(ladder, state, layout.window_metrics(row), on=on, live=False)
        if decision is not None:
            decisions[member_id] = (state, decision)
    run.members += looked_at
    if decisions:
        _apply_decisions(run, program, actor, on, tiers, decisions)


_COUNTERS = {
    Reason.UPGRADE: "upgrades",
    Reason.DOWNGRADE: "downgrades",
    Reason.GRACE_STARTED: "grace_started",
    Reason.GRACE_ENDED: "grace_ended",
}


@transaction.atomic
def _apply_decisions(run, program, actor, on, tiers, decisions) -> None:
    """Write a batch's decisions: rows re-read under lock (a member changed since the batch
    was read is left alone), then one UPDATE per distinct change, the history rows and the
    events, each in one statement."""
    locked = (
        MemberTier.objects.select_for_update()
        .filter(member_id__in=list(decisions))
        .order_by("member_id")
        .values_list("member_id", "tier_id", "grace_until", "locked_until", "lifetime_tier_id", "changed_on")
    )
    current = {row[0]: row[1:] for row in locked}
    at = timezone.now()
    since = start_of_day(on, program)
    updates: dict[tuple, list[int]] = defaultdict(list)
    changes = []
    for member_id, (snapshot, decision) in decisions.items():
        row = current.get(member_id)
        if row is None or rules.StateSnapshot(*row[:4]) != snapshot or (row[4] is not None and row[4] >= on):
            continue
        # As _change_state: a new tier resets "since"; grace is what the decision says.
        fields = (("grace_until", decision.grace_until),)
        if decision.to_tier_id != snapshot.tier_id:
            fields += (("tier_id", decision.to_tier_id), ("since", since))
        updates[fields].append(member_id)
        changes.append(
            TierChange(
                program_id=program.pk,
                member_id=member_id,
                from_tier_id=snapshot.tier_id,
                to_tier_id=decision.to_tier_id,
                reason=decision.reason,
                grace_until=decision.grace_until,
                locked_until=snapshot.locked_until,
                effective_on=on,
                at=at,
                **actor.as_fields(),
            )
        )
        counter = _COUNTERS[decision.reason]
        setattr(run, counter, getattr(run, counter) + 1)
    run.skipped += len(decisions) - len(changes)
    for fields, member_ids in updates.items():
        MemberTier.objects.filter(member_id__in=member_ids).update(
            **dict(fields), changed_on=on, updated_at=at
        )
    TierChange.objects.bulk_create(changes)
    _emit(changes, {pk: tier.code for pk, tier in tiers.items()})
