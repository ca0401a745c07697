"""Shared django-filter pieces for the API's list filters."""

from __future__ import annotations

import datetime

import django_filters
from django.core.exceptions import ValidationError
from django.utils import timezone
from django_filters.fields import IsoDateTimeField


class UtcIsoDateTimeField(IsoDateTimeField):
    """An ISO 8601 date-time, normalised to UTC before it reaches the query.

    Python accepts UTC offsets up to ±23:59, PostgreSQL only up to ±15:59: an instant like
    ``2026-01-01T00:00+19:50`` would fail in the database (a 500). In UTC it is an ordinary
    instant; one that leaves the representable range in UTC (``0001-01-01T00:00+05:00``)
    is a validation error.
    """

    default_error_messages = {
        "out_of_range": "Enter a date and time between 0001-01-01 and 9999-12-31 in UTC.",
    }

    def to_python(self, value):
        value = super().to_python(value)
        if value is not None and timezone.is_aware(value):
            try:
                value = value.astimezone(datetime.UTC)
            except OverflowError:
                raise ValidationError(self.error_messages["out_of_range"], code="out_of_range") from None
        return value


class IsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    """``django_filters.IsoDateTimeFilter`` whose value is always a UTC instant."""

    field_class = UtcIsoDateTimeField
