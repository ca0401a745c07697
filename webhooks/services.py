"""Recording events (the outbox)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.utils import timezone

from . import catalog
from .models import Event, MemberEventCounter


def _next_member_sequence(member_id: int) -> int:
    # One statement that inserts or increments and returns the new value; the row stays
    # locked until the caller's transaction ends, so sequences follow commit order.
    table = MemberEventCounter._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (member_id, last_sequence) VALUES (%s, 1) "
            f"ON CONFLICT (member_id) DO UPDATE SET last_sequence = {table}.last_sequence + 1 "
            "RETURNING last_sequence",
            [member_id],
        )
        return cursor.fetchone()[0]


def _jsonable(data: dict[str, Any]) -> dict[str, Any]:
    # Decimals, dates and UUIDs become strings exactly as the API renders them.
    import json

    return json.loads(json.dumps(data, cls=DjangoJSONEncoder))


@transaction.atomic
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
    no secrets.
    """
    if catalog.get(type) is None:
        raise ValueError(f"Event type '{type}' is not in the catalog (webhooks.catalog.register).")
    sequence = _next_member_sequence(member_id) if member_id is not None else None
    return Event.objects.create(
        type=type,
        program_id=program_id,
        member_id=member_id,
        member_sequence=sequence,
        schema_version=schema_version,
        occurred_at=occurred_at or timezone.now(),
        data=_jsonable(data),
    )
