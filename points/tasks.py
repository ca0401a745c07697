"""Periodic ledger work (see beat.py); each task has a management command doing the same."""

import logging

from celery import shared_task

from membership_site.actors import Actor

from . import upkeep

logger = logging.getLogger(__name__)


@shared_task(name="points.expire")
def points_expire() -> int:
    """Expire lots past their expiry (and points of inactive accounts)."""
    summary = upkeep.points_expire(actor=Actor.system("task:points.expire"))
    return summary.points


@shared_task(name="points.release_pending")
def points_release_pending() -> int:
    return upkeep.points_release_pending(actor=Actor.system("task:points.release_pending"))["points"]


@shared_task(name="points.expire_holds")
def points_expire_holds() -> int:
    return upkeep.points_expire_holds(actor=Actor.system("task:points.expire_holds"))["holds"]


@shared_task(name="points.expiry_warnings")
def points_expiry_warnings() -> int:
    return upkeep.points_expiry_warnings()["warnings"]


@shared_task(name="points.verify_ledger")
def points_verify_ledger() -> int:
    """Log every difference between the cached balances and the entries (an alert for
    operators; the command of the same name exits non-zero on them)."""
    differences = upkeep.points_verify_ledger()
    for difference in differences:
        logger.error("Ledger difference: %s", difference)
    return len(differences)


@shared_task(name="points.birthday_bonuses")
def points_birthday_bonuses() -> int:
    """Give the birthday bonuses due today in each program's time zone (hourly: soon after
    each program's local midnight; a re-run gives nothing twice)."""
    from .earning import bonuses

    actor = Actor.system("task:points.birthday_bonuses")
    return sum(
        bonuses.birthday_bonuses(program=program, actor=actor).members
        for program in bonuses.birthday_programs()
    )
