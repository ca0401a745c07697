"""Celery tasks of the webhooks app, all sent to the dedicated ``webhooks`` queue (a slow
receiver must not delay other work) by the ``enqueue_*`` helpers and the beat entries.
They take ids and are safe to run twice."""

from celery import shared_task

from . import delivery

QUEUE = "webhooks"


@shared_task(name="webhooks.dispatch_events")
def dispatch_events(event_ids: list[int]) -> int:
    """Create the deliveries of newly committed events and enqueue them."""
    return delivery.dispatch_events(event_ids=event_ids)


@shared_task(name="webhooks.deliver")
def deliver(delivery_id: int) -> int | None:
    """One attempt of one delivery; returns the receiver's status code."""
    result = delivery.attempt_delivery(delivery_id=delivery_id)
    return result.status_code if result else None


@shared_task(name="webhooks.sweep")
def sweep() -> dict[str, int]:
    """Dispatch events and resend deliveries that a crash left behind."""
    result = delivery.sweep()
    return {"dispatched_events": result.dispatched_events, "requeued_deliveries": result.requeued_deliveries}


@shared_task(name="webhooks.events_purge")
def events_purge() -> int:
    """Delete events older than EVENTS_RETENTION_DAYS."""
    return delivery.events_purge()


def enqueue_dispatch(event_ids: list[int]) -> None:
    dispatch_events.apply_async((event_ids,), queue=QUEUE)


def enqueue_delivery(delivery_id: int, countdown: float | None = None) -> None:
    deliver.apply_async((delivery_id,), queue=QUEUE, countdown=countdown)
