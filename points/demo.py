"""Demo points: each demo member gets a welcome bonus and a purchase still pending its
return window; then the earning demo (``points.earning.demo``: rules, a campaign and a few
purchases). Safe to re-run: the references make every earn happen once."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from members.models import Member
from membership_site.actors import Actor
from programs.models import Program

from . import services
from .earning import demo as earning_demo

WELCOME_POINTS = 500
PENDING_POINTS = 120


def load(*, program: Program, actor: Actor) -> None:
    _ledger(program=program, actor=actor)
    earning_demo.load(program=program, actor=actor)


def _ledger(*, program: Program, actor: Actor) -> None:
    members = Member.objects.filter(program=program).exclude(status=Member.Status.TERMINATED).order_by("pk")
    now = timezone.now()
    for index, member in enumerate(members):
        services.points_earn(
            member=member,
            amount=WELCOME_POINTS + 100 * index,
            reference=f"demo-welcome-{member.number}",
            description="Welcome bonus",
            actor=actor,
        )
        services.points_earn(
            member=member,
            amount=PENDING_POINTS,
            reference=f"demo-pending-{member.number}",
            description="Purchase (pending until the return window closes)",
            pending_until=now + timedelta(days=14),
            actor=actor,
        )
