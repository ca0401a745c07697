"""Cursor pagination for every list, with a capped page size (``limit``)."""

from __future__ import annotations

import re

from django.conf import settings
from django.core.exceptions import FieldDoesNotExist
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import connection, models
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import CursorPagination


class ApiCursorPagination(CursorPagination):
    page_size = 50
    page_size_query_param = "limit"
    ordering = "-id"
    invalid_cursor_message = "The cursor is not valid; use the 'next' or 'previous' link as given."

    @property
    def max_page_size(self) -> int:  # read at request time so tests can change the setting
        return settings.API_PAGE_SIZE_MAX

    def get_page_size(self, request) -> int:
        """``limit`` from 1 up; above the cap it is capped. DRF silently ignored a bad one
        (0, -1, "abc" gave the default page), unlike the event stream's 400."""
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None or raw == "":
            return self.page_size
        if not re.fullmatch(r"[0-9]+", raw) or int(raw) < 1:
            cap = self.max_page_size
            message = f"A whole number from 1 to {cap} (a larger one means {cap})."
            raise ValidationError({self.page_size_query_param: [message]}, code="invalid")
        return min(int(raw), self.max_page_size)

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"]["minimum"] = 1
        return parameters

    def get_ordering(self, request, queryset, view):
        """``view.pagination_ordering`` (a field name or tuple of names, unique together)
        overrides the default newest-first order."""
        ordering = getattr(view, "pagination_ordering", None)
        if ordering:
            return (ordering,) if isinstance(ordering, str) else tuple(ordering)
        return super().get_ordering(request, queryset, view)

    def paginate_queryset(self, queryset, request, view=None):
        self._model = queryset.model
        try:
            return super().paginate_queryset(queryset, request, view)
        except NotFound as exc:
            raise ValidationError({"cursor": [exc.detail]}) from None

    def decode_cursor(self, request):
        # DRF checks the cursor's offset but puts its position into the query as it comes:
        # a forged one ("x" for an id, a NUL, 10**50) failed in the database (a 500).
        cursor = super().decode_cursor(request)
        if cursor is not None and cursor.position is not None and not self._comparable(cursor.position):
            raise NotFound(self.invalid_cursor_message)
        return cursor

    def _comparable(self, position: str) -> bool:
        """Whether the ordering column can be compared with the cursor's position."""
        if "\x00" in position:
            return False
        field = self._ordering_field()
        if field is None:
            return True
        try:
            value = field.to_python(position)
        except (DjangoValidationError, ValueError, TypeError, OverflowError):
            return False
        if isinstance(field, models.IntegerField):
            low, high = connection.ops.integer_field_range(field.get_internal_type())
            return (low is None or value >= low) and (high is None or value <= high)
        return True

    def _ordering_field(self) -> models.Field | None:
        """The model field of the first ordering key (None for an annotation)."""
        model, field = self._model, None
        for part in self.ordering[0].lstrip("-").split("__"):
            if model is None:
                return None
            try:
                field = model._meta.get_field(part)
            except FieldDoesNotExist:
                return None
            model = field.related_model
        if field is not None and field.is_relation:
            field = field.target_field
        return field


class AscendingCursorPagination(ApiCursorPagination):
    """Oldest first (ledgers and event streams read forward)."""

    ordering = "id"
