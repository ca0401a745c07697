"""Writes for rewards: the catalog, redemptions and their cancellation, vouchers (issue,
use, cancel, expiry, campaign batches), and the GDPR erasure hook.

Balances change only through the points services (``points_redeem``, ``points_earn``,
``points_reverse``), inside the same database transaction as the redemption.

Locks, always in this order, so that concurrent writers wait instead of deadlocking: the
member row (serialises a member's redemptions, so per-member limits hold), then a voucher
row, then the member's points accounts (taken by the points services), then the reward row
(only by the conditional UPDATE that takes or returns a unit of stock).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from members.models import Label, Member
from membership_site.actors import Actor
from membership_site.errors import InvalidInputError
from points import services as points_services
from points.models import Account, Currency
from programs.currencies import MINOR_UNITS
from programs.models import Location, Program
from tiers.models import Tier
from webhooks.services import EventInput, event_record_many

from . import codes, events
from .errors import (
    AddressRequiredError,
    CurrencyNotAcceptedError,
    DuplicateRedemptionReferenceError,
    InvalidRewardError,
    InvalidVoucherBatchError,
    MemberLimitReachedError,
    NotEligibleError,
    OutOfStockError,
    RedemptionNotCancellableError,
    RewardCodeTakenError,
    RewardInactiveError,
    RewardNotAvailableError,
    VoucherNotCancellableError,
    VoucherNotUsableError,
)
from .models import Redemption, Reward, RewardCost, Shipment, Voucher, VoucherBatch
from .selectors import BasketInput, member_context, reward_for_member, reward_reasons, voucher_check

K = Reward.Kind
VS = Voucher.Status

# Fields of a reward that reward_create / reward_update take besides code, the costs and
# the eligible tiers, labels and locations.
REWARD_FIELDS = (
    "name",
    "description",
    "image_url",
    "kind",
    "sort_order",
    "stock",
    "limit_total",
    "limit_per_period",
    "limit_period",
    "valid_from",
    "valid_until",
    "is_active",
    "tier_tags",
    "voucher_amount",
    "voucher_percent",
    "sku",
    "voucher_min_spend",
    "voucher_skus",
    "voucher_valid_days",
    "target_currency",
    "target_points",
)
MAX_POINTS = points_services.MAX_POINTS
MAX_BATCH = 100_000
# The tiers' reward tags are slugs (tiers.services).
_TAG = re.compile(r"[-a-zA-Z0-9_]{1,50}")
_CODE_ATTEMPTS = 5


# --- Catalog ------------------------------------------------------------------------------


def _check_money(program: Program, value: Decimal | None, field: str) -> None:
    if value is None:
        return
    if value < 0:
        raise InvalidRewardError("Amounts cannot be negative.", field=field)
    decimals = MINOR_UNITS[program.currency]
    if value != value.quantize(Decimal(1).scaleb(-decimals)):
        raise InvalidRewardError(f"{program.currency} amounts have at most {decimals} decimals.", field=field)


def reward_check(*, reward: Reward, costs: dict[Currency, int] | None) -> None:
    """Refuse definitions that do not fit together (no database access beyond the
    objects given). ``costs`` None: unchanged."""
    program = reward.program
    if reward.kind not in K.values:
        raise InvalidRewardError(f"Unknown kind '{reward.kind}'.", field="kind")
    if costs is not None:
        if not costs:
            raise InvalidRewardError("A reward costs points in at least one currency.", field="costs")
        for currency, points in costs.items():
            if currency.program_id != program.pk:
                raise InvalidRewardError(f"No currency '{currency.code}' in this program.", field="costs")
            if not isinstance(points, int) or not 0 < points <= MAX_POINTS:
                raise InvalidRewardError("Costs are whole positive numbers of points.", field="costs")
    if reward.stock is not None and reward.stock < 0:
        raise InvalidRewardError("Stock cannot be negative.", field="stock")
    if reward.limit_per_period is not None and not reward.limit_period:
        raise InvalidRewardError("A per-period limit needs its period.", field="limit_period")
    if reward.limit_period and reward.limit_period not in Reward.Period.values:
        raise InvalidRewardError(f"Unknown period '{reward.limit_period}'.", field="limit_period")
    if reward.valid_from and reward.valid_until and reward.valid_from >= reward.valid_until:
        raise InvalidRewardError("valid_until must be after valid_from.", field="valid_until")
    for name in ("voucher_amount", "voucher_min_spend"):
        _check_money(program, getattr(reward, name), name)
    if reward.kind == K.AMOUNT_VOUCHER and not reward.voucher_amount:
        raise InvalidRewardError("An amount voucher needs voucher_amount > 0.", field="voucher_amount")
    if reward.kind == K.PERCENT_VOUCHER and not (
        reward.voucher_percent is not None and 0 < reward.voucher_percent <= 100
    ):
        raise InvalidRewardError(
            "A percent voucher needs voucher_percent in (0, 100].", field="voucher_percent"
        )
    if reward.kind == K.FREE_ITEM and not reward.sku:
        raise InvalidRewardError("A free item needs its SKU.", field="sku")
    tags = reward.tier_tags
    if not isinstance(tags, list) or not all(isinstance(tag, str) and _TAG.fullmatch(tag) for tag in tags):
        raise InvalidRewardError(
            "Tier tags are a list of short codes (letters, digits, - and _; up to 50).", field="tier_tags"
        )
    if len(tags) != len(set(tags)):
        raise InvalidRewardError("A tier tag is given twice.", field="tier_tags")
    if not isinstance(reward.voucher_skus, list) or not all(
        isinstance(sku, str) and sku for sku in reward.voucher_skus
    ):
        raise InvalidRewardError("voucher_skus is a list of SKUs.", field="voucher_skus")
    if reward.kind == K.POINTS_CONVERSION:
        target = reward.target_currency
        if target is None or target.program_id != program.pk:
            raise InvalidRewardError(
                "A conversion needs a target currency of the program.", field="target_currency"
            )
        if not reward.target_points or not 0 < reward.target_points <= MAX_POINTS:
            raise InvalidRewardError("A conversion needs target_points > 0.", field="target_points")
        if costs is not None and target in costs:
            raise InvalidRewardError(
                "A conversion cannot cost its own target currency.", field="target_currency"
            )


def _in_program(program: Program, objects: Iterable[Any] | None, field: str) -> list[Any] | None:
    if objects is None:
        return None
    objects = list(objects)
    if any(obj.program_id != program.pk for obj in objects):
        raise InvalidRewardError("Every item must belong to the reward's program.", field=field)
    return objects


def _set_relations(
    reward: Reward,
    *,
    costs: dict[Currency, int] | None,
    eligible_tiers: Sequence[Tier] | None,
    eligible_labels: Sequence[Label] | None,
    locations: Sequence[Location] | None,
) -> None:
    if costs is not None:
        keep = [currency.pk for currency in costs]
        RewardCost.objects.filter(reward=reward).exclude(currency_id__in=keep).delete()
        existing = {cost.currency_id: cost for cost in RewardCost.objects.filter(reward=reward)}
        for currency, points in costs.items():
            cost = existing.get(currency.pk)
            if cost is None:
                RewardCost.objects.create(reward=reward, currency=currency, points=points)
            elif cost.points != points:
                cost.points = points
                cost.save(update_fields=["points"])
    for name, objects in (
        ("eligible_tiers", eligible_tiers),
        ("eligible_labels", eligible_labels),
        ("locations", locations),
    ):
        if objects is not None:
            getattr(reward, name).set(objects)


@transaction.atomic
def reward_create(
    *,
    program: Program,
    code: str,
    name: str,
    kind: str,
    costs: dict[Currency, int],
    actor: Actor,
    eligible_tiers: Sequence[Tier] = (),
    eligible_labels: Sequence[Label] = (),
    locations: Sequence[Location] = (),
    **fields: Any,
) -> Reward:
    unknown = set(fields) - set(REWARD_FIELDS)
    if unknown:
        raise TypeError(f"Unknown reward fields: {sorted(unknown)}")
    if Reward.objects.filter(program=program, code=code).exists():
        raise RewardCodeTakenError(f"Reward '{code}' already exists.", field="code")
    reward = Reward(program=program, code=code, name=name, kind=kind, **fields)
    reward_check(reward=reward, costs=costs)
    tiers = _in_program(program, eligible_tiers, "eligible_tiers")
    labels = _in_program(program, eligible_labels, "eligible_labels")
    where = _in_program(program, locations, "locations")
    try:
        with transaction.atomic():
            reward.save()
    except IntegrityError:
        raise RewardCodeTakenError(f"Reward '{code}' already exists.", field="code") from None
    _set_relations(reward, costs=costs, eligible_tiers=tiers, eligible_labels=labels, locations=where)
    return reward


@transaction.atomic
def reward_update(
    *,
    reward: Reward,
    actor: Actor,
    costs: dict[Currency, int] | None = None,
    eligible_tiers: Sequence[Tier] | None = None,
    eligible_labels: Sequence[Label] | None = None,
    locations: Sequence[Location] | None = None,
    **changes: Any,
) -> Reward:
    """Change only what is given (relations: None = unchanged). Changing the stock sets the
    units left."""
    unknown = set(changes) - set(REWARD_FIELDS)
    if unknown:
        raise TypeError(f"Unknown reward fields: {sorted(unknown)}")
    reward = Reward.objects.select_for_update().select_related("program").get(pk=reward.pk)
    for name, value in changes.items():
        setattr(reward, name, value)
    if costs is None and "target_currency" in changes:
        costs = {cost.currency: cost.points for cost in reward.costs.select_related("currency")}
    reward_check(reward=reward, costs=costs)
    program = reward.program
    tiers = _in_program(program, eligible_tiers, "eligible_tiers")
    labels = _in_program(program, eligible_labels, "eligible_labels")
    where = _in_program(program, locations, "locations")
    reward.save()
    _set_relations(reward, costs=costs, eligible_tiers=tiers, eligible_labels=labels, locations=where)
    return reward


# --- Redemption -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShippingAddress:
    name: str
    address_line1: str
    city: str
    country: str
    address_line2: str = ""
    postal_code: str = ""
    region: str = ""
    phone: str = ""


@dataclass(frozen=True)
class RedemptionResult:
    redemption: Redemption
    balance: Account
    created: bool = True


def _lock_member(member: Member) -> Member:
    # FOR NO KEY UPDATE: other transactions may still insert rows pointing at the member.
    return Member.objects.select_for_update(no_key=True).select_related("program").get(pk=member.pk)


def _refuse(reward: Reward, reasons: list[str]) -> None:
    """Turn the first blocking reason into its error (insufficient points are left to the
    points service, which says how many are available)."""
    if "inactive" in reasons:
        raise RewardInactiveError(f"Reward '{reward.code}' is switched off.")
    for reason in ("not_yet_valid", "expired"):
        if reason in reasons:
            raise RewardNotAvailableError(
                f"Reward '{reward.code}' is {reason.replace('_', ' ')}.",
                reason=reason,
                valid_from=reward.valid_from,
                valid_until=reward.valid_until,
            )
    not_eligible = [reason for reason in reasons if reason.startswith("not_eligible")]
    if not_eligible:
        raise NotEligibleError(f"The member cannot redeem '{reward.code}'.", reasons=not_eligible)
    if "out_of_stock" in reasons:
        raise OutOfStockError(f"Reward '{reward.code}' is out of stock.")
    if "limit_reached" in reasons:
        raise MemberLimitReachedError(
            f"The member has redeemed '{reward.code}' as often as allowed.",
            limit_total=reward.limit_total,
            limit_per_period=reward.limit_per_period,
            limit_period=reward.limit_period or None,
            redeemed_total=reward.used_total,
            redeemed_in_period=reward.used_in_period,
        )


def _choose_cost(reward: Reward, currency: Currency | None) -> RewardCost:
    costs = [cost for cost in reward.costs.all() if cost.currency.is_active]
    accepted = [cost.currency.code for cost in costs]
    if currency is not None:
        for cost in costs:
            if cost.currency_id == currency.pk:
                return cost
        raise CurrencyNotAcceptedError(
            f"Reward '{reward.code}' costs {', '.join(accepted) or 'nothing payable'}.",
            field="currency",
            accepted=accepted,
        )
    if len(costs) == 1:
        return costs[0]
    for cost in costs:
        if cost.currency.is_default:
            return cost
    raise CurrencyNotAcceptedError(
        f"Reward '{reward.code}' can be paid in {', '.join(accepted)}: name the currency.",
        field="currency",
        accepted=accepted,
    )


def _end_of_local_day(now: datetime, days: int, program: Program) -> datetime:
    day = now.astimezone(program.tz).date() + timedelta(days=days + 1)
    return datetime.combine(day, time.min, tzinfo=program.tz).astimezone(UTC)


def _issue_voucher(reward: Reward, redemption: Redemption, now: datetime) -> Voucher:
    value_kind = {
        K.AMOUNT_VOUCHER: Voucher.Value.AMOUNT,
        K.PERCENT_VOUCHER: Voucher.Value.PERCENT,
        K.FREE_ITEM: Voucher.Value.FREE_ITEM,
    }[reward.kind]
    valid_until = None
    if reward.voucher_valid_days is not None:
        valid_until = _end_of_local_day(now, reward.voucher_valid_days, reward.program)
    voucher = _insert_voucher(
        Voucher(
            program_id=reward.program_id,
            member_id=redemption.member_id,
            redemption=redemption,
            value_kind=value_kind,
            amount=reward.voucher_amount if value_kind == Voucher.Value.AMOUNT else None,
            percent=reward.voucher_percent if value_kind == Voucher.Value.PERCENT else None,
            sku=reward.sku if value_kind == Voucher.Value.FREE_ITEM else "",
            min_spend=reward.voucher_min_spend,
            skus=list(reward.voucher_skus),
            valid_until=valid_until,
            issued_at=now,
        )
    )
    locations = list(reward.locations.all())
    if locations:
        voucher.locations.add(*locations)
    voucher.location_codes = sorted(location.code for location in locations)
    return voucher


def _insert_voucher(voucher: Voucher) -> Voucher:
    """Save with a fresh code; a (vanishingly unlikely) clash draws another."""
    for _attempt in range(_CODE_ATTEMPTS):
        voucher.code = codes.generate_code()
        try:
            with transaction.atomic():
                voucher.save()
            return voucher
        except IntegrityError as error:
            if "voucher_code_unique_in_program" not in str(error):
                raise
            voucher.pk = None
    raise RuntimeError("Could not draw a unique voucher code.")


@transaction.atomic
def reward_redeem(
    *,
    member: Member,
    reward: Reward,
    actor: Actor,
    currency: Currency | None = None,
    reference: str = "",
    location: Location | None = None,
    address: ShippingAddress | None = None,
) -> RedemptionResult:
    """Redeem ``reward`` for ``member`` in one transaction: debit the points, take a unit
    of stock and issue the voucher (or record the shipment, or convert the points). Any
    refusal leaves nothing done. The unit of stock is taken last (a conditional UPDATE),
    to hold the reward row's lock as briefly as possible. A ``reference`` seen before returns the original
    redemption (``created=False``)."""
    if reward.program_id != member.program_id:
        raise InvalidInputError("The reward is not in the member's program.", field="reward")
    if reward.kind == K.PHYSICAL and address is None:
        raise AddressRequiredError("A physical reward needs a shipping address.", field="address")
    member = _lock_member(member)
    if reference:
        earlier = Redemption.objects.filter(program_id=member.program_id, reference=reference).first()
        if earlier is not None:
            if earlier.member_id != member.pk or earlier.reward_id != reward.pk:
                raise DuplicateRedemptionReferenceError(
                    f"Reference '{reference}' was used for redemption {earlier.pk}.", redemption_id=earlier.pk
                )
            return RedemptionResult(earlier, _account_of(earlier), created=False)
    # The member's status first (the points service's own check and errors), so that a
    # suspended member hears why whatever the state of the reward.
    points_services.check_member(member, spending=True)
    now = timezone.now()
    ctx = member_context(member=member, now=now)
    annotated = reward_for_member(reward=reward, ctx=ctx)
    _refuse(annotated, reward_reasons(annotated, ctx))
    cost = _choose_cost(annotated, currency)
    paid = points_services.points_redeem(
        member=member,
        amount=cost.points,
        currency=cost.currency,
        location=location,
        description=f"Reward {annotated.code}",
        metadata={"reward": annotated.code},
        actor=actor,
    )
    redemption = Redemption(
        program_id=member.program_id,
        reward=annotated,
        member=member,
        currency=cost.currency,
        points=cost.points,
        reference=reference or "",
        location=location,
        points_transaction=paid.transaction,
        redeemed_at=now,
        **actor.as_fields(),
    )
    try:
        # Only a reference can clash (another member's concurrent request with it).
        with transaction.atomic(savepoint=bool(reference)):
            redemption.save()
    except IntegrityError:
        raise DuplicateRedemptionReferenceError(
            f"Reference '{reference}' was used for another redemption."
        ) from None
    balance = paid.account
    voucher = None
    if annotated.kind in (K.AMOUNT_VOUCHER, K.PERCENT_VOUCHER, K.FREE_ITEM):
        voucher = _issue_voucher(annotated, redemption, now)
    elif annotated.kind == K.PHYSICAL:
        Shipment.objects.create(redemption=redemption, **address.__dict__)
    else:
        converted = points_services.points_earn(
            member=member,
            amount=annotated.target_points,
            currency=annotated.target_currency,
            description=f"Converted by reward {annotated.code}",
            metadata={"reward": annotated.code, "redemption_id": redemption.pk},
            actor=actor,
        )
        redemption.conversion_transaction = converted.transaction
        redemption.save(update_fields=["conversion_transaction"])
    emitted = [("reward.redeemed", {"redemption": events.redemption_payload(redemption, voucher)})]
    if voucher is not None:
        emitted.append(
            (
                "voucher.issued",
                {
                    "voucher": events.voucher_payload(
                        voucher, voucher.location_codes, currency=annotated.program.currency
                    )
                },
            )
        )
    events.emit(member.program_id, member.pk, emitted)
    if annotated.stock is not None:
        # Last, so that the reward row (every redeemer's hot spot) stays locked only until
        # the commit; no unit left: the whole redemption rolls back.
        taken = Reward.objects.filter(pk=annotated.pk, stock__gt=0).update(stock=F("stock") - 1)
        if not taken:
            raise OutOfStockError(f"Reward '{annotated.code}' is out of stock.")
    return RedemptionResult(redemption, balance)


def _account_of(redemption: Redemption) -> Account:
    return Account.objects.select_related("currency").get(
        member_id=redemption.member_id, currency_id=redemption.currency_id
    )


@transaction.atomic
def redemption_cancel(*, redemption: Redemption, reason: str, actor: Actor) -> RedemptionResult:
    """Cancel a redemption whose voucher is unused (or whose item is not shipped yet, or
    whose converted points are still there): the points come back through a reversal of
    the redemption (into the lots they came from, with their original expiry) and the
    unit goes back to stock."""
    if not (reason or "").strip():
        raise InvalidInputError("A cancellation needs a reason.", field="reason")
    member = _lock_member(redemption.member)
    redemption = (
        Redemption.objects.select_for_update(of=("self",))
        .select_related("reward__program", "currency", "points_transaction", "conversion_transaction")
        .get(pk=redemption.pk)
    )
    if redemption.status != Redemption.Status.COMPLETED:
        raise RedemptionNotCancellableError(
            f"Redemption {redemption.pk} is {redemption.status}.", redemption_status=redemption.status
        )
    voucher = Voucher.objects.select_for_update().filter(redemption=redemption).first()
    if voucher is not None and voucher.status != VS.ISSUED:
        raise RedemptionNotCancellableError(
            f"The voucher of redemption {redemption.pk} is {voucher.status}.", voucher_status=voucher.status
        )
    shipment = Shipment.objects.select_for_update().filter(redemption=redemption).first()
    if shipment is not None and shipment.status != Shipment.Status.PENDING:
        raise RedemptionNotCancellableError(
            f"The item of redemption {redemption.pk} is {shipment.status}.", shipment_status=shipment.status
        )
    reason = reason.strip()
    if redemption.conversion_transaction is not None:
        points_services.points_reverse(
            transaction=redemption.conversion_transaction, reason=reason, actor=actor
        )
    reversal = points_services.points_reverse(
        transaction=redemption.points_transaction, reason=reason, actor=actor
    )
    now = timezone.now()
    if voucher is not None:
        _close_voucher(voucher, VS.CANCELLED, reason, now)
    if shipment is not None:
        shipment.status = Shipment.Status.CANCELLED
        shipment.save(update_fields=["status"])
    Reward.objects.filter(pk=redemption.reward_id, stock__isnull=False).update(stock=F("stock") + 1)
    redemption.status = Redemption.Status.CANCELLED
    redemption.cancelled_at = now
    redemption.cancel_reason = reason
    redemption.reversal_transaction = reversal.transaction
    redemption.save(update_fields=["status", "cancelled_at", "cancel_reason", "reversal_transaction"])
    emitted = [
        ("reward.cancelled", {"redemption": events.redemption_payload(redemption, voucher), "reason": reason})
    ]
    if voucher is not None:
        payload = events.voucher_payload(voucher, currency=redemption.reward.program.currency)
        emitted.append(("voucher.cancelled", {"voucher": payload, "reason": reason}))
    events.emit(member.program_id, member.pk, emitted)
    return RedemptionResult(redemption, reversal.account)


# --- Vouchers -----------------------------------------------------------------------------------


def _close_voucher(voucher: Voucher, status: str, reason: str, now: datetime) -> None:
    voucher.status = status
    voucher.closed_reason = reason
    voucher.closed_at = now
    voucher.save(update_fields=["status", "closed_reason", "closed_at"])


@dataclass(frozen=True)
class VoucherUseResult:
    voucher: Voucher
    created: bool = True


@transaction.atomic
def voucher_use(
    *, voucher: Voucher, reference: str, basket: BasketInput, actor: Actor, location: Location | None = None
) -> VoucherUseResult:
    """Use a voucher once, for the purchase ``reference``. The voucher row is locked: of
    two tills using it at once, one succeeds and the other gets ``voucher_not_usable``
    (``used``). Using it again with the same reference returns the first use."""
    if not (reference or "").strip():
        raise InvalidInputError("The purchase reference is required.", field="reference")
    voucher = Voucher.objects.select_for_update().get(pk=voucher.pk)
    if voucher.status == VS.USED and voucher.used_reference == reference:
        return VoucherUseResult(voucher, created=False)
    check = voucher_check(voucher=voucher, basket=basket)
    if check.reasons:
        raise VoucherNotUsableError(
            f"Voucher {codes.format_code(voucher.code)} cannot be used: {', '.join(check.reasons)}.",
            reasons=check.reasons,
            voucher_status=voucher.status,
        )
    if check.unchecked:
        field = check.unchecked[0]
        raise InvalidInputError(f"This voucher has a condition on '{field}': send it.", field=field)
    now = timezone.now()
    voucher.status = VS.USED
    voucher.used_at = now
    voucher.used_reference = reference
    voucher.used_location = location
    voucher.save(update_fields=["status", "used_at", "used_reference", "used_location"])
    events.emit(
        voucher.program_id,
        voucher.member_id,
        [
            (
                "voucher.used",
                {
                    "voucher": events.voucher_payload(voucher),
                    "reference": reference,
                    "location": location.code if location else None,
                },
            )
        ],
    )
    return VoucherUseResult(voucher)


@transaction.atomic
def voucher_cancel(*, voucher: Voucher, reason: str, actor: Actor) -> Voucher:
    """Cancel an unused voucher. A voucher bought with points is cancelled with its
    redemption, so the member gets the points back."""
    if not (reason or "").strip():
        raise InvalidInputError("A cancellation needs a reason.", field="reason")
    if voucher.redemption_id is not None:
        redemption = Redemption.objects.select_related("member").get(pk=voucher.redemption_id)
        try:
            redemption_cancel(redemption=redemption, reason=reason, actor=actor)
        except RedemptionNotCancellableError as error:
            raise VoucherNotCancellableError(error.detail, **error.extra) from None
        return Voucher.objects.get(pk=voucher.pk)
    voucher = Voucher.objects.select_for_update().get(pk=voucher.pk)
    if voucher.status != VS.ISSUED:
        raise VoucherNotCancellableError(
            f"Voucher {codes.format_code(voucher.code)} is {voucher.status}.", voucher_status=voucher.status
        )
    _close_voucher(voucher, VS.CANCELLED, reason.strip(), timezone.now())
    events.emit(
        voucher.program_id,
        voucher.member_id,
        [("voucher.cancelled", {"voucher": events.voucher_payload(voucher), "reason": reason.strip()})],
    )
    return voucher


Progress = Callable[[Iterable[Any]], Iterable[Any]]


def vouchers_expire(
    *,
    actor: Actor,
    now: datetime | None = None,
    batch_size: int = 500,
    progress: Progress = lambda items: items,
) -> int:
    """Mark issued vouchers past their validity as expired (``voucher.expired`` each), one
    transaction per batch: safe to interrupt and run again."""
    now = now or timezone.now()
    ids = list(
        Voucher.objects.filter(status=VS.ISSUED, valid_until__lte=now)
        .order_by("id")
        .values_list("pk", flat=True)
    )
    expired = 0
    batches = [ids[start : start + batch_size] for start in range(0, len(ids), batch_size)]
    for batch in progress(batches):
        expired += _expire_batch(batch, now)
    return expired


@transaction.atomic
def _expire_batch(ids: list[int], now: datetime) -> int:
    # Rows used or cancelled meanwhile drop out of the filter; skip_locked leaves a voucher
    # being used right now to the till (the next run sees it again if the use fails).
    vouchers = list(
        Voucher.objects.select_for_update(skip_locked=True)
        .filter(pk__in=ids, status=VS.ISSUED, valid_until__lte=now)
        .order_by("id")
    )
    if not vouchers:
        return 0
    for voucher in vouchers:
        voucher.status = VS.EXPIRED
        voucher.closed_at = now
    Voucher.objects.bulk_update(vouchers, ["status", "closed_at"])
    locations: dict[int, list[str]] = {voucher.pk: [] for voucher in vouchers}
    for voucher_id, code in Voucher.locations.through.objects.filter(voucher_id__in=locations).values_list(
        "voucher_id", "location__code"
    ):
        locations[voucher_id].append(code)
    currencies = dict(
        Program.objects.filter(pk__in={voucher.program_id for voucher in vouchers}).values_list(
            "pk", "currency"
        )
    )
    event_record_many(
        events=[
            EventInput(
                program_id=voucher.program_id,
                member_id=voucher.member_id,
                type="voucher.expired",
                data={
                    "voucher": events.voucher_payload(
                        voucher, sorted(locations[voucher.pk]), currency=currencies[voucher.program_id]
                    )
                },
            )
            for voucher in vouchers
        ]
    )
    return len(vouchers)


def voucher_batch_check(
    *,
    program: Program,
    count: int,
    value_kind: str,
    amount: Decimal | None,
    percent: Decimal | None,
    sku: str,
    min_spend: Decimal | None,
) -> None:
    """Refuse a batch whose value does not fit its kind (shared with the admin form)."""
    if not 1 <= count <= MAX_BATCH:
        raise InvalidVoucherBatchError(f"Between 1 and {MAX_BATCH} codes per batch.", field="count")
    if value_kind == Voucher.Value.AMOUNT and not amount:
        raise InvalidVoucherBatchError("An amount voucher needs an amount > 0.", field="amount")
    if value_kind == Voucher.Value.PERCENT and not (percent is not None and 0 < percent <= 100):
        raise InvalidVoucherBatchError("A percent voucher needs a percent in (0, 100].", field="percent")
    if value_kind == Voucher.Value.FREE_ITEM and not sku:
        raise InvalidVoucherBatchError("A free item voucher needs its SKU.", field="sku")
    if value_kind not in Voucher.Value.values:
        raise InvalidVoucherBatchError(f"Unknown value kind '{value_kind}'.", field="value_kind")
    for field, value in (("amount", amount), ("min_spend", min_spend)):
        try:
            _check_money(program, value, field)
        except InvalidRewardError as error:
            raise InvalidVoucherBatchError(error.detail, field=field) from None


@transaction.atomic
def voucher_batch_create(
    *,
    program: Program,
    name: str,
    count: int,
    value_kind: str,
    actor: Actor,
    amount: Decimal | None = None,
    percent: Decimal | None = None,
    sku: str = "",
    min_spend: Decimal | None = None,
    skus: Sequence[str] = (),
    locations: Sequence[Location] = (),
    valid_until: datetime | None = None,
) -> VoucherBatch:
    """Generate ``count`` unassigned (campaign) vouchers with the same value and
    conditions. They have no owner; each is announced by a ``voucher.issued`` event
    (``member_id`` null, ``batch_id`` set) in the same transaction, written in bulk."""
    voucher_batch_check(
        program=program,
        count=count,
        value_kind=value_kind,
        amount=amount,
        percent=percent,
        sku=sku,
        min_spend=min_spend,
    )
    locations = _in_program(program, locations, "locations") or []
    batch = VoucherBatch.objects.create(program=program, name=name, count=count, actor_user_id=actor.user_id)
    now = timezone.now()
    template = {
        "program_id": program.pk,
        "batch": batch,
        "value_kind": value_kind,
        "amount": amount if value_kind == Voucher.Value.AMOUNT else None,
        "percent": percent if value_kind == Voucher.Value.PERCENT else None,
        "sku": sku if value_kind == Voucher.Value.FREE_ITEM else "",
        "min_spend": min_spend,
        "skus": list(skus),
        "valid_until": valid_until,
        "issued_at": now,
    }
    location_codes = sorted(location.code for location in locations)
    through = Voucher.locations.through
    for start in range(0, count, 1000):
        created = _insert_batch_chunk(program, template, min(1000, count - start))
        if locations:
            through.objects.bulk_create(
                [
                    through(voucher_id=voucher.pk, location_id=location.pk)
                    for voucher in created
                    for location in locations
                ]
            )
        event_record_many(
            events=[
                EventInput(
                    program_id=program.pk,
                    member_id=None,
                    type="voucher.issued",
                    data={
                        "voucher": events.voucher_payload(voucher, location_codes, currency=program.currency)
                    },
                )
                for voucher in sorted(created, key=lambda voucher: voucher.pk)
            ]
        )
    return batch


def _insert_batch_chunk(program: Program, template: dict[str, Any], size: int) -> list[Voucher]:
    for _attempt in range(_CODE_ATTEMPTS):
        wanted = set()
        while len(wanted) < size:
            wanted.add(codes.generate_code())
        wanted -= set(Voucher.objects.filter(program=program, code__in=wanted).values_list("code", flat=True))
        try:
            with transaction.atomic():
                return Voucher.objects.bulk_create([Voucher(code=code, **template) for code in wanted])
        except IntegrityError:  # a concurrent batch drew one of these codes: draw again
            continue
    raise RuntimeError("Could not draw unique voucher codes.")


# --- Shipments and GDPR --------------------------------------------------------------------------


@transaction.atomic
def shipment_mark_shipped(*, shipment: Shipment, tracking: str, actor: Actor) -> Shipment:
    shipment = Shipment.objects.select_for_update().get(pk=shipment.pk)
    if shipment.status != Shipment.Status.PENDING:
        raise RedemptionNotCancellableError(
            f"The shipment is {shipment.status}.", shipment_status=shipment.status
        )
    shipment.status = Shipment.Status.SHIPPED
    shipment.tracking = tracking
    shipment.shipped_at = timezone.now()
    shipment.save(update_fields=["status", "tracking", "shipped_at"])
    return shipment


def member_rewards_erase(*, member: Member, actor: Actor) -> int:
    """The ``member_erased`` hook: blank the member's shipping addresses (run inside
    ``member_erase``'s transaction)."""
    return Shipment.objects.filter(redemption__member=member, erased_at__isnull=True).update(
        name="",
        address_line1="",
        address_line2="",
        city="",
        postal_code="",
        region="",
        country="",
        phone="",
        erased_at=timezone.now(),
    )
