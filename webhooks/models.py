"""The event outbox.

Invariants:
- An Event is written in the same transaction as the change it describes, so a
  rolled-back change leaves none and a committed one has exactly one.
- Events are never updated (their dispatch bookkeeping lives elsewhere) and are deleted
  only by the retention purge.
- ``member_sequence`` numbers a member's events 1, 2, 3, ... without gaps, in commit order
  of the member's changes (the counter row is locked by the writer).
- This app imports no domain app: programs and members are referred to by id.
"""

import secrets

from django.db import models


def new_event_id() -> str:
    return f"evt_{secrets.token_hex(12)}"


class Event(models.Model):
    id = models.BigAutoField(primary_key=True)
    event_id = models.CharField(max_length=40, unique=True, default=new_event_id, editable=False)
    type = models.CharField(max_length=64, db_index=True)
    program_id = models.BigIntegerField(db_index=True)
    member_id = models.BigIntegerField(null=True, blank=True)
    member_sequence = models.PositiveBigIntegerField(null=True, blank=True)
    schema_version = models.PositiveSmallIntegerField(default=1)
    occurred_at = models.DateTimeField()
    recorded_at = models.DateTimeField(auto_now_add=True)
    data = models.JSONField(default=dict)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["program_id", "id"], name="event_program_stream"),
            models.Index(fields=["member_id", "member_sequence"], name="event_member_sequence"),
        ]

    def __str__(self) -> str:
        return f"{self.event_id} {self.type}"


class MemberEventCounter(models.Model):
    """The last sequence number given to a member's event."""

    member_id = models.BigIntegerField(primary_key=True)
    last_sequence = models.PositiveBigIntegerField(default=0)

    def __str__(self) -> str:
        return f"member {self.member_id}: {self.last_sequence}"
