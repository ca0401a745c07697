"""Expiry dates from a currency's policy, in the program's timezone.

Points are valid to the end of their last day in the program's timezone; we store the
first instant after it (local midnight of the next day, in UTC), so "expired" is simply
``expires_at <= now``.
"""

from __future__ import annotations

import calendar
import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from .errors import InvalidDurationError
from .models import Currency

P = Currency.ExpiryPolicy
_DURATION = re.compile(r"^([1-9]\d{0,3})([dwmy])$")
MAX_DURATION_DAYS = 3660


def add_months(day: date, months: int) -> date:
    """``day`` plus ``months`` calendar months, clamped to the end of shorter months."""
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def end_of_day(day: date, tz: ZoneInfo) -> datetime:
    """The first instant after ``day`` ends in ``tz``, in UTC."""
    return datetime.combine(day + timedelta(days=1), time.min, tzinfo=tz).astimezone(UTC)


def last_valid_day(expires_at: datetime, tz: ZoneInfo) -> date:
    """The last day (in ``tz``) on which points expiring at ``expires_at`` can be used."""
    return (expires_at.astimezone(tz) - timedelta(microseconds=1)).date()


def _fixed_date(year: int, month: int, day: int) -> date:
    return date(year, month, min(day, calendar.monthrange(year, month)[1]))


def lot_expiry(currency: Currency, earned_at: datetime) -> datetime | None:
    """When points earned at ``earned_at`` expire under ``currency``'s policy (None: never,
    or only through inactivity, which is tracked per account). ``currency.program`` gives
    the timezone."""
    policy = currency.expiry_policy
    if policy in (P.NONE, P.INACTIVITY):
        return None
    tz = currency.program.tz
    local_day = earned_at.astimezone(tz).date()
    if policy == P.ROLLING_DAYS:
        return end_of_day(local_day + timedelta(days=currency.expiry_period), tz)
    if policy == P.ROLLING_MONTHS:
        return end_of_day(add_months(local_day, currency.expiry_period), tz)
    if policy == P.FIXED_DATE:
        target = _fixed_date(local_day.year, currency.expiry_month, currency.expiry_day)
        if target < local_day:
            target = _fixed_date(local_day.year + 1, currency.expiry_month, currency.expiry_day)
        if currency.expiry_period:
            target = _fixed_date(
                target.year + currency.expiry_period, currency.expiry_month, currency.expiry_day
            )
        return end_of_day(target, tz)
    return None


def inactivity_expiry(currency: Currency, last_activity_at: datetime | None) -> datetime | None:
    """When an account's points expire for inactivity, given its last activity."""
    if currency.expiry_policy != P.INACTIVITY or last_activity_at is None:
        return None
    tz = currency.program.tz
    return end_of_day(add_months(last_activity_at.astimezone(tz).date(), currency.expiry_period), tz)


def inactivity_cutoff(currency: Currency, at: datetime) -> datetime:
    """Accounts whose last activity is after this cannot have expired by ``at`` (a safe
    bound for a query: N months are at least 28 * N days; the exact day is then checked
    with ``inactivity_expiry``)."""
    return at - timedelta(days=max(28 * currency.expiry_period - 2, 0))


def parse_duration(text: str, *, field: str = "within") -> timedelta:
    """'90d', '12w', '6m', '1y' as a timedelta (months are 30 days, years 365)."""
    match = _DURATION.match((text or "").strip())
    if not match:
        raise InvalidDurationError(f"'{text}' is not a duration like 90d, 12w, 6m or 1y.", field=field)
    number, unit = int(match.group(1)), match.group(2)
    days = number * {"d": 1, "w": 7, "m": 30, "y": 365}[unit]
    if days > MAX_DURATION_DAYS:
        raise InvalidDurationError(f"'{text}' is longer than {MAX_DURATION_DAYS} days.", field=field)
    return timedelta(days=days)
