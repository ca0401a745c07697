"""Points currencies: create, update, and the default for new programs."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction

from membership_site.actors import Actor
from membership_site.errors import InvalidInputError
from programs.models import Program

from .. import posting as ledger
from ..errors import (
    CurrencyCodeTakenError,
    InvalidExpiryPolicyError,
    NegativeBalancesExistError,
)
from ..models import Account, Currency
from .common import (
    SYS,
    P,
)

# --- Currencies --------------------------------------------------------------------------

CURRENCY_FIELDS = (
    "name",
    "is_default",
    "value_points",
    "value_amount",
    "allow_negative",
    "expiry_policy",
    "expiry_period",
    "expiry_month",
    "expiry_day",
    "minimum_redemption",
    "is_active",
)


def currency_check_policy(currency: Currency) -> None:
    """Refuse expiry and value settings that do not fit together (no database access)."""
    policy = currency.expiry_policy
    if policy not in P.values:
        raise InvalidExpiryPolicyError(f"Unknown expiry policy '{policy}'.", field="expiry_policy")
    if policy in (P.ROLLING_DAYS, P.ROLLING_MONTHS, P.INACTIVITY) and not currency.expiry_period:
        raise InvalidExpiryPolicyError(
            f"The {policy} policy needs expiry_period >= 1.", field="expiry_period"
        )
    if policy == P.FIXED_DATE:
        month, day = currency.expiry_month, currency.expiry_day
        if not month or not 1 <= month <= 12:
            raise InvalidExpiryPolicyError("A fixed date needs expiry_month 1-12.", field="expiry_month")
        longest = {2: 29, 4: 30, 6: 30, 9: 30, 11: 30}.get(month, 31)
        if not day or not 1 <= day <= longest:
            raise InvalidExpiryPolicyError(f"Month {month} has no day {day}.", field="expiry_day")
    else:
        currency.expiry_month = currency.expiry_day = None
    if currency.value_points is None or currency.value_points <= 0:
        raise InvalidInputError("value_points must be positive.", field="value_points")
    if currency.value_amount is None or Decimal(currency.value_amount) < 0:
        raise InvalidInputError("value_amount cannot be negative.", field="value_amount")


@transaction.atomic
def currency_create(
    *,
    program: Program,
    code: str,
    name: str,
    actor: Actor,
    is_default: bool = False,
    **fields: Any,
) -> Currency:
    """Create a points currency (with its system accounts). The program's first currency
    becomes its default."""
    unknown = set(fields) - set(CURRENCY_FIELDS)
    if unknown:
        raise TypeError(f"Unknown currency fields: {sorted(unknown)}")
    code = code.upper()
    if Currency.objects.filter(program=program, code=code).exists():
        raise CurrencyCodeTakenError(f"Currency '{code}' already exists.", field="code")
    currency = Currency(program=program, code=code, name=name, **fields)
    currency_check_policy(currency)
    has_default = Currency.objects.filter(program=program, is_default=True).exists()
    if is_default and has_default:
        Currency.objects.filter(program=program, is_default=True).update(is_default=False)
    currency.is_default = is_default or not has_default
    try:
        with transaction.atomic():
            currency.save()
    except IntegrityError:
        raise CurrencyCodeTakenError(f"Currency '{code}' already exists.", field="code") from None
    currency.program = program
    ledger.ensure_system_accounts(currency)
    return currency


@transaction.atomic
def currency_update(*, currency: Currency, actor: Actor, **fields: Any) -> Currency:
    """Change a currency's settings. Expiry policy changes apply to points earned from now
    on; switching off negative balances is refused while any account is negative."""
    unknown = set(fields) - set(CURRENCY_FIELDS)
    if unknown:
        raise TypeError(f"Unknown currency fields: {sorted(unknown)}")
    currency = Currency.objects.select_for_update().select_related("program").get(pk=currency.pk)
    if fields.get("is_default") is False and currency.is_default:
        raise InvalidInputError(
            "Make another currency the default instead of unsetting this one.", field="is_default"
        )
    for name, value in fields.items():
        setattr(currency, name, value)
    currency_check_policy(currency)
    if fields.get("is_default"):
        Currency.objects.filter(program_id=currency.program_id, is_default=True).exclude(
            pk=currency.pk
        ).update(is_default=False)
    currency.save()
    if "allow_negative" in fields:
        accounts = Account.objects.filter(currency=currency, kind=SYS.MEMBER)
        if not currency.allow_negative and accounts.filter(available__lt=0).exists():
            raise NegativeBalancesExistError("Some member accounts are below zero.", field="allow_negative")
        try:
            with transaction.atomic():
                accounts.exclude(allow_negative=currency.allow_negative).update(
                    allow_negative=currency.allow_negative
                )
        except IntegrityError:  # an account went negative meanwhile: the CHECK refused
            raise NegativeBalancesExistError(
                "Some member accounts are below zero.", field="allow_negative"
            ) from None
    return currency


def program_default_currency(*, program: Program, actor: Actor) -> Currency:
    """The ``program_created`` hook: every program starts with PTS (no expiry)."""
    existing = Currency.objects.filter(program=program, code="PTS").first()
    return existing or currency_create(
        program=program, code="PTS", name="Points", is_default=True, actor=actor
    )
