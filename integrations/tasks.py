from celery import shared_task

from membership_site.api import idempotency


@shared_task(name="integrations.idempotency_purge")
def idempotency_purge() -> int:
    """Delete Idempotency-Key records past their retention."""
    return idempotency.purge_expired()
