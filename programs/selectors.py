"""Reads for programs and locations."""

from __future__ import annotations

from django.db.models import QuerySet

from .errors import LocationNotFoundError
from .models import Location, Program


def location_list(*, program: Program) -> QuerySet[Location]:
    return Location.objects.filter(program=program).order_by("code")


def location_get(*, program: Program, code: str) -> Location:
    try:
        return Location.objects.get(program=program, code=code)
    except Location.DoesNotExist:
        raise LocationNotFoundError(f"No location '{code}' in this program.") from None
