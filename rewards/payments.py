"""Pay with points (a currency's cash value as money off a bill) and the configuration
services behind it and member pricing: pay-with-points rules and pricing exceptions.

Rounding (see docs/rewards.md):
- money -> points: ``floor(money x value_points / value_amount)``, then down to a multiple
  of the rule's step: points never pay more than the money asked for;
- points -> money: ``points x value_amount / value_points`` rounded *down* to the minor unit
  of the program's money currency: the bill is never reduced by more than the points are
  worth;
- the share cap: ``bill x max_share_percent / 100`` rounded down to the minor unit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import ROUND_DOWN, ROUND_FLOOR, Decimal
from typing import Any

from django.db import IntegrityError, transaction

from members.models import Member
from membership_site.actors import Actor
from membership_site.errors import InvalidInputError
from points import services as points_services
from points.models import Currency
from points.selectors import default_currency
from programs.currencies import MINOR_UNITS, money_quantum
from programs.models import Location, Program
from tiers.models import Tier

from .errors import (
    BelowMinimumBillError,
    BelowMinimumPointsError,
    ExceedsBillShareError,
    InvalidPricingError,
    NotAMultipleOfStepError,
    PayRuleNotFoundError,
    PayWithPointsDisabledError,
)
from .models import PayWithPointsRule, PricingException


@dataclass(frozen=True)
class PayQuote:
    points: int
    money_covered: Decimal
    max_money: Decimal


def _check_minor_units(value: Decimal, money_currency: str, field: str) -> None:
    """A bill is in whole minor units of the program's money (EUR: cents)."""
    if value != value.quantize(money_quantum(money_currency), rounding=ROUND_DOWN):
        raise InvalidInputError(
            f"{money_currency} amounts have at most {MINOR_UNITS[money_currency]} decimals.",
            field=field,
        )


def _floor_to(value: int, step: int) -> int:
    return value - value % step


def pay_quote(
    *,
    rule: PayWithPointsRule,
    currency: Currency,
    money_currency: str,
    bill_amount: Decimal,
    money: Decimal | None = None,
    points: int | None = None,
) -> PayQuote:
    """How many points pay how much of ``bill_amount`` (exactly one of ``money`` and
    ``points`` given), by the rule; raises the rule's error when it refuses. No database
    access."""
    if (money is None) == (points is None):
        raise InvalidInputError("Give either the money to cover or the points to spend.", field="amount")
    quantum = money_quantum(money_currency)
    _check_minor_units(bill_amount, money_currency, "bill_amount")
    if money is not None:
        _check_minor_units(money, money_currency, "amount")
    if bill_amount < rule.minimum_bill:
        raise BelowMinimumBillError(
            f"Bills from {rule.minimum_bill.quantize(quantum)} {money_currency} can use points.",
            minimum_bill=rule.minimum_bill.quantize(quantum),
        )
    if not currency.value_amount:
        raise PayWithPointsDisabledError(f"{currency.code} has no cash value.", currency=currency.code)
    max_money = (bill_amount * rule.max_share_percent / 100).quantize(quantum, rounding=ROUND_DOWN)
    if money is not None:
        if money > max_money:
            raise ExceedsBillShareError(
                f"Points pay at most {rule.max_share_percent}% of the bill: {max_money} {money_currency}.",
                max_amount=max_money,
                max_share_percent=rule.max_share_percent,
            )
        raw = (money * currency.value_points / currency.value_amount).to_integral_value(rounding=ROUND_FLOOR)
        points = _floor_to(int(raw), rule.step)
    elif points % rule.step:
        raise NotAMultipleOfStepError(
            f"Points pay bills in multiples of {rule.step}.", step=rule.step, field="points"
        )
    if points < max(rule.minimum_points, 1):
        raise BelowMinimumPointsError(
            f"At least {rule.minimum_points} {currency.code} per payment.",
            minimum_points=rule.minimum_points,
            points=points,
        )
    covered = (Decimal(points) * currency.value_amount / currency.value_points).quantize(
        quantum, rounding=ROUND_DOWN
    )
    if covered > max_money:
        raise ExceedsBillShareError(
            f"Points pay at most {rule.max_share_percent}% of the bill: {max_money} {money_currency}.",
            max_amount=max_money,
            max_share_percent=rule.max_share_percent,
            max_points=_floor_to(
                int(
                    (max_money * currency.value_points / currency.value_amount).to_integral_value(ROUND_FLOOR)
                ),
                rule.step,
            ),
        )
    return PayQuote(points=points, money_covered=covered, max_money=max_money)


@dataclass(frozen=True)
class PaymentResult:
    quote: PayQuote
    bill_amount: Decimal
    currency: Currency
    points_result: points_services.PointsResult

    @property
    def remaining(self) -> Decimal:
        return self.bill_amount - self.quote.money_covered


def pay_rule_get(*, currency: Currency) -> PayWithPointsRule:
    """The rule of ``currency``, active or not."""
    rule = PayWithPointsRule.objects.filter(currency=currency).first()
    if rule is None:
        raise PayRuleNotFoundError(f"{currency.code} has no pay-with-points rule.", currency=currency.code)
    return rule


def pay_rule_for(*, currency: Currency) -> PayWithPointsRule:
    rule = PayWithPointsRule.objects.filter(currency=currency, is_active=True).first()
    if rule is None:
        raise PayWithPointsDisabledError(
            f"{currency.code} cannot pay bills (no active pay-with-points rule).", currency=currency.code
        )
    return rule


@transaction.atomic
def points_pay(
    *,
    member: Member,
    bill_amount: Decimal,
    actor: Actor,
    currency: Currency | None = None,
    money: Decimal | None = None,
    points: int | None = None,
    hold: bool = False,
    expires_in: timedelta | None = None,
    reference: str = "",
    location: Location | None = None,
) -> PaymentResult:
    """Pay part of a bill with points: redeem them now (a till), or put them on hold
    (``hold``: a web checkout captures the hold when the order is placed, through the
    points holds API). The reference makes a retry return the original transaction."""
    currency = currency or default_currency(program_id=member.program_id)
    rule = pay_rule_for(currency=currency)
    money_currency = member.program.currency
    quote = pay_quote(
        rule=rule,
        currency=currency,
        money_currency=money_currency,
        bill_amount=bill_amount,
        money=money,
        points=points,
    )
    metadata = {
        "pay_with_points": {"bill_amount": str(bill_amount), "money_covered": str(quote.money_covered)}
    }
    description = f"Paid {quote.money_covered} {money_currency} of a {bill_amount} bill"
    if hold:
        result = points_services.hold_create(
            member=member,
            amount=quote.points,
            currency=currency,
            expires_in=expires_in,
            reference=reference,
            description=description,
            metadata=metadata,
            actor=actor,
        )
    else:
        result = points_services.points_redeem(
            member=member,
            amount=quote.points,
            currency=currency,
            reference=reference,
            location=location,
            description=description,
            metadata=metadata,
            actor=actor,
        )
    return PaymentResult(quote=quote, bill_amount=bill_amount, currency=currency, points_result=result)


# --- Configuration (admin) --------------------------------------------------------------------

PAY_RULE_FIELDS = ("is_active", "minimum_points", "step", "max_share_percent", "minimum_bill")


def pay_rule_save(*, currency: Currency, actor: Actor, **fields: Any) -> PayWithPointsRule:
    """Create or change the pay-with-points rule of ``currency``."""
    return pay_rule_put(currency=currency, actor=actor, **fields)[0]


@transaction.atomic
def pay_rule_put(*, currency: Currency, actor: Actor, **fields: Any) -> tuple[PayWithPointsRule, bool]:
    """``pay_rule_save``, also telling whether the rule was created (True) or changed."""
    unknown = set(fields) - set(PAY_RULE_FIELDS)
    if unknown:
        raise TypeError(f"Unknown rule fields: {sorted(unknown)}")
    # The currency row serialises saves: two first saves at once would otherwise both find
    # no rule and both insert one (the second failing on the one-rule-per-currency key).
    Currency.objects.select_for_update(no_key=True).filter(pk=currency.pk).values_list("pk").get()
    rule = PayWithPointsRule.objects.filter(currency=currency).first()
    created = rule is None
    rule = rule or PayWithPointsRule(program_id=currency.program_id)
    rule.currency = currency
    for name, value in fields.items():
        setattr(rule, name, value)
    if rule.step < 1:
        raise InvalidInputError("The step is at least 1.", field="step")
    if not Decimal(0) < rule.max_share_percent <= 100:
        raise InvalidInputError("The share is between 0 and 100 percent.", field="max_share_percent")
    if rule.minimum_bill < 0:
        raise InvalidInputError("The minimum bill cannot be negative.", field="minimum_bill")
    money_currency = Program.objects.values_list("currency", flat=True).get(pk=currency.program_id)
    _check_minor_units(rule.minimum_bill, money_currency, "minimum_bill")
    rule.save()
    return rule, created


@transaction.atomic
def pricing_exception_save(
    *,
    program: Program,
    tier: Tier,
    actor: Actor,
    sku: str = "",
    category: str = "",
    percent: Decimal | None = None,
    excluded: bool = False,
    exception: PricingException | None = None,
) -> PricingException:
    """Create (or, given ``exception``, change) a member-price exception for a tier and a
    SKU or a category."""
    if tier.program_id != program.pk:
        raise InvalidPricingError("The tier is not in this program.", field="tier")
    if bool(sku) == bool(category):
        raise InvalidPricingError("Give a SKU or a category, not both.", field="sku")
    if not excluded and (percent is None or not Decimal(0) <= percent <= 100):
        raise InvalidPricingError("Give a percent between 0 and 100, or exclude.", field="percent")
    exception = exception or PricingException(program=program)
    exception.tier = tier
    exception.sku = sku
    exception.category = category
    exception.percent = None if excluded else percent
    exception.excluded = excluded
    try:
        with transaction.atomic():
            exception.save()
    except IntegrityError:
        raise InvalidPricingError(
            "The tier already has an exception for this SKU or category.", field="sku" if sku else "category"
        ) from None
    return exception
