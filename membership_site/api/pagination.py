"""Cursor pagination for every list, with a capped page size (``limit``)."""

from __future__ import annotations

from django.conf import settings
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

    def get_ordering(self, request, queryset, view):
        """``view.pagination_ordering`` (a field name or tuple of names, unique together)
        overrides the default newest-first order."""
        ordering = getattr(view, "pagination_ordering", None)
        if ordering:
            return (ordering,) if isinstance(ordering, str) else tuple(ordering)
        return super().get_ordering(request, queryset, view)

    def paginate_queryset(self, queryset, request, view=None):
        try:
            return super().paginate_queryset(queryset, request, view)
        except NotFound as exc:
            raise ValidationError({"cursor": [exc.detail]}) from None


class AscendingCursorPagination(ApiCursorPagination):
    """Oldest first (ledgers and event streams read forward)."""

    ordering = "id"
