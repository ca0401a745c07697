from datetime import timedelta

import pytest
from django.utils import timezone

from integrations.models import IdempotencyRecord
from integrations.tasks import idempotency_purge
from tests.celery_support import wait_for


def _record(integration, key, expires_at):
    return IdempotencyRecord.objects.create(
        integration=integration,
        key=key,
        fingerprint="x",
        method="POST",
        path="/api/v1/members",
        expires_at=expires_at,
    )


def test_idempotency_purge_deletes_only_expired_records(api):
    now = timezone.now()
    _record(api.integration, "old", now - timedelta(seconds=1))
    kept = _record(api.integration, "fresh", now + timedelta(hours=1))
    assert idempotency_purge() == 1
    assert list(IdempotencyRecord.objects.values_list("pk", flat=True)) == [kept.pk]


@pytest.mark.celery_queues("default")
def test_idempotency_purge_runs_in_a_real_worker(api, celery_worker):
    _record(api.integration, "old", timezone.now() - timedelta(seconds=1))
    idempotency_purge.delay()
    wait_for(lambda: not IdempotencyRecord.objects.exists(), message=celery_worker.output())
