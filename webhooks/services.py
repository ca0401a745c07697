"""Writes: recording events (the outbox), webhook endpoints, test sends and resends.

Deliveries themselves (fan-out, attempts, retries, the sweeper, retention) are in
``webhooks.delivery``.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.utils import timezone

from membership_site.actors import Actor

from . import catalog, crypto
from .errors import (
    DeliveryInProgressError,
    EndpointDisabledError,
    EndpointLimitReachedError,
    UnknownEventTypeError,
)
from .models import Delivery, Event, EventDispatch, MemberEventCounter, WebhookEndpoint, new_event_id
from .urlsafety import check_url

logger = logging.getLogger(__name__)

TEST_EVENT = "webhook.test"
ENDPOINT_DISABLED_EVENT = "webhook.endpoint_disabled"


# --- Events -----------------------------------------------------------------------------


@dataclass(frozen=True)
class EventInput:
    """One event for ``event_record_many``; the fields are those of ``event_record``."""

    program_id: int
    type: str
    data: dict[str, Any]
    member_id: int | None = None
    occurred_at: datetime | None = None
    schema_version: int = 1


def _jsonable(data: dict[str, Any]) -> dict[str, Any]:
    # Decimals, dates and UUIDs become strings exactly as the API renders them.
    return json.loads(json.dumps(data, cls=DjangoJSONEncoder))


def _allocate_member_sequences(counts: dict[int, int]) -> dict[int, int]:
    """Reserve ``counts[member_id]`` sequence numbers per member in one statement; returns
    each member's last number. The counter rows stay locked until the caller's transaction
    ends, so numbers follow commit order; members are locked in id order (no deadlock
    between two bulk writers)."""
    table = MemberEventCounter._meta.db_table
    last: dict[int, int] = {}
    members = sorted(counts)
    # 2 parameters a row; chunks keep every backend under its parameter limit.
    for start in range(0, len(members), 5000):
        chunk = members[start : start + 5000]
        values = ", ".join(["(%s, %s)"] * len(chunk))
        params: list[int] = []
        for member_id in chunk:
            params += [member_id, counts[member_id]]
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} (member_id, last_sequence) VALUES {values} "
                f"ON CONFLICT (member_id) DO UPDATE "
                f"SET last_sequence = {table}.last_sequence + excluded.last_sequence "
                "RETURNING member_id, last_sequence",
                params,
            )
            last.update(dict(cursor.fetchall()))
    return last


def _enqueue_dispatch(event_ids: list[int]) -> None:
    from . import tasks

    try:
        tasks.enqueue_dispatch(event_ids)
    except Exception as error:
        # The events are committed; the sweeper dispatches them after its grace period.
        # The error's class only: a broker error's text can carry its URL.
        logger.warning(
            "Could not enqueue the dispatch of %d event(s) (%s); the sweeper will",
            len(event_ids),
            type(error).__name__,
        )


def event_record_many(*, events: Iterable[EventInput | Mapping[str, Any]]) -> list[Event]:
    """Write many events in the caller's transaction with a fixed number of queries
    (bulk imports: one call per chunk). Per-member sequence numbers are given in the order
    of ``events``.

    On PostgreSQL it is one statement whatever the number of events (see
    ``_insert_events_sql``). Elsewhere (SQLite, the demo database) it is three bulk
    statements."""
    inputs = [event if isinstance(event, EventInput) else EventInput(**event) for event in events]
    if not inputs:
        return []
    for event in inputs:
        if catalog.get(event.type) is None:
            raise ValueError(f"Event type '{event.type}' is not in the catalog (webhooks.catalog.register).")
    now = timezone.now()
    # No savepoint of its own (the checks above come first, so only a database error can
    # fail inside): a change never commits without its event, so a failed event write
    # fails the caller's transaction anyway, and every change that emits an event saves
    # two round trips.
    with transaction.atomic(savepoint=False):
        if connection.vendor == "postgresql":
            created = _insert_events_postgresql(inputs, now)
        else:
            created = _insert_events_portable(inputs, now)
        transaction.on_commit(partial(_enqueue_dispatch, [event.pk for event in created]), robust=True)
    return created


def _insert_events_portable(inputs: list[EventInput], now: datetime) -> list[Event]:
    counts = Counter(event.member_id for event in inputs if event.member_id is not None)
    last = _allocate_member_sequences(counts) if counts else {}
    next_sequence = {member_id: last[member_id] - count + 1 for member_id, count in counts.items()}
    rows = []
    for event in inputs:
        sequence = None
        if event.member_id is not None:
            sequence = next_sequence[event.member_id]
            next_sequence[event.member_id] += 1
        rows.append(
            Event(
                type=event.type,
                program_id=event.program_id,
                member_id=event.member_id,
                member_sequence=sequence,
                schema_version=event.schema_version,
                occurred_at=event.occurred_at or now,
                recorded_at=now,
                data=_jsonable(event.data),
            )
        )
    created = Event.objects.bulk_create(rows)
    EventDispatch.objects.bulk_create([EventDispatch(event=event, created_at=now) for event in created])
    return created


def _insert_events_sql() -> str:
    """The PostgreSQL statement of ``event_record_many``. The batch arrives as one JSON
    array of records (serialised by the C JSON encoder, parsed by the server), so the
    query text and its parameters do not grow with the batch and no per-value quoting
    runs in Python. In one statement: reserve each member's sequence numbers, insert the
    events numbered from them, insert their dispatch rows.

    The counters are upserted in member id order (two bulk writers lock them in the same
    order, so one waits for the other instead of deadlocking) and stay locked until the
    caller commits: numbers follow commit order, and a rolled-back batch gives its numbers
    back. Within the batch a member's events are numbered in input order, and the events
    get their ids in input order."""
    counter = MemberEventCounter._meta.db_table
    event = Event._meta.db_table
    dispatch = EventDispatch._meta.db_table
    return f"""
        WITH input AS (
            SELECT * FROM json_to_recordset(%(events)s::json) AS t(
                position integer, event_id text, type text, program_id bigint, member_id bigint,
                schema_version smallint, occurred_at timestamptz, data jsonb
            )
        ), counters AS (
            INSERT INTO {counter} AS c (member_id, last_sequence)
            SELECT member_id, count(*) FROM input WHERE member_id IS NOT NULL
            GROUP BY member_id ORDER BY member_id
            ON CONFLICT (member_id) DO UPDATE SET last_sequence = c.last_sequence + excluded.last_sequence
            RETURNING member_id, last_sequence
        ), numbered AS (
            SELECT i.*,
                   row_number() OVER (PARTITION BY i.member_id ORDER BY i.position) AS nth,
                   count(*) OVER (PARTITION BY i.member_id) AS batch_count
            FROM input i
        ), inserted AS (
            INSERT INTO {event}
                (event_id, type, program_id, member_id, member_sequence, schema_version,
                 occurred_at, recorded_at, data)
            SELECT n.event_id, n.type, n.program_id, n.member_id,
                   c.last_sequence - n.batch_count + n.nth, n.schema_version,
                   n.occurred_at, %(now)s, n.data
            FROM numbered n LEFT JOIN counters c ON c.member_id = n.member_id
            ORDER BY n.position
            RETURNING id, event_id, member_sequence, txid
        ), dispatched AS (
            INSERT INTO {dispatch} (event_id, created_at, dispatched_at, deliveries)
            SELECT id, %(now)s, NULL, 0 FROM inserted
        )
        SELECT id, event_id, member_sequence, txid FROM inserted
    """


def _insert_events_postgresql(inputs: list[EventInput], now: datetime) -> list[Event]:
    records = [
        {
            "position": position,
            "event_id": new_event_id(),
            "type": event.type,
            "program_id": event.program_id,
            "member_id": event.member_id,
            "schema_version": event.schema_version,
            # isoformat, not the JSON encoder: it would cut the microseconds.
            "occurred_at": (event.occurred_at or now).isoformat(),
            "data": event.data,
        }
        for position, event in enumerate(inputs)
    ]
    # Decimals, dates and UUIDs become strings exactly as the API renders them.
    payload = json.dumps(records, cls=DjangoJSONEncoder, separators=(",", ":"))
    with connection.cursor() as cursor:
        cursor.execute(_insert_events_sql(), {"events": payload, "now": now})
        stored = {event_id: (pk, sequence, txid) for pk, event_id, sequence, txid in cursor.fetchall()}
    # Instances as read from the database (positional: the cheapest way to build many).
    names = [field.attname for field in Event._meta.concrete_fields]
    created = []
    for event, record in zip(inputs, json.loads(payload), strict=True):
        pk, sequence, txid = stored[record["event_id"]]
        values = {
            "id": pk,
            "event_id": record["event_id"],
            "type": event.type,
            "program_id": event.program_id,
            "member_id": event.member_id,
            "member_sequence": sequence,
            "schema_version": event.schema_version,
            "occurred_at": event.occurred_at or now,
            "recorded_at": now,
            "txid": txid,
            "data": record["data"],
        }
        created.append(Event.from_db(connection.alias, names, [values[name] for name in names]))
    return created


def event_record(
    *,
    program_id: int,
    type: str,
    data: dict[str, Any],
    member_id: int | None = None,
    occurred_at: datetime | None = None,
    schema_version: int = 1,
) -> Event:
    """Write an event in the caller's transaction.

    Call it from the service that makes the change, after the change, with everything a
    receiver needs to act without calling back (ids, amounts, balances after, codes) and
    no secrets. Its webhooks are sent after the transaction commits.
    """
    return event_record_many(
        events=[EventInput(program_id, type, data, member_id, occurred_at, schema_version)]
    )[0]


ERASED = None  # what an erased value becomes in an event's data


def _redact(value: Any, erase: frozenset[str]) -> tuple[Any, bool]:
    if isinstance(value, str):
        return (ERASED, True) if value.casefold() in erase else (value, False)
    if isinstance(value, dict):
        changed = False
        out = {}
        for key, item in value.items():
            out[key], hit = _redact(item, erase)
            changed |= hit
        return out, changed
    if isinstance(value, list):
        pairs = [_redact(item, erase) for item in value]
        return [item for item, _ in pairs], any(hit for _, hit in pairs)
    return value, False


@transaction.atomic
def events_redact_member(*, member_id: int, values: Iterable[str], batch_size: int = 500) -> int:
    """Erase personal data from the stored events of one member (GDPR erasure), in the
    caller's transaction: every string in their ``data`` equal to one of ``values``
    (case-insensitive; e-mail, phone, names, card numbers...) becomes null. The events
    themselves stay, with their ids, sequence numbers, amounts and balances, so the stream
    and the per-member order are unchanged; deliveries not yet sent, and retries, carry
    the redacted data. Returns how many events changed.

    The one exception to "events are never updated"."""
    erase = frozenset(value.casefold() for value in values if isinstance(value, str) and value.strip())
    if not erase:
        return 0
    changed: list[Event] = []
    for event in Event.objects.filter(member_id=member_id).only("id", "data").iterator(chunk_size=batch_size):
        data, hit = _redact(event.data, erase)
        if hit:
            event.data = data
            changed.append(event)
    for start in range(0, len(changed), batch_size):
        Event.objects.bulk_update(changed[start : start + batch_size], ["data"])
    return len(changed)


# --- Webhook endpoints ------------------------------------------------------------------


@dataclass(frozen=True)
class EndpointWithSecret:
    endpoint: WebhookEndpoint
    secret: str  # in clear: show it once (it is stored encrypted)


def clean_event_types(event_types: Iterable[str]) -> list[str]:
    event_types = list(event_types)
    unknown = [name for name in event_types if catalog.get(name) is None]
    if unknown:
        raise UnknownEventTypeError(
            f"Unknown event types: {', '.join(unknown)} (see GET /api/v1/event-types).", field="event_types"
        )
    return sorted(set(event_types))


def endpoint_secrets(endpoint: WebhookEndpoint, *, at: datetime | None = None) -> list[str]:
    """The secrets that sign now: the current one and, during the rotation overlap, the
    previous one."""
    at = at or timezone.now()
    secrets = [crypto.decrypt(endpoint.secret_encrypted)]
    if (
        endpoint.previous_secret_encrypted
        and endpoint.previous_secret_expires_at
        and endpoint.previous_secret_expires_at > at
    ):
        secrets.append(crypto.decrypt(endpoint.previous_secret_encrypted))
    return secrets


@transaction.atomic
def endpoint_create(
    *,
    program_id: int,
    url: str,
    actor: Actor,
    description: str = "",
    event_types: Sequence[str] = (),
    is_active: bool = True,
) -> EndpointWithSecret:
    """Create an endpoint with a new ``whsec_`` secret, returned once. The URL must be
    https (outside development) and resolve to public addresses only."""
    check_url(url)
    event_types = clean_event_types(event_types)
    limit = settings.WEBHOOK_MAX_ENDPOINTS_PER_PROGRAM
    if WebhookEndpoint.objects.filter(program_id=program_id).count() >= limit:
        raise EndpointLimitReachedError(f"A program may have at most {limit} webhook endpoints.", limit=limit)
    secret = crypto.new_webhook_secret()
    endpoint = WebhookEndpoint.objects.create(
        program_id=program_id,
        url=url,
        description=description,
        event_types=event_types,
        is_active=is_active,
        secret_encrypted=crypto.encrypt(secret),
        disabled_at=None if is_active else timezone.now(),
        disabled_reason="" if is_active else f"Created disabled by {actor.label}",
    )
    return EndpointWithSecret(endpoint, secret)


def _lock(endpoint: WebhookEndpoint) -> WebhookEndpoint:
    return WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)


@transaction.atomic
def endpoint_update(*, endpoint: WebhookEndpoint, actor: Actor, **changes: Any) -> WebhookEndpoint:
    """Change ``url``, ``description``, ``event_types`` or ``is_active``. Enabling clears
    the disabled reason and the failure streak; disabling records who did it."""
    unknown = set(changes) - {"url", "description", "event_types", "is_active"}
    if unknown:
        raise TypeError(f"Unknown endpoint fields: {sorted(unknown)}")
    endpoint = _lock(endpoint)
    if "url" in changes:
        check_url(changes["url"])
    if "event_types" in changes:
        changes["event_types"] = clean_event_types(changes["event_types"])
    is_active = changes.pop("is_active", endpoint.is_active)
    for name, value in changes.items():
        setattr(endpoint, name, value)
    if is_active and not endpoint.is_active:
        endpoint.is_active = True
        endpoint.disabled_at = None
        endpoint.disabled_reason = ""
        endpoint.failing_since = None
    elif not is_active and endpoint.is_active:
        endpoint.is_active = False
        endpoint.disabled_at = timezone.now()
        endpoint.disabled_reason = f"Disabled by {actor.label}"
        close_open_deliveries(endpoint, "The endpoint was disabled.")
    endpoint.save()
    return endpoint


def close_open_deliveries(endpoint: WebhookEndpoint, reason: str) -> int:
    return Delivery.objects.filter(
        endpoint=endpoint, state__in=[Delivery.State.PENDING, Delivery.State.RETRYING]
    ).update(state=Delivery.State.FAILED, next_attempt_at=None, last_error=reason, updated_at=timezone.now())


@transaction.atomic
def endpoint_delete(*, endpoint: WebhookEndpoint, actor: Actor) -> None:
    """Delete the endpoint with its deliveries (tasks still queued for them do nothing)."""
    logger.info("Webhook endpoint %s deleted by %s", endpoint.pk, actor.label)
    _lock(endpoint).delete()


@transaction.atomic
def endpoint_rotate_secret(
    *, endpoint: WebhookEndpoint, actor: Actor, overlap_hours: int | None = None
) -> EndpointWithSecret:
    """Give the endpoint a new secret (returned once); the current one keeps signing next
    to it for ``overlap_hours`` (default ``WEBHOOK_SECRET_OVERLAP_HOURS``), so receivers
    can switch without losing deliveries."""
    endpoint = _lock(endpoint)
    hours = settings.WEBHOOK_SECRET_OVERLAP_HOURS if overlap_hours is None else overlap_hours
    secret = crypto.new_webhook_secret()
    endpoint.previous_secret_encrypted = endpoint.secret_encrypted if hours > 0 else ""
    endpoint.previous_secret_expires_at = timezone.now() + timedelta(hours=hours) if hours > 0 else None
    endpoint.secret_encrypted = crypto.encrypt(secret)
    endpoint.save()
    logger.info("Webhook endpoint %s secret rotated by %s", endpoint.pk, actor.label)
    return EndpointWithSecret(endpoint, secret)


def _enqueue_delivery(delivery_id: int) -> None:
    from . import tasks

    try:
        tasks.enqueue_delivery(delivery_id)
    except Exception:
        logger.warning("Could not enqueue delivery %s; the sweeper will", delivery_id)


@transaction.atomic
def endpoint_send_test(*, endpoint: WebhookEndpoint, actor: Actor) -> Delivery:
    """Send a ``webhook.test`` event to this endpoint only (not to the program's other
    endpoints, and not in the event stream)."""
    endpoint = _lock(endpoint)
    if not endpoint.is_active:
        raise EndpointDisabledError(f"Webhook endpoint {endpoint.pk} is disabled.")
    now = timezone.now()
    event = Event.objects.create(
        type=TEST_EVENT,
        program_id=endpoint.program_id,
        occurred_at=now,
        recorded_at=now,
        data={"endpoint_id": endpoint.pk, "message": "A test event.", "sent_by": actor.label},
    )
    EventDispatch.objects.create(event=event, created_at=now, dispatched_at=now, deliveries=1)
    delivery = Delivery.objects.create(
        event=event,
        endpoint=endpoint,
        program_id=endpoint.program_id,
        next_attempt_at=now,
        retry_requested_by=actor.label,
    )
    transaction.on_commit(partial(_enqueue_delivery, delivery.pk), robust=True)
    return delivery


@transaction.atomic
def delivery_retry(*, delivery: Delivery, actor: Actor) -> Delivery:
    """Resend now. A delivery still in its automatic schedule goes on with it if this
    attempt fails; a finished one gets this one attempt."""
    delivery = Delivery.objects.select_for_update().select_related("endpoint").get(pk=delivery.pk)
    if not delivery.endpoint.is_active:
        raise EndpointDisabledError(f"Webhook endpoint {delivery.endpoint_id} is disabled; enable it first.")
    if delivery.state == Delivery.State.SENDING:
        raise DeliveryInProgressError(f"Delivery {delivery.pk} is being sent right now.")
    now = timezone.now()
    delivery.state = Delivery.State.PENDING
    delivery.next_attempt_at = now
    delivery.retry_requested_by = actor.label
    delivery.updated_at = now
    delivery.save()
    transaction.on_commit(partial(_enqueue_delivery, delivery.pk), robust=True)
    return delivery
