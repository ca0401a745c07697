"""Fixtures for the tiers tests: a Bronze/Silver/Gold ladder and an activity recorder.

The ladder (program in Europe/Paris, EUR, rolling 12 months unless a test changes it):
- bronze: default, no thresholds;
- silver: 500 EUR spend or 10 visits, kept with 400 EUR or 8 visits; 3 months' grace;
- gold: 1000 EUR spend, kept with 800 EUR; 3 months' grace; one level at a time.
"""

from __future__ import annotations

import itertools
from datetime import date, datetime, time
from decimal import Decimal

import pytest
from django.utils import timezone

from membership_site.actors import Actor
from tiers import services
from tiers.models import Tier

SYSTEM = Actor.system("tests")
_references = itertools.count(1)


@pytest.fixture
def make_tier(program):
    def _make(code: str, rank: int, target_program=None, **fields) -> Tier:
        fields.setdefault("name", code.title())
        return services.tier_create(
            program=target_program or program, code=code, rank=rank, actor=SYSTEM, **fields
        )

    return _make


@pytest.fixture
def ladder(make_tier):
    bronze = make_tier("bronze", 10, is_default=True)
    silver = make_tier(
        "silver",
        20,
        qualify_spend=Decimal("500"),
        qualify_visits=10,
        retain_spend=Decimal("400"),
        retain_visits=8,
        grace_months=3,
        earn_multiplier=Decimal("1.25"),
        discount_percent=Decimal("5"),
    )
    gold = make_tier(
        "gold",
        30,
        qualify_spend=Decimal("1000"),
        retain_spend=Decimal("800"),
        grace_months=3,
        earn_multiplier=Decimal("1.5"),
        discount_percent=Decimal("10"),
        reward_tags=["gold-lounge"],
    )
    return {"bronze": bronze, "silver": silver, "gold": gold}


def paris(day: date, hour: int = 12, minute: int = 0) -> datetime:
    """An instant on ``day`` in Europe/Paris (the test program's time zone)."""
    from zoneinfo import ZoneInfo

    return datetime.combine(day, time(hour, minute), tzinfo=ZoneInfo("Europe/Paris"))


@pytest.fixture
def record():
    def _record(
        member, when: datetime | date, *, spend="0", points=0, visits=0, source="purchase", reference=None
    ):
        occurred_at = when if isinstance(when, datetime) else paris(when)
        return services.activity_record(
            member=member,
            occurred_at=occurred_at,
            source=source,
            reference=reference or f"ref-{next(_references)}",
            spend=Decimal(spend),
            points=points,
            visits=visits,
            actor=SYSTEM,
        )

    return _record


@pytest.fixture
def clock(monkeypatch):
    """Set "now" (django.utils.timezone.now) for the code under test: ``clock(instant)``."""

    def _set(instant: datetime) -> datetime:
        monkeypatch.setattr(timezone, "now", lambda: instant)
        return instant

    return _set
