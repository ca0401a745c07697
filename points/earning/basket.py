"""Checking a purchase's money and lines (no database access).

Rules (documented in docs/earning.md):
- Every money amount has at most the program currency's decimals (2 for EUR, 0 for JPY).
- A line's ``line_total``, when given, is within one minor unit (0.01 EUR) of ``quantity ×
  unit_price``; when omitted it is that product rounded half-up to the minor unit. The
  ``discount`` is at most the ``line_total``. A line's amount is ``line_total - discount``.
- ``total``, when given, is within one minor unit per line of ``sum(line amounts) + tax +
  shipping`` (tills round tax per line); when omitted it is that sum.
- Line amounts are net of tax: tax and shipping are purchase fields, never part of the
  points base.

Errors name the field as DRF does for the request body: ``lines.0.line_total`` is the first
line's (positions from 0; the lines' ``number`` counts from 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from programs.currencies import money_quantum

from .compute import Line
from .errors import AmountsInconsistentError, InvalidAmountError

ZERO = Decimal(0)
ONE = Decimal(1)
# Money columns hold 13 digits before the point.
MAX_MONEY = Decimal("1e13")


@dataclass(frozen=True)
class LineInput:
    sku: str
    unit_price: Decimal
    quantity: Decimal = ONE
    line_total: Decimal | None = None
    discount: Decimal = ZERO
    category: str = ""
    gift_card: bool = False
    excluded: bool = False


@dataclass(frozen=True)
class CheckedLine:
    number: int
    sku: str
    category: str
    quantity: Decimal
    unit_price: Decimal
    line_total: Decimal
    discount: Decimal
    amount: Decimal
    gift_card: bool
    excluded: bool

    @property
    def eligible(self) -> bool:
        return not (self.gift_card or self.excluded)

    def for_compute(self) -> Line:
        return Line(self.number, self.sku, self.category, self.quantity, self.amount, self.eligible)


@dataclass(frozen=True)
class CheckedBasket:
    lines: tuple[CheckedLine, ...]
    total: Decimal
    tax: Decimal
    shipping: Decimal

    @property
    def eligible_amount(self) -> Decimal:
        return sum((line.amount for line in self.lines if line.eligible), ZERO)


def _money(value: Decimal, quantum: Decimal, currency: str, field: str) -> Decimal:
    if not isinstance(value, Decimal) or not value.is_finite():
        raise InvalidAmountError("Money amounts are decimal numbers.", field=field)
    if value < 0:
        raise InvalidAmountError("Money amounts cannot be negative.", field=field)
    if value != value.quantize(quantum):
        raise InvalidAmountError(
            f"{currency} amounts have at most {max(-quantum.as_tuple().exponent, 0)} decimals.", field=field
        )
    # In the currency's decimals ("59.90", not the request field's "59.900"), so that
    # messages and stored values read as money.
    return value.quantize(quantum)


def check_basket(
    *,
    currency: str,
    lines: Sequence[LineInput],
    total: Decimal | None = None,
    tax: Decimal = ZERO,
    shipping: Decimal = ZERO,
) -> CheckedBasket:
    """Validate the money of a purchase (``currency``: the program's ISO code) and fill in
    the line totals and the total when they are omitted."""
    quantum = money_quantum(currency)
    if not lines:
        raise AmountsInconsistentError("A purchase has at least one line.", field="lines")
    checked = []
    for index, line in enumerate(lines):
        prefix = f"lines.{index}"
        if not isinstance(line.quantity, Decimal) or line.quantity <= 0:
            raise InvalidAmountError("The quantity must be positive.", field=f"{prefix}.quantity")
        price = _money(line.unit_price, quantum, currency, f"{prefix}.unit_price")
        discount = _money(line.discount, quantum, currency, f"{prefix}.discount")
        product = (line.quantity * price).quantize(quantum, rounding=ROUND_HALF_UP)
        if line.line_total is None:
            line_total = product
            if line_total >= MAX_MONEY:
                raise InvalidAmountError("quantity × unit_price is too large.", field=f"{prefix}.quantity")
        else:
            line_total = _money(line.line_total, quantum, currency, f"{prefix}.line_total")
            if abs(line_total - line.quantity * price) > quantum:
                raise AmountsInconsistentError(
                    f"line_total {line_total} is not quantity × unit_price ({product}).",
                    field=f"{prefix}.line_total",
                    expected=str(product),
                )
        if discount > line_total:
            raise AmountsInconsistentError(
                "The discount is larger than the line total.", field=f"{prefix}.discount"
            )
        checked.append(
            CheckedLine(
                number=index + 1,
                sku=line.sku,
                category=line.category or "",
                quantity=line.quantity,
                unit_price=price,
                line_total=line_total,
                discount=discount,
                amount=line_total - discount,
                gift_card=line.gift_card,
                excluded=line.excluded,
            )
        )
    tax = _money(tax, quantum, currency, "tax")
    shipping = _money(shipping, quantum, currency, "shipping")
    computed = sum((line.amount for line in checked), ZERO) + tax + shipping
    if computed >= MAX_MONEY:
        raise InvalidAmountError("The purchase's total is too large.", field="total")
    if total is None:
        total = computed
    else:
        total = _money(total, quantum, currency, "total")
        if abs(total - computed) > quantum * len(checked):
            raise AmountsInconsistentError(
                f"total {total} is not the lines after discounts plus tax and shipping ({computed}).",
                field="total",
                expected=str(computed),
            )
    return CheckedBasket(lines=tuple(checked), total=total, tax=tax, shipping=shipping)
