"""Reads: the event stream, endpoints and deliveries of one program."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from django.db import connection, models
from django.db.models import Prefetch, Q, QuerySet

from . import catalog
from .errors import (
    DeliveryNotFoundError,
    EventNotFoundError,
    InvalidCursorError,
    UnknownEventTypeError,
    WebhookEndpointNotFoundError,
)
from .models import Delivery, DeliveryAttempt, Event, WebhookEndpoint
from .services import TEST_EVENT


class _SnapshotXmin(models.Func):
    """The oldest transaction still running when the statement started: every
    transaction with a smaller id has committed or rolled back."""

    output_field = models.BigIntegerField()
    template = "(pg_snapshot_xmin(pg_current_snapshot())::text::bigint)"


class _OwnTransactionId(models.Func):
    """The reading transaction's own id, if it wrote anything (its events are visible to
    it; an API read has none)."""

    output_field = models.BigIntegerField()
    template = "(pg_current_xact_id_if_assigned()::text::bigint)"


@dataclass(frozen=True)
class StreamPosition:
    txid: int
    id: int

    def encode(self) -> str:
        return base64.urlsafe_b64encode(f"{self.txid}.{self.id}".encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, cursor: str) -> StreamPosition:
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
            txid, id_ = (int(part) for part in raw.split("."))
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise InvalidCursorError(
                f"'{cursor}' is not a cursor this API returned.", field="after"
            ) from None
        if txid < 0 or id_ < 0:
            raise InvalidCursorError(f"'{cursor}' is not a cursor this API returned.", field="after")
        return cls(txid, id_)

    @classmethod
    def of(cls, event: Event) -> StreamPosition:
        return cls(event.txid, event.pk)


def parse_event_types(value: str | None) -> list[str]:
    """A comma-separated list of catalog types (blank: none given)."""
    names = [name.strip() for name in (value or "").split(",") if name.strip()]
    unknown = [name for name in names if catalog.get(name) is None]
    if unknown:
        raise UnknownEventTypeError(f"Unknown event types: {', '.join(unknown)}.", field="type")
    return names


def event_stream(
    *,
    program_id: int,
    after: StreamPosition | None = None,
    types: list[str] | None = None,
    member_id: int | None = None,
    limit: int = 100,
) -> list[Event]:
    """Up to ``limit`` events after ``after``, oldest first, such that no event can later
    commit *before* the last one returned: the stream is read in (txid, id) order and
    only up to the oldest transaction still running. A poller that resumes from the last
    position therefore never misses an event (at-least-once, with no gaps).

    Test events (``webhook.test``) go to one endpoint only and are not in the stream.
    """
    events = Event.objects.filter(program_id=program_id).exclude(type=TEST_EVENT)
    if connection.vendor == "postgresql":
        events = events.filter(Q(txid__lt=_SnapshotXmin()) | Q(txid=_OwnTransactionId()))
    if after is not None:
        events = events.filter(Q(txid__gt=after.txid) | Q(txid=after.txid, id__gt=after.id))
    if types:
        events = events.filter(type__in=types)
    if member_id is not None:
        events = events.filter(member_id=member_id)
    return list(events.order_by("txid", "id")[:limit])


def event_get(*, program_id: int, event_id: str) -> Event:
    try:
        return Event.objects.exclude(type=TEST_EVENT).get(program_id=program_id, event_id=event_id)
    except Event.DoesNotExist:
        raise EventNotFoundError(f"No event {event_id} in this program.") from None


def endpoint_list(*, program_id: int) -> QuerySet[WebhookEndpoint]:
    return WebhookEndpoint.objects.filter(program_id=program_id)


def endpoint_get(*, program_id: int, endpoint_id: int | str) -> WebhookEndpoint:
    try:
        return endpoint_list(program_id=program_id).get(pk=int(endpoint_id))
    except (WebhookEndpoint.DoesNotExist, ValueError, TypeError):
        raise WebhookEndpointNotFoundError(f"No webhook endpoint {endpoint_id} in this program.") from None


def delivery_list(*, program_id: int, endpoint: WebhookEndpoint | None = None) -> QuerySet[Delivery]:
    """Deliveries with their event and attempts (oldest attempt first)."""
    deliveries = Delivery.objects.filter(program_id=program_id)
    if endpoint is not None:
        deliveries = deliveries.filter(endpoint=endpoint)
    return deliveries.select_related("event").prefetch_related(
        Prefetch("attempts", queryset=DeliveryAttempt.objects.order_by("number"))
    )


def delivery_get(*, program_id: int, delivery_id: int | str) -> Delivery:
    try:
        return delivery_list(program_id=program_id).get(pk=int(delivery_id))
    except (Delivery.DoesNotExist, ValueError, TypeError):
        raise DeliveryNotFoundError(f"No webhook delivery {delivery_id} in this program.") from None
