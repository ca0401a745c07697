"""Qualification rules: windows, thresholds, the metric query and the decision for a member.

The same code decides at activity time (``live``: upgrades and grace recovery only) and in
the evaluation (also grace and downgrades), over the same metric query, so the two cannot
disagree. Everything here works on snapshots (``TierRule``, ``StateSnapshot``); the services
load them and write the outcome.

Windows (days are program-local; an evaluation "on D" counts activity before D, a live
check counts everything recorded so far):

- ``rolling_months`` (N): from D minus N months (inclusive) to D. With 12 months, activity
  of 15 March 2024 counts in the evaluation of 15 March 2025 and drops out in that of
  16 March 2025.
- ``calendar_year``: the current year to date, or the whole previous year. Status earned in
  a year therefore holds through the next one; retention is judged on 1 January.
- ``anniversary_year``: the same with years starting on the member's joining day (a 29
  February anniversary falls on 1 March in other years).
- ``lifetime``: everything.

A tier is *reached by activity* only if it has at least one qualification threshold; a tier
without thresholds (the usual default tier, or an invite-only one) is only given by default
or by staff and is never lost by activity. Automatic downgrades land on tiers reached by
activity or on the default tier.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.db import connection
from django.db.models import BigIntegerField, Case, DecimalField, F, Q, QuerySet, Sum, Value, When
from django.db.models.functions import Cast, Coalesce, ExtractDay, ExtractMonth, ExtractYear
from django.db.models.lookups import GreaterThanOrEqual, LessThan, LessThanOrEqual
from django.utils import timezone

from programs.models import Program

from .models import Tier, TierActivity, TierChange

ZERO = Decimal("0")
Reason = TierChange.Reason
Window = Tier.Window


# --- Dates ------------------------------------------------------------------------------


def local_today(program: Program) -> date:
    """Today in the program's time zone."""
    return timezone.now().astimezone(program.tz).date()


def start_of_day(day: date, program: Program) -> datetime:
    return datetime.combine(day, time.min, tzinfo=program.tz)


def add_months(day: date, months: int) -> date:
    """``day`` moved by whole months, clamped to the end of a shorter month (31 Jan + 1
    month = 28/29 Feb)."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def anniversary_in(year: int, anchor: tuple[int, int]) -> date:
    """The anniversary of (month, day) in ``year``; 29 February is 1 March in other years."""
    month, day = anchor
    if month == 2 and day == 29 and not calendar.isleap(year):
        return date(year, 3, 1)
    return date(year, month, day)


def anniversary_on_or_before(anchor: tuple[int, int], on: date) -> date:
    this_year = anniversary_in(on.year, anchor)
    # Compared as (month, day) like the SQL does, so both agree on 29 February anchors.
    return this_year if anchor <= (on.month, on.day) else anniversary_in(on.year - 1, anchor)


# --- Metrics ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Metrics:
    spend: Decimal = ZERO
    points: int = 0
    visits: int = 0


NO_METRICS = Metrics()


@dataclass(frozen=True, slots=True)
class WindowKey:
    kind: str
    months: int = 0  # rolling windows only

    @classmethod
    def of(cls, tier: Tier) -> WindowKey:
        return cls(tier.window_kind, tier.window_months if tier.window_kind == Window.ROLLING_MONTHS else 0)

    @property
    def has_periods(self) -> bool:
        return self.kind in (Window.CALENDAR_YEAR, Window.ANNIVERSARY_YEAR)


@dataclass(frozen=True, slots=True)
class WindowMetrics:
    """The metrics of one window: the current one and, for yearly windows, the last
    complete year (which also qualifies: status earned in a year holds through the next)."""

    current: Metrics = NO_METRICS
    previous: Metrics | None = None

    def sets(self) -> tuple[Metrics, ...]:
        return (self.current,) if self.previous is None else (self.current, self.previous)


EMPTY_WINDOW = WindowMetrics()


@dataclass(frozen=True, slots=True)
class WindowBounds:
    """The days of a window for display (``start`` inclusive; None: unbounded)."""

    start: date | None
    previous_start: date | None = None  # the last complete year: previous_start .. start


def window_bounds(key: WindowKey, *, on: date, joined_on: date | None = None) -> WindowBounds:
    if key.kind == Window.ROLLING_MONTHS:
        return WindowBounds(add_months(on, -key.months))
    if key.kind == Window.CALENDAR_YEAR:
        return WindowBounds(date(on.year, 1, 1), date(on.year - 1, 1, 1))
    if key.kind == Window.ANNIVERSARY_YEAR:
        anchor = (joined_on.month, joined_on.day) if joined_on else (1, 1)
        start = anniversary_on_or_before(anchor, on)
        return WindowBounds(start, anniversary_in(start.year - 1, anchor))
    return WindowBounds(None)


@dataclass(frozen=True, slots=True)
class Thresholds:
    spend: Decimal | None = None
    points: int | None = None
    visits: int | None = None
    mode: str = Tier.Mode.ANY

    @property
    def is_empty(self) -> bool:
        return self.spend is None and self.points is None and self.visits is None

    def met_by(self, metrics: Metrics) -> bool:
        checks = []
        if self.spend is not None:
            checks.append(metrics.spend >= self.spend)
        if self.points is not None:
            checks.append(metrics.points >= self.points)
        if self.visits is not None:
            checks.append(metrics.visits >= self.visits)
        if not checks:
            return True
        return all(checks) if self.mode == Tier.Mode.ALL else any(checks)

    def remaining(self, metrics: Metrics) -> dict[str, Decimal | int | None]:
        """What is still missing per metric (0 when met; None for unused metrics)."""
        return {
            "spend": None if self.spend is None else max(self.spend - metrics.spend, ZERO),
            "points": None if self.points is None else max(self.points - metrics.points, 0),
            "visits": None if self.visits is None else max(self.visits - metrics.visits, 0),
        }


@dataclass(frozen=True, slots=True)
class TierRule:
    id: int
    code: str
    rank: int
    is_default: bool
    window: WindowKey
    entry: Thresholds
    retention: Thresholds
    grace_months: int
    downgrade_policy: str

    @classmethod
    def of(cls, tier: Tier) -> TierRule:
        entry = Thresholds(tier.qualify_spend, tier.qualify_points, tier.qualify_visits, tier.qualify_mode)
        retention = Thresholds(
            tier.retain_spend if tier.retain_spend is not None else tier.qualify_spend,
            tier.retain_points if tier.retain_points is not None else tier.qualify_points,
            tier.retain_visits if tier.retain_visits is not None else tier.qualify_visits,
            tier.qualify_mode,
        )
        return cls(
            id=tier.pk,
            code=tier.code,
            rank=tier.rank,
            is_default=tier.is_default,
            window=WindowKey.of(tier),
            entry=entry,
            retention=retention,
            grace_months=tier.grace_months,
            downgrade_policy=tier.downgrade_policy,
        )

    @property
    def reachable(self) -> bool:
        """Whether activity can bring a member to this tier."""
        return not self.entry.is_empty

    def qualifies(self, metrics: WindowMetrics) -> bool:
        return self.reachable and any(self.entry.met_by(m) for m in metrics.sets())

    def retained(self, metrics: WindowMetrics) -> bool:
        return self.retention.is_empty or any(self.retention.met_by(m) for m in metrics.sets())


@dataclass(frozen=True)
class Ladder:
    """A program's tiers, lowest rank first."""

    rules: tuple[TierRule, ...]
    by_id: dict[int, TierRule] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "rules", tuple(sorted(self.rules, key=lambda rule: rule.rank)))
        object.__setattr__(self, "by_id", {rule.id: rule for rule in self.rules})

    @classmethod
    def of(cls, tiers: Iterable[Tier]) -> Ladder:
        return cls(tuple(TierRule.of(tier) for tier in tiers))

    @property
    def default(self) -> TierRule | None:
        return next((rule for rule in self.rules if rule.is_default), None)

    @property
    def windows(self) -> list[WindowKey]:
        """The windows some threshold is measured in."""
        keys = {rule.window for rule in self.rules if rule.reachable or not rule.retention.is_empty}
        return sorted(keys, key=lambda key: (key.kind, key.months))

    def above(self, rule: TierRule) -> list[TierRule]:
        return [other for other in self.rules if other.rank > rule.rank]

    def landing_below(self, rule: TierRule) -> list[TierRule]:
        """Tiers an automatic downgrade from ``rule`` may land on, highest first."""
        return [
            other
            for other in reversed(self.rules)
            if other.rank < rule.rank and (other.reachable or other.is_default)
        ]


# --- Decisions --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StateSnapshot:
    tier_id: int
    grace_until: date | None = None
    locked_until: date | None = None
    lifetime_tier_id: int | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    reason: str
    to_tier_id: int
    grace_until: date | None = None


def decide(
    ladder: Ladder,
    state: StateSnapshot,
    metrics: Mapping[WindowKey, WindowMetrics],
    *,
    on: date,
    live: bool,
) -> Decision | None:
    """What should happen to a member now, or None.

    - Upgrade to the highest tier above the current one whose qualification thresholds are
      met (skipping levels), also during grace.
    - Retention met while in grace: grace ends.
    - Only when not ``live`` (the evaluation on ``on``): retention not met starts grace
      (``grace_until = on + grace_months``) unless the member is locked until after ``on``
      or holds a lifetime tier at least this high; at the end of grace (or at once without
      a grace period) the member moves down per the tier's downgrade policy, never below a
      lifetime tier.
    """
    current = ladder.by_id[state.tier_id]
    for rule in reversed(ladder.above(current)):
        if rule.qualifies(metrics.get(rule.window, EMPTY_WINDOW)):
            return Decision(Reason.UPGRADE, rule.id)
    current_metrics = metrics.get(current.window, EMPTY_WINDOW)
    if current.retained(current_metrics):
        return Decision(Reason.GRACE_ENDED, current.id) if state.grace_until is not None else None
    if live:
        return None
    floor = ladder.by_id.get(state.lifetime_tier_id) if state.lifetime_tier_id else None
    if floor is not None and floor.rank >= current.rank:
        return None
    if state.locked_until is not None and on < state.locked_until:
        return None
    landing = ladder.landing_below(current)
    if not landing:
        return None
    if state.grace_until is None and current.grace_months > 0:
        return Decision(Reason.GRACE_STARTED, current.id, add_months(on, current.grace_months))
    if state.grace_until is not None and on < state.grace_until:
        return None
    target = _downgrade_target(current, landing, metrics)
    if floor is not None and floor.rank > target.rank:
        target = floor
    return Decision(Reason.DOWNGRADE, target.id)


def _downgrade_target(
    current: TierRule, landing: list[TierRule], metrics: Mapping[WindowKey, WindowMetrics]
) -> TierRule:
    if current.downgrade_policy == Tier.Downgrade.ONE_LEVEL:
        return landing[0]
    for rule in landing:
        if rule.is_default or rule.retained(metrics.get(rule.window, EMPTY_WINDOW)):
            return rule
    return landing[-1]


# --- The metric query -------------------------------------------------------------------

_FIELDS = ("spend", "points", "visits")


def _day_key(day_expression):
    return (
        ExtractYear(day_expression) * 10000 + ExtractMonth(day_expression) * 100 + ExtractDay(day_expression)
    )


def _anniversary_filters(on: date, tz: ZoneInfo) -> tuple[Q, Q]:
    """Per-member yearly windows from the member's joining day, as (current, previous)
    conditions. Days compare as yyyymmdd numbers, which every database can compute."""
    anchor = ExtractMonth("member__joined_at", tzinfo=tz) * 100 + ExtractDay("member__joined_at", tzinfo=tz)
    start = (
        Case(
            When(LessThanOrEqual(anchor, on.month * 100 + on.day), then=Value(on.year * 10000)),
            default=Value((on.year - 1) * 10000),
        )
        + anchor
    )
    day = _day_key(F("occurred_on"))
    return Q(GreaterThanOrEqual(day, start)), Q(GreaterThanOrEqual(day, start - 10000)) & Q(
        LessThan(day, start)
    )


def _window_filters(key: WindowKey, on: date, tz: ZoneInfo) -> tuple[Q | None, Q | None]:
    """(current, previous) conditions; None for current means the whole queryset."""
    if key.kind == Window.ROLLING_MONTHS:
        return Q(occurred_on__gte=add_months(on, -key.months)), None
    if key.kind == Window.CALENDAR_YEAR:
        start = date(on.year, 1, 1)
        return Q(occurred_on__gte=start), Q(occurred_on__gte=date(on.year - 1, 1, 1), occurred_on__lt=start)
    if key.kind == Window.ANNIVERSARY_YEAR:
        return _anniversary_filters(on, tz)
    return None, None


def _earliest_day(windows: list[WindowKey], on: date) -> date | None:
    starts = []
    for key in windows:
        if key.kind == Window.LIFETIME:
            return None
        if key.kind == Window.ROLLING_MONTHS:
            starts.append(add_months(on, -key.months))
        else:  # yearly windows reach back at most two years
            starts.append(date(on.year - 2, 1, 1))
    return min(starts) if starts else None


@dataclass(frozen=True)
class MetricLayout:
    """Where each window's sums sit in a raw metric row: current spend, points, visits and,
    for yearly windows, the previous year's three after them."""

    windows: tuple[WindowKey, ...]
    offsets: dict[WindowKey, tuple[int, ...]]
    width: int

    @classmethod
    def of(cls, windows: Iterable[WindowKey]) -> MetricLayout:
        offsets, position = {}, 0
        for key in windows:
            sets = 2 if key.has_periods else 1
            offsets[key] = tuple(position + 3 * index for index in range(sets))
            position += 3 * sets
        return cls(tuple(offsets), offsets, position)

    def zero_row(self) -> tuple:
        return tuple(ZERO if index % 3 == 0 else 0 for index in range(self.width))

    def window_metrics(self, row: tuple) -> dict[WindowKey, WindowMetrics]:
        result = {}
        for key, offsets in self.offsets.items():
            sets = [Metrics(*row[offset : offset + 3]) for offset in offsets]
            result[key] = WindowMetrics(sets[0], sets[1] if len(sets) > 1 else None)
        return result


def metric_rows(
    activity: QuerySet[TierActivity],
    layout: MetricLayout,
    *,
    on: date,
    live: bool,
    tz: ZoneInfo,
    adjustments_qualify: bool,
) -> dict[int, tuple]:
    """Sum ``activity`` (already narrowed to some members) per member and window in one
    grouped query: member id -> raw row in ``layout`` order (no NULLs). Members without
    activity are absent (their row is ``layout.zero_row()``).

    ``live`` counts everything recorded so far; otherwise activity before ``on``.
    """
    if not layout.windows:
        return {}
    queryset = activity
    if not live:
        queryset = queryset.filter(occurred_on__lt=on)
    earliest = _earliest_day(list(layout.windows), on)
    if earliest is not None:
        queryset = queryset.filter(occurred_on__gte=earliest)
    if not adjustments_qualify:
        queryset = queryset.exclude(source=TierActivity.Source.ADJUSTMENT)
    aggregates = {}
    for index, key in enumerate(layout.windows):
        current, previous = _window_filters(key, on, tz)
        for prefix, condition in (("c", current), ("p", previous)):
            if prefix == "p" and not key.has_periods:
                continue
            for name in _FIELDS:
                total = Sum(name, filter=condition) if condition is not None else Sum(name)
                if name == "spend":
                    total = Coalesce(total, Value(ZERO, output_field=DecimalField()))
                else:  # PostgreSQL sums bigints as numeric: back to integers
                    total = Coalesce(Cast(total, BigIntegerField()), Value(0))
                aggregates[f"w{index}{prefix}_{name}"] = total
    grouped = (
        queryset.order_by().values("member_id").annotate(**aggregates).values_list("member_id", *aggregates)
    )
    if connection.vendor == "postgresql":
        # psycopg already returns Decimals and ints: skip Django's per-value converters,
        # which cost more than the query on a million members.
        sql, params = grouped.query.sql_with_params()
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return {row[0]: row[1:] for row in cursor.fetchall()}
    return {row[0]: row[1:] for row in grouped}


def window_metrics(
    activity: QuerySet[TierActivity],
    windows: list[WindowKey],
    *,
    on: date,
    live: bool,
    tz: ZoneInfo,
    adjustments_qualify: bool,
) -> dict[int, dict[WindowKey, WindowMetrics]]:
    """``metric_rows`` as ``WindowMetrics`` per member and window."""
    layout = MetricLayout.of(windows)
    rows = metric_rows(activity, layout, on=on, live=live, tz=tz, adjustments_qualify=adjustments_qualify)
    return {member_id: layout.window_metrics(row) for member_id, row in rows.items()}


# --- A quick screen for the evaluation --------------------------------------------------


def _threshold_source(thresholds: Thresholds, offsets: tuple[int, ...], constants: dict[str, Any]) -> str:
    """A Python expression for ``thresholds.met_by`` on any of the metric sets at
    ``offsets`` of a raw row ``row``; threshold values go into ``constants`` (the source
    holds only column numbers and constant names)."""
    used = [
        (index, value)
        for index, value in enumerate((thresholds.spend, thresholds.points, thresholds.visits))
        if value is not None
    ]
    if not used:
        return "True"
    joiner = " and " if thresholds.mode == Tier.Mode.ALL else " or "
    sets = []
    for offset in offsets:
        checks = []
        for index, value in used:
            name = f"c{len(constants)}"
            constants[name] = value
            checks.append(f"row[{offset + index}] >= {name}")
        sets.append("(" + joiner.join(checks) + ")")
    return "(" + " or ".join(sets) + ")"


class Screen:
    """Whether ``decide`` could return anything for a member, tested on the raw row.

    ``decide`` returns None unless a tier above qualifies, the current tier's retention is
    not met, or the member is in grace; the evaluation runs it only for members passing
    this screen (a few per night). Each tier's test is compiled into one small function,
    which keeps the pass over a million members to a fraction of a microsecond each.
    """

    def __init__(self, ladder: Ladder, layout: MetricLayout) -> None:
        self._checks: dict[int, Callable[[tuple, date | None], bool]] = {}
        for rule in ladder.rules:
            constants: dict[str, Any] = {}
            retain = (
                "True"
                if rule.retention.is_empty
                else _threshold_source(rule.retention, layout.offsets[rule.window], constants)
            )
            above = [
                _threshold_source(other.entry, layout.offsets[other.window], constants)
                for other in ladder.above(rule)
                if other.reachable
            ]
            source = " or ".join(["grace_until is not None", f"not {retain}", *above])
            # The source holds column numbers and constant names only, never a value.
            self._checks[rule.id] = eval(
                f"lambda row, grace_until: {source}", {"__builtins__": {}, **constants}
            )

    def __call__(self, tier_id: int, row: tuple, grace_until: date | None) -> bool:
        return self._checks[tier_id](row, grace_until)
