"""Export kinds of the members app: ``members`` (CSV or JSON, through a job)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.db.models import Prefetch, QuerySet
from django.utils import dateparse
from rest_framework import serializers

from jobs.registry import Column, ExportKind, register_export
from membership_site.api.serializers import StrictSerializer

from .imports import MEMBER_COLUMNS
from .models import Label, Member

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


def member_rows(program_id: int, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Members in id order, read ``_STREAM_CHUNK`` at a time (labels and cards fetched
    per chunk), so memory stays flat whatever the program's size."""
    members = (
        _queryset(program_id, params)
        .order_by("pk")
        .prefetch_related(
            Prefetch("labels", queryset=Label.objects.only("id", "code")),
            "cards",
        )
    )
    for member in members.iterator(chunk_size=_STREAM_CHUNK):
        yield {
            "id": member.pk,
            "number": member.number,
            "status": member.status,
            "email": member.email,
            "phone": member.phone,
            "first_name": member.first_name,
            "last_name": member.last_name,
            "birth_date": member.birth_date,
            "language": member.language,
            "address_line1": member.address_line1,
            "address_line2": member.address_line2,
            "city": member.city,
            "postal_code": member.postal_code,
            "region": member.region,
            "country": member.country,
            "external_ref": member.external_ref,
            "labels": sorted(label.code for label in member.labels.all()),
            "joined_at": member.joined_at,
            "status_changed_at": member.status_changed_at,
            "cards": sorted(card.number for card in member.cards.all() if card.status == card.Status.ACTIVE),
            "created_at": member.created_at,
            "updated_at": member.updated_at,
        }


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
