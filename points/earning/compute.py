"""The points of a basket: a pure function (no database access, no clock).

The quote and the purchase both call ``compute`` with the same inputs, so what a checkout
screen announces is what the purchase earns. The database side (loading the rules, the
member's tier, labels and the caps already used) is in ``points.earning.selectors``.

How points are computed, per points currency (the rules' and campaigns' currency):

1. **Eligible lines**: lines that are neither gift cards nor excluded. A line's amount is
   ``line_total - discount``; tax and shipping are never part of it.
2. **What applies**: a rule or campaign applies when all its conditions hold (date range,
   hours, weekdays in program time; location; tiers; labels; first purchase) and at least
   one eligible line matches its SKU / category filter (any eligible line when it has none)
   with, together, at least ``min_spend``. A ``per_line`` effect covers the matching lines;
   a ``per_purchase`` effect covers every eligible line (a fixed bonus counts once).
3. **Base points**: every line takes the rate (points per unit of money) of the
   highest-priority *earning rule* with a rate effect that covers it (ties: the higher
   rate): ``base = rate × amount``.
4. **Multipliers**, in priority order (highest first), change the running points of the
   lines they cover: ``add`` adds ``(m - 1) × base``; ``multiply`` multiplies everything
   so far (base and earlier multipliers) by ``m``.
5. **Tier**: the member's tier multiplies the result of step 4 by its ``earn_multiplier``.
6. **Extra rates** (campaigns' points per unit of money) and **fixed bonuses** (per line:
   ``bonus × quantity`` of each matching line; per purchase: once) are added; the tier does
   not multiply them.
7. **Only the best**: a rule or campaign with stacking ``best`` never combines with the
   others: the purchase gets either it alone (with the base and the tier) or all the
   stacking ones together, whichever earns more (ties: the stacking ones, then priority).
8. **Caps**: each contribution is limited by its rule's ``max_points_per_purchase`` and by
   the ``limits`` passed in (what is left of the per-member day and month caps and of a
   campaign's budget). A capped multiplier is scaled down on every line it covers.
9. **Rounding**: once per purchase, after everything: ``points = floor(sum of the exact
   contributions)`` (each exact contribution kept to 6 decimals). Each breakdown entry's
   integer share is its exact value rounded so that the shares add up to the points
   (largest remainder: floors first, then one more point to the largest fractions).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal

ZERO = Decimal(0)
ONE = Decimal(1)
EXACT = Decimal("0.000001")

RATE, MULTIPLIER, BONUS = "points_per_unit", "multiplier", "fixed_bonus"
PER_LINE, PER_PURCHASE = "per_line", "per_purchase"
ADD, MULTIPLY, BEST = "add", "multiply", "best"
RULE, CAMPAIGN, TIER = "rule", "campaign", "tier"
PER_PURCHASE_CAP = "per_purchase"


@dataclass(frozen=True)
class Line:
    number: int
    sku: str
    category: str
    quantity: Decimal
    amount: Decimal  # line_total - discount
    eligible: bool = True


@dataclass(frozen=True)
class Basket:
    when: datetime  # occurred_at in the program's time zone
    location: str | None
    lines: tuple[Line, ...]

    @property
    def eligible_lines(self) -> tuple[Line, ...]:
        return tuple(line for line in self.lines if line.eligible)

    @property
    def eligible_amount(self) -> Decimal:
        return sum((line.amount for line in self.eligible_lines), ZERO)


@dataclass(frozen=True)
class MemberFacts:
    tier_code: str | None = None
    tier_name: str = ""
    earn_multiplier: Decimal = ONE
    labels: frozenset[str] = frozenset()
    first_purchase: bool = False


@dataclass(frozen=True)
class RuleSpec:
    """An earning rule or campaign as the computation sees it."""

    source: str  # RULE or CAMPAIGN
    id: int
    code: str
    name: str
    currency_id: int
    effect: str
    scope: str
    value: Decimal
    stacking: str = ADD
    priority: int = 0
    starts_on: date | None = None
    ends_on: date | None = None
    hours_from: time | None = None
    hours_to: time | None = None
    weekdays: frozenset[int] = frozenset()
    locations: frozenset[str] = frozenset()
    skus: frozenset[str] = frozenset()
    categories: frozenset[str] = frozenset()
    min_spend: Decimal | None = None
    tiers: frozenset[str] = frozenset()
    labels: frozenset[str] = frozenset()
    first_purchase_only: bool = False
    max_points_per_purchase: int | None = None
    has_member_caps: bool = False
    has_budget: bool = False

    @property
    def key(self) -> tuple[str, int]:
        return (self.source, self.id)

    def order(self) -> tuple:
        """Highest priority first; rules before campaigns; then by id (stable)."""
        return (-self.priority, self.source != RULE, self.id)


@dataclass(frozen=True)
class Limit:
    """What is left of an external cap: ``reason`` is member_day, member_month or budget."""

    points: int
    reason: str


@dataclass(frozen=True)
class Award:
    """One entry of the breakdown: which lines, the base, the value and the result."""

    source: str
    id: int | None
    code: str
    name: str
    effect: str
    value: Decimal
    lines: tuple[int, ...]
    base: Decimal
    exact: Decimal
    points: int = 0
    capped_by: str = ""
    currency_id: int = 0


@dataclass(frozen=True)
class CurrencyPoints:
    currency_id: int
    exact: Decimal
    points: int
    awards: tuple[Award, ...]


@dataclass(frozen=True)
class Computation:
    eligible_amount: Decimal
    currencies: dict[int, CurrencyPoints] = field(default_factory=dict)

    def points_in(self, currency_id: int) -> int:
        found = self.currencies.get(currency_id)
        return found.points if found else 0


# --- Conditions --------------------------------------------------------------------------


def in_hours(moment: time, start: time | None, end: time | None) -> bool:
    """Whether ``moment`` is in [start, end); an end before the start runs past midnight."""
    if start is None and end is None:
        return True
    if start is not None and end is not None:
        if start <= end:
            return start <= moment < end
        return moment >= start or moment < end
    if start is not None:
        return moment >= start
    return moment < end


def purchase_conditions_hold(spec: RuleSpec, basket: Basket, member: MemberFacts) -> bool:
    day = basket.when.date()
    if spec.starts_on is not None and day < spec.starts_on:
        return False
    if spec.ends_on is not None and day > spec.ends_on:
        return False
    if not in_hours(basket.when.time(), spec.hours_from, spec.hours_to):
        return False
    if spec.weekdays and basket.when.isoweekday() not in spec.weekdays:
        return False
    if spec.locations and basket.location not in spec.locations:
        return False
    if spec.tiers and member.tier_code not in spec.tiers:
        return False
    if spec.labels and not (spec.labels & member.labels):
        return False
    return not (spec.first_purchase_only and not member.first_purchase)


def line_matches(spec: RuleSpec, line: Line) -> bool:
    if not line.eligible:
        return False
    if not spec.skus and not spec.categories:
        return True
    return line.sku in spec.skus or (bool(line.category) and line.category in spec.categories)


@dataclass(frozen=True)
class _Applied:
    spec: RuleSpec
    matched: tuple[Line, ...]  # the lines its filter matches
    covered: tuple[Line, ...]  # the lines its effect applies to

    @property
    def covered_numbers(self) -> frozenset[int]:
        return frozenset(line.number for line in self.covered)


def _applicable(spec: RuleSpec, basket: Basket, member: MemberFacts) -> _Applied | None:
    if not purchase_conditions_hold(spec, basket, member):
        return None
    matched = tuple(line for line in basket.lines if line_matches(spec, line))
    if not matched:
        return None
    if spec.min_spend is not None and sum((line.amount for line in matched), ZERO) < spec.min_spend:
        return None
    covered = matched if spec.scope == PER_LINE else basket.eligible_lines
    return _Applied(spec, matched, covered)


def applies(spec: RuleSpec, basket: Basket, member: MemberFacts) -> bool:
    """Whether ``spec``'s conditions hold for this basket and member (its effect may still
    lose to a better "best only" one)."""
    return _applicable(spec, basket, member) is not None


# --- The computation ---------------------------------------------------------------------


def _exact(value: Decimal) -> Decimal:
    return value.quantize(EXACT, rounding=ROUND_HALF_UP)


def _cap(spec: RuleSpec, limits: Mapping[tuple[str, int], Limit]) -> tuple[Decimal, str] | None:
    caps: list[tuple[int, int, str]] = []
    if spec.max_points_per_purchase is not None:
        caps.append((spec.max_points_per_purchase, 0, PER_PURCHASE_CAP))
    limit = limits.get(spec.key)
    if limit is not None:
        caps.append((max(limit.points, 0), 1, limit.reason))
    if not caps:
        return None
    points, _order, reason = min(caps)
    return Decimal(points), reason


def _capped(
    spec: RuleSpec, contributions: dict[int, Decimal], limits: Mapping[tuple[str, int], Limit]
) -> tuple[dict[int, Decimal], Decimal, str]:
    """Per-line contributions scaled down to the spec's cap; their exact total; the cap's
    reason when it cut."""
    total = _exact(sum(contributions.values(), ZERO))
    cap = _cap(spec, limits)
    if cap is None or total <= cap[0]:
        return contributions, total, ""
    limit, reason = cap
    ratio = limit / total if total else ZERO
    return {number: value * ratio for number, value in contributions.items()}, limit, reason


def _award(spec: RuleSpec, *, lines: Iterable[Line], base: Decimal, exact: Decimal, capped_by: str) -> Award:
    return Award(
        source=spec.source,
        id=spec.id,
        code=spec.code,
        name=spec.name,
        effect=spec.effect,
        value=spec.value,
        lines=tuple(line.number for line in lines),
        base=base,
        exact=exact,
        capped_by=capped_by,
        currency_id=spec.currency_id,
    )


def _base_points(
    applied: Sequence[_Applied], basket: Basket, limits: Mapping[tuple[str, int], Limit]
) -> tuple[dict[int, Decimal], list[Award]]:
    """Step 3: each eligible line's base points, from the rate rule that wins it."""
    rate_rules = sorted(
        (a for a in applied if a.spec.source == RULE and a.spec.effect == RATE),
        key=lambda a: (-a.spec.priority, -a.spec.value, a.spec.id),
    )
    won: dict[int, list[Line]] = defaultdict(list)
    covered = [candidate.covered_numbers for candidate in rate_rules]
    for line in basket.eligible_lines:
        for candidate, numbers in zip(rate_rules, covered, strict=True):
            if line.number in numbers:
                won[candidate.spec.id].append(line)
                break
    base: dict[int, Decimal] = {}
    awards = []
    for candidate in rate_rules:
        lines = won.get(candidate.spec.id)
        if not lines:
            continue
        raw = {line.number: candidate.spec.value * line.amount for line in lines}
        scaled, exact, capped_by = _capped(candidate.spec, raw, limits)
        base.update(scaled)
        money = sum((line.amount for line in lines), ZERO)
        awards.append(_award(candidate.spec, lines=lines, base=money, exact=exact, capped_by=capped_by))
    return base, awards


def _outcome(
    effects: Sequence[_Applied],
    base: dict[int, Decimal],
    member: MemberFacts,
    limits: Mapping[tuple[str, int], Limit],
    currency_id: int,
) -> list[Award]:
    """Steps 4 to 6 for one set of effects that combine."""
    running = dict(base)
    awards: list[Award] = []
    ordered = sorted(effects, key=lambda a: a.spec.order())
    for applied in (a for a in ordered if a.spec.effect == MULTIPLIER):
        spec = applied.spec
        covered = [line for line in applied.covered if line.number in running]
        source = base if spec.stacking == ADD else running
        raw = {line.number: source[line.number] * (spec.value - ONE) for line in covered}
        scaled, exact, capped_by = _capped(spec, raw, limits)
        applied_to = _exact(sum((source[line.number] for line in covered), ZERO))
        for number, extra in scaled.items():
            running[number] += extra
        awards.append(_award(spec, lines=applied.covered, base=applied_to, exact=exact, capped_by=capped_by))
    if member.earn_multiplier != ONE and running:
        points_so_far = sum(running.values(), ZERO)
        awards.append(
            Award(
                source=TIER,
                id=None,
                code=member.tier_code or "",
                name=member.tier_name,
                effect=MULTIPLIER,
                value=member.earn_multiplier,
                lines=tuple(sorted(running)),
                base=_exact(points_so_far),
                exact=_exact(points_so_far * (member.earn_multiplier - ONE)),
                currency_id=currency_id,
            )
        )
    for applied in (a for a in ordered if a.spec.effect in (RATE, BONUS)):
        spec = applied.spec
        if spec.effect == RATE:
            raw = {line.number: spec.value * line.amount for line in applied.covered}
            base_value = sum((line.amount for line in applied.covered), ZERO)
            lines = applied.covered
        elif spec.scope == PER_LINE:
            raw = {line.number: spec.value * line.quantity for line in applied.covered}
            base_value = sum((line.quantity for line in applied.covered), ZERO)
            lines = applied.covered
        else:
            raw = {0: spec.value}
            base_value = ONE
            lines = applied.matched
        _scaled, exact, capped_by = _capped(spec, raw, limits)
        awards.append(_award(spec, lines=lines, base=base_value, exact=exact, capped_by=capped_by))
    return awards


def distribute(awards: Sequence[Award], points: int) -> list[Award]:
    """Give each award its integer share so that the shares add up to ``points``."""
    floors = [int(award.exact.to_integral_value(rounding=ROUND_FLOOR)) for award in awards]
    leftover = points - sum(floors)
    by_fraction = sorted(range(len(awards)), key=lambda i: (-(awards[i].exact - floors[i]), i))
    for index in by_fraction[: max(leftover, 0)]:
        floors[index] += 1
    return [replace(award, points=share) for award, share in zip(awards, floors, strict=True)]


def _currency_points(
    currency_id: int,
    specs: Sequence[RuleSpec],
    basket: Basket,
    member: MemberFacts,
    limits: Mapping[tuple[str, int], Limit],
) -> CurrencyPoints:
    applied = [found for spec in specs if (found := _applicable(spec, basket, member)) is not None]
    base, base_awards = _base_points(applied, basket, limits)
    extras = [a for a in applied if not (a.spec.source == RULE and a.spec.effect == RATE)]
    stacking = [a for a in extras if a.spec.stacking != BEST]
    best_only = sorted((a for a in extras if a.spec.stacking == BEST), key=lambda a: a.spec.order())
    chosen: list[Award] = []
    chosen_total: Decimal | None = None
    for candidate in [stacking, *([b] for b in best_only)]:
        awards = _outcome(candidate, base, member, limits, currency_id)
        total = sum((award.exact for award in awards), ZERO)
        if chosen_total is None or total > chosen_total:
            chosen, chosen_total = awards, total
    awards = [*base_awards, *chosen]
    exact = sum((award.exact for award in awards), ZERO)
    points = int(max(exact, ZERO).to_integral_value(rounding=ROUND_FLOOR))
    awards = [award for award in awards if award.exact != 0 or award.capped_by]
    return CurrencyPoints(currency_id, exact, points, tuple(distribute(awards, points)))


def compute(
    *,
    basket: Basket,
    member: MemberFacts,
    rules: Iterable[RuleSpec],
    limits: Mapping[tuple[str, int], Limit] | None = None,
) -> Computation:
    """The points ``basket`` earns ``member`` under ``rules`` (earning rules and campaigns
    that are active), per currency. ``limits``: what is left of external caps, by
    ``RuleSpec.key``."""
    limits = limits or {}
    by_currency: dict[int, list[RuleSpec]] = defaultdict(list)
    for spec in rules:
        by_currency[spec.currency_id].append(spec)
    currencies = {
        currency_id: _currency_points(currency_id, specs, basket, member, limits)
        for currency_id, specs in sorted(by_currency.items())
    }
    return Computation(eligible_amount=basket.eligible_amount, currencies=currencies)
