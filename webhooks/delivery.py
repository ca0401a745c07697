"""Sending events to webhook endpoints: fan-out, attempts, retries, the sweeper, retention.

The flow, each step in its own short transaction and never an HTTP call inside one:

1. ``event_record`` writes the event and its pending EventDispatch; after commit it
   enqueues ``tasks.dispatch_events``.
2. ``dispatch_events`` creates one Delivery per matching active endpoint, marks the
   dispatch done and, after commit, enqueues one ``tasks.deliver`` per delivery.
3. ``attempt_delivery`` claims the delivery (state ``sending`` with a lease), sends it
   outside any transaction, then records the attempt and schedules the next one.
4. ``sweep`` (beat and ``manage.py webhooks_sweep``) redoes what a crash lost: dispatches
   still pending after a grace period, deliveries overdue, attempts whose lease ran out.

Every step can run twice without harm (row locks, a unique delivery per event and
endpoint, and the claim's state check), so the at-least-once queue is enough.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import httpx
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from standardwebhooks import Webhook

from membership_site.errors import DomainError

from . import services
from .models import Delivery, DeliveryAttempt, Event, EventDispatch, WebhookEndpoint
from .urlsafety import check_url

logger = logging.getLogger(__name__)

# Delay before each retry (attempt 2 to 8): about 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h,
# each stretched or shrunk by up to JITTER so that failures do not retry in lockstep.
RETRY_DELAYS = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=10),
)
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
JITTER = 0.1
EXCERPT_BYTES = 1024
USER_AGENT = "LoyaltyPlatform-Webhooks/1.0"


def retry_delay(attempt_number: int, rand: Callable[[], float] = random.random) -> timedelta | None:
    """The wait after failed attempt ``attempt_number`` (1-based); None after the last."""
    if attempt_number < 1 or attempt_number > len(RETRY_DELAYS):
        return None
    factor = 1 + JITTER * (2 * rand() - 1)
    return RETRY_DELAYS[attempt_number - 1] * factor


def _tasks():
    from . import tasks

    return tasks


def _enqueue_deliveries(delivery_ids: list[int]) -> None:
    tasks = _tasks()
    for delivery_id in delivery_ids:
        try:
            tasks.enqueue_delivery(delivery_id)
        except Exception:
            logger.warning("Could not enqueue delivery %s; the sweeper will", delivery_id)
            return


def _schedule_retry(delivery_id: int, countdown: float) -> None:
    from membership_site.celery import app

    # In eager mode (no broker: `make run`) a countdown would be ignored and the retry
    # would run at once, inside this one; the sweeper sends it when it is due instead.
    if app.conf.task_always_eager:
        return
    try:
        _tasks().enqueue_delivery(delivery_id, countdown=max(countdown, 0))
    except Exception:
        logger.warning("Could not schedule the retry of delivery %s; the sweeper will", delivery_id)


# --- Fan-out ----------------------------------------------------------------------------


@transaction.atomic
def dispatch_events(*, event_ids: Iterable[int]) -> int:
    """Create the deliveries of events not yet dispatched; returns how many were created.
    Dispatches locked by a concurrent run are left to it."""
    dispatches = list(
        EventDispatch.objects.select_for_update(skip_locked=True, of=("self",))
        .select_related("event")
        .filter(event_id__in=list(event_ids), dispatched_at__isnull=True)
        .order_by("event_id")
    )
    if not dispatches:
        return 0
    program_ids = {dispatch.event.program_id for dispatch in dispatches}
    endpoints: dict[int, list[WebhookEndpoint]] = defaultdict(list)
    for endpoint in WebhookEndpoint.objects.filter(program_id__in=program_ids, is_active=True):
        endpoints[endpoint.program_id].append(endpoint)
    now = timezone.now()
    deliveries = []
    for dispatch in dispatches:
        event = dispatch.event
        matching = [] if event.type == services.TEST_EVENT else endpoints[event.program_id]
        matching = [endpoint for endpoint in matching if endpoint.receives(event.type)]
        dispatch.dispatched_at = now
        dispatch.deliveries = len(matching)
        deliveries += [
            Delivery(
                event=event,
                endpoint=endpoint,
                program_id=event.program_id,
                next_attempt_at=now,
                created_at=now,
                updated_at=now,
            )
            for endpoint in matching
        ]
    Delivery.objects.bulk_create(deliveries, ignore_conflicts=True)
    # One UPDATE per distinct delivery count (a handful), not one CASE per row.
    by_count: dict[int, list[int]] = defaultdict(list)
    for dispatch in dispatches:
        by_count[dispatch.deliveries].append(dispatch.event_id)
    for count, event_ids_with_count in by_count.items():
        EventDispatch.objects.filter(event_id__in=event_ids_with_count).update(
            dispatched_at=now, deliveries=count
        )
    new_ids = list(
        Delivery.objects.filter(
            event_id__in=[dispatch.event_id for dispatch in dispatches], state=Delivery.State.PENDING
        ).values_list("pk", flat=True)
    )
    transaction.on_commit(partial(_enqueue_deliveries, new_ids), robust=True)
    return len(deliveries)


# --- One attempt ------------------------------------------------------------------------


def envelope(event: Event) -> dict[str, Any]:
    """The JSON body of a webhook and of an event in the stream."""
    return {
        "id": event.event_id,
        "type": event.type,
        "occurred_at": event.occurred_at.isoformat().replace("+00:00", "Z"),
        "recorded_at": event.recorded_at.isoformat().replace("+00:00", "Z"),
        "program_id": event.program_id,
        "member_id": event.member_id,
        "member_sequence": event.member_sequence,
        "schema_version": event.schema_version,
        "data": event.data,
    }


def payload(event: Event) -> str:
    return json.dumps(envelope(event), separators=(",", ":"), ensure_ascii=False)


def signature_header(secrets: list[str], msg_id: str, timestamp: datetime, body: str) -> str:
    """``v1,<sig>`` per secret, space-separated (Standard Webhooks): during a rotation
    receivers holding either secret can verify."""
    return " ".join(Webhook(secret).sign(msg_id, timestamp, body) for secret in secrets)


@dataclass
class AttemptResult:
    status_code: int | None = None
    excerpt: str = ""
    error: str = ""
    duration_ms: int = 0

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def send(url: str, *, body: str, headers: dict[str, str]) -> AttemptResult:
    """POST ``body`` to ``url``: no redirects followed, ``WEBHOOK_TIMEOUT_SECONDS``, the
    address re-checked against SSRF and pinned, the first 1 KB of the answer kept."""
    started = time.perf_counter()
    result = AttemptResult()
    try:
        target = check_url(url, require_https=False)
        request_url = target.url
        extensions: dict[str, Any] = {}
        headers = dict(headers)
        if target.address is not None:
            # Connect to the address that was checked; the certificate and the Host header
            # still name the original host.
            request_url = target.url.copy_with(host=str(target.address))
            headers["Host"] = target.url.netloc.decode("ascii")
            if target.url.scheme == "https":
                extensions["sni_hostname"] = target.url.host
        with (
            httpx.Client(
                timeout=settings.WEBHOOK_TIMEOUT_SECONDS, follow_redirects=False, trust_env=False
            ) as client,
            client.stream(
                "POST", request_url, content=body.encode(), headers=headers, extensions=extensions
            ) as response,
        ):
            result.status_code = response.status_code
            excerpt = b""
            for chunk in response.iter_raw():
                excerpt += chunk
                if len(excerpt) >= EXCERPT_BYTES:
                    break
            result.excerpt = excerpt[:EXCERPT_BYTES].decode("utf-8", errors="replace")
            if not result.succeeded:
                result.error = f"HTTP {response.status_code}"
                if 300 <= response.status_code < 400:
                    result.error += " (redirects are not followed)"
    except DomainError as error:
        result.error = f"Refused: {error.detail}"
    except httpx.TimeoutException:
        result.error = f"Timed out after {settings.WEBHOOK_TIMEOUT_SECONDS:g} s"
    except httpx.HTTPError as error:
        result.error = f"{type(error).__name__}: {error}"[:500]
    result.duration_ms = int((time.perf_counter() - started) * 1000)
    return result


@dataclass(frozen=True)
class _Claim:
    delivery_id: int
    number: int
    url: str
    secrets: list[str]
    event: Event
    triggered_by: str


def _claim(delivery_id: int) -> _Claim | None:
    """Take the delivery for one attempt if it is due and nobody holds it."""
    now = timezone.now()
    with transaction.atomic():
        delivery = (
            Delivery.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("endpoint", "event")
            .filter(pk=delivery_id)
            .filter(
                Q(state__in=[Delivery.State.PENDING, Delivery.State.RETRYING], next_attempt_at__lte=now)
                | Q(state=Delivery.State.SENDING, lease_until__lt=now)
            )
            .first()
        )
        if delivery is None:
            return None
        if not delivery.endpoint.is_active:
            delivery.state = Delivery.State.FAILED
            delivery.next_attempt_at = None
            delivery.last_error = "The endpoint is disabled."
            delivery.updated_at = now
            delivery.save()
            return None
        delivery.state = Delivery.State.SENDING
        delivery.attempt_count += 1
        delivery.lease_until = now + timedelta(seconds=settings.WEBHOOK_TIMEOUT_SECONDS + 60)
        delivery.last_attempt_at = now
        delivery.updated_at = now
        triggered_by, delivery.retry_requested_by = delivery.retry_requested_by, ""
        delivery.save()
        return _Claim(
            delivery_id=delivery.pk,
            number=delivery.attempt_count,
            url=delivery.endpoint.url,
            secrets=services.endpoint_secrets(delivery.endpoint, at=now),
            event=delivery.event,
            triggered_by=triggered_by,
        )


def attempt_delivery(*, delivery_id: int) -> AttemptResult | None:
    """Send a due delivery once and record the outcome; None when it was not due (already
    sent, taken by another worker, deleted, or its endpoint disabled)."""
    claim = _claim(delivery_id)
    if claim is None:
        return None
    started_at = timezone.now()
    body = payload(claim.event)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "webhook-id": claim.event.event_id,
        "webhook-timestamp": str(int(started_at.timestamp())),
        "webhook-signature": signature_header(claim.secrets, claim.event.event_id, started_at, body),
    }
    result = send(claim.url, body=body, headers=headers)
    _record(claim, started_at, result)
    return result


@transaction.atomic
def _record(claim: _Claim, started_at: datetime, result: AttemptResult) -> None:
    now = timezone.now()
    delivery = Delivery.objects.select_for_update().filter(pk=claim.delivery_id).first()
    if delivery is None:  # deleted with its endpoint meanwhile
        return
    DeliveryAttempt.objects.create(
        delivery=delivery,
        number=claim.number,
        started_at=started_at,
        duration_ms=result.duration_ms,
        status_code=result.status_code,
        succeeded=result.succeeded,
        response_excerpt=result.excerpt,
        error=result.error[:500],
        triggered_by=claim.triggered_by,
    )
    if delivery.state != Delivery.State.SENDING or delivery.attempt_count != claim.number:
        return  # our lease ran out and another attempt took over; it decides the state
    delivery.last_status_code = result.status_code
    delivery.last_error = result.error[:500]
    delivery.lease_until = None
    delivery.updated_at = now
    endpoint_id = delivery.endpoint_id
    if result.succeeded:
        delivery.state = Delivery.State.SUCCEEDED
        delivery.next_attempt_at = None
        delivery.save()
        WebhookEndpoint.objects.filter(pk=endpoint_id, failing_since__isnull=False).update(failing_since=None)
        return
    delay = None if result.status_code == 410 else retry_delay(claim.number)
    if delay is None:
        delivery.state = Delivery.State.FAILED
        delivery.next_attempt_at = None
    else:
        delivery.state = Delivery.State.RETRYING
        delivery.next_attempt_at = now + delay
        transaction.on_commit(partial(_schedule_retry, delivery.pk, delay.total_seconds()), robust=True)
    delivery.save()
    WebhookEndpoint.objects.filter(pk=endpoint_id, failing_since__isnull=True).update(
        failing_since=started_at
    )
    if result.status_code == 410:
        endpoint_disable_automatically(
            endpoint_id=endpoint_id, reason="The receiver answered 410 Gone.", at=now
        )
        return
    cutoff = now - timedelta(days=settings.WEBHOOK_DISABLE_AFTER_FAILING_DAYS)
    if WebhookEndpoint.objects.filter(pk=endpoint_id, is_active=True, failing_since__lte=cutoff).exists():
        endpoint_disable_automatically(
            endpoint_id=endpoint_id,
            reason=(
                f"Every attempt failed for {settings.WEBHOOK_DISABLE_AFTER_FAILING_DAYS} days "
                f"(last: {result.error or 'no answer'})."
            )[:500],
            at=now,
        )


@transaction.atomic
def endpoint_disable_automatically(*, endpoint_id: int, reason: str, at: datetime | None = None) -> bool:
    """Disable a failing endpoint, close its open deliveries and tell the program's other
    endpoints (``webhook.endpoint_disabled``). False if it was already disabled."""
    at = at or timezone.now()
    endpoint = WebhookEndpoint.objects.select_for_update().filter(pk=endpoint_id, is_active=True).first()
    if endpoint is None:
        return False
    endpoint.is_active = False
    endpoint.disabled_at = at
    endpoint.disabled_reason = reason
    endpoint.save()
    services.close_open_deliveries(endpoint, f"The endpoint was disabled: {reason}"[:500])
    logger.warning("Webhook endpoint %s disabled: %s", endpoint.pk, reason)
    services.event_record(
        program_id=endpoint.program_id,
        type=services.ENDPOINT_DISABLED_EVENT,
        occurred_at=at,
        data={
            "endpoint": {"id": endpoint.pk, "url": endpoint.url, "description": endpoint.description},
            "reason": reason,
            "disabled_at": at,
            "failing_since": endpoint.failing_since,
        },
    )
    return True


# --- The sweeper --------------------------------------------------------------------------


@dataclass(frozen=True)
class SweepResult:
    dispatched_events: int
    requeued_deliveries: int


def sweep(*, batch_size: int = 500, progress: Callable[[int], None] | None = None) -> SweepResult:
    """Redo lost work: dispatch events whose dispatch is still pending after
    ``WEBHOOK_SWEEP_GRACE_SECONDS``, and enqueue deliveries overdue by as long or whose
    attempt's lease ran out (the worker died while sending)."""
    now = timezone.now()
    grace = timedelta(seconds=settings.WEBHOOK_SWEEP_GRACE_SECONDS)
    dispatched = 0
    seen: set[int] = set()
    while True:
        ids = list(
            EventDispatch.objects.filter(dispatched_at__isnull=True, created_at__lt=now - grace)
            .exclude(event_id__in=seen)
            .order_by("created_at")
            .values_list("event_id", flat=True)[:batch_size]
        )
        if not ids:
            break
        seen.update(ids)  # rows locked by a concurrent dispatch are skipped, not retried forever
        dispatch_events(event_ids=ids)
        dispatched += len(ids)
        if progress:
            progress(len(ids))
    overdue = list(
        Delivery.objects.filter(
            Q(state__in=[Delivery.State.PENDING, Delivery.State.RETRYING], next_attempt_at__lt=now - grace)
            | Q(state=Delivery.State.SENDING, lease_until__lt=now)
        )
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)
    )
    for start in range(0, len(overdue), batch_size):
        chunk = overdue[start : start + batch_size]
        _enqueue_deliveries(chunk)
        if progress:
            progress(len(chunk))
    return SweepResult(dispatched_events=dispatched, requeued_deliveries=len(overdue))


# --- Retention ----------------------------------------------------------------------------


def events_purge(
    *,
    older_than_days: int | None = None,
    batch_size: int = 2000,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Delete events recorded more than ``older_than_days`` (default
    ``EVENTS_RETENTION_DAYS``) ago, with their dispatch rows, deliveries and attempts, in
    batches (short transactions). Member sequence counters are kept, so numbering goes on."""
    days = settings.EVENTS_RETENTION_DAYS if older_than_days is None else older_than_days
    cutoff = timezone.now() - timedelta(days=days)
    deleted = 0
    while True:
        with transaction.atomic():
            ids = list(
                Event.objects.filter(recorded_at__lt=cutoff)
                .order_by("id")
                .values_list("pk", flat=True)[:batch_size]
            )
            if not ids:
                break
            DeliveryAttempt.objects.filter(delivery__event_id__in=ids).delete()
            Delivery.objects.filter(event_id__in=ids).delete()
            EventDispatch.objects.filter(event_id__in=ids).delete()
            Event.objects.filter(pk__in=ids).delete()
        deleted += len(ids)
        if progress:
            progress(len(ids))
    return deleted
