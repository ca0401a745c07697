"""The periodic voucher expiry in a real Celery worker, its schedule, and the event types."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from membership_site.celery import app as celery_app
from rewards import services, tasks
from rewards.models import Voucher
from tests.celery_support import wait_for
from webhooks import catalog

from .conftest import SYSTEM


@pytest.mark.celery_queues("default")
def test_expire_vouchers_runs_in_a_real_worker(program, celery_worker):
    services.voucher_batch_create(
        program=program,
        name="Old",
        count=4,
        value_kind="amount",
        amount=Decimal("1"),
        valid_until=timezone.now() - timedelta(minutes=1),
        actor=SYSTEM,
    )
    tasks.rewards_expire_vouchers.delay()
    wait_for(lambda: Voucher.objects.filter(status="expired").count() == 4, message=celery_worker.output())


def test_expire_vouchers_is_scheduled_daily():
    celery_app.loader.import_default_modules()
    celery_app.finalize()
    entry = celery_app.conf.beat_schedule["rewards-expire-vouchers"]
    assert entry["task"] == "rewards.expire_vouchers" == tasks.rewards_expire_vouchers.name
    assert entry["schedule"].hour == {2}


def test_reward_and_voucher_events_are_in_the_catalog():
    for name in (
        "reward.redeemed",
        "reward.cancelled",
        "voucher.issued",
        "voucher.used",
        "voucher.cancelled",
        "voucher.expired",
    ):
        assert catalog.get(name) is not None, name
