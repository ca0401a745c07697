"""Periodic rewards work (see beat.py); the command of the same name does the same."""

from celery import shared_task

from membership_site.actors import Actor

from . import services


@shared_task(name="rewards.expire_vouchers")
def rewards_expire_vouchers() -> int:
    """Mark issued vouchers past their validity as expired."""
    return services.vouchers_expire(actor=Actor.system("task:rewards.expire_vouchers"))
