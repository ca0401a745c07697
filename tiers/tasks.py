"""Periodic evaluation: each program is evaluated once a day, shortly after midnight in its
own time zone (``TIERS_EVALUATION_LOCAL_HOUR``)."""

from __future__ import annotations

from datetime import date

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from membership_site.actors import Actor
from programs.models import Program

from . import selectors, services
from .errors import EvaluationRunningError


@shared_task(name="tiers.evaluate_due")
def evaluate_due() -> list[int]:
    """Queue the evaluation of every program whose local day has reached the evaluation
    hour and has no finished evaluation yet (run hourly, so each time zone gets its turn).
    Returns the ids of the programs queued."""
    queued = []
    now = timezone.now()
    programs = Program.objects.exclude(status=Program.Status.CLOSED).filter(tiers__isnull=False).distinct()
    for program in programs:
        local = now.astimezone(program.tz)
        if local.hour < settings.TIERS_EVALUATION_LOCAL_HOUR:
            continue
        if selectors.evaluation_due(program=program, on=local.date()):
            evaluate_program.delay(program.pk, local.date().isoformat())
            queued.append(program.pk)
    return queued


@shared_task(name="tiers.evaluate_program")
def evaluate_program(program_id: int, day: str) -> int | None:
    """Evaluate one program for ``day`` (ISO date); returns the evaluation run's id, or None
    when another evaluation of the program is running (the next hourly check retries)."""
    program = Program.objects.get(pk=program_id)
    try:
        run = services.tiers_evaluate(
            program=program,
            on=date.fromisoformat(day),
            actor=Actor.system("task:tiers.evaluate_program"),
            batch_size=settings.TIERS_EVALUATION_BATCH_SIZE,
        )
    except EvaluationRunningError:
        return None
    return run.pk
