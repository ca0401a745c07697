"""Export kinds of the members app: ``members`` (CSV or JSON, through a job)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from django.db.models import QuerySet
from django.utils import dateparse
from rest_framework import serializers

from jobs.registry import Column, ExportKind, register_export
from membership_site.api.serializers import StrictSerializer

from .imports import MEMBER_COLUMNS
from .models import Card, Member, MemberLabel

_STREAM_CHUNK = 2000

EXPORT_COLUMNS = (
    Column("id", "The member's id in this platform (the API's member id)."),
    *[column for column in MEMBER_COLUMNS if column.name not in ("card", "joined_at", "status")],
    Column("status", "pending, active, suspended or terminated."),
    Column("joined_at", "When the member joined (ISO 8601, UTC)."),
    Column("status_changed_at", "When the status last changed."),
    Column("cards", "Numbers of the member's active cards, separated by '|'."),
    Column("created_at", "When the member was created here."),
    Column("updated_at", "Last change of the profile, labels or status."),
)


class MembersExportParams(StrictSerializer):
    updated_since = serializers.DateTimeField(
        required=False, help_text="Only members changed at or after this time (incremental sync)."
    )
    status = serializers.ChoiceField(choices=Member.Status.choices, required=False)
    label = serializers.SlugField(required=False, help_text="Only members with this label code.")


def _queryset(program_id: int, params: dict[str, Any]) -> QuerySet[Member]:
    members = Member.objects.filter(program_id=program_id)
    if params.get("updated_since"):
        members = members.filter(updated_at__gte=dateparse.parse_datetime(params["updated_since"]))
    if params.get("status"):
        members = members.filter(status=params["status"])
    if params.get("label"):
        members = members.filter(labels__code=params["label"])
    return members


def count_members(program_id: int, params: dict[str, Any]) -> int:
    return _queryset(program_id, params).count()


_FIELDS = (
    "id",
    "number",
    "status",
    "email",
    "phone",
    "first_name",
    "last_name",
    "birth_date",
    "language",
    "address_line1",
    "address_line2",
    "city",
    "postal_code",
    "region",
    "country",
    "external_ref",
    "joined_at",
    "status_changed_at",
    "created_at",
    "updated_at",
)


def member_rows(program_id: int, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Members in id order, ``_STREAM_CHUNK`` at a time (keyset pagination: each chunk is
    one query, plus one for its labels and one for its cards), so memory stays flat
    whatever the program's size. Plain values, no model instances: exports are big."""
    members = _queryset(program_id, params).order_by("pk").values_list(*_FIELDS)
    last_id = 0
    while chunk := list(members.filter(pk__gt=last_id)[:_STREAM_CHUNK]):
        ids = [values[0] for values in chunk]
        labels: dict[int, list[str]] = defaultdict(list)
        for member_id, code in MemberLabel.objects.filter(member_id__in=ids).values_list(
            "member_id", "label__code"
        ):
            labels[member_id].append(code)
        cards: dict[int, list[str]] = defaultdict(list)
        for member_id, number in Card.objects.filter(
            member_id__in=ids, status=Card.Status.ACTIVE
        ).values_list("member_id", "number"):
            cards[member_id].append(number)
        for values in chunk:
            row = dict(zip(_FIELDS, values, strict=True))
            row["labels"] = sorted(labels[row["id"]])
            row["cards"] = sorted(cards[row["id"]])
            yield row
        last_id = ids[-1]


MEMBERS_EXPORT = ExportKind(
    name="members",
    description="Members with their profile, labels and active cards.",
    columns=EXPORT_COLUMNS,
    rows=member_rows,
    count=count_members,
    scope="members:read",
    params=MembersExportParams,
)


def register() -> None:
    register_export(MEMBERS_EXPORT)
