"""Filters for transaction lists (django-filter)."""

from __future__ import annotations

import django_filters

from membership_site.api.filters import IsoDateTimeFilter

from .models import Transaction


class TransactionFilter(django_filters.FilterSet):
    kind = django_filters.MultipleChoiceFilter(
        choices=Transaction.Kind.choices, help_text="Repeat for several."
    )
    currency = django_filters.CharFilter(method="filter_currency", help_text="Currency code.")
    reference = django_filters.CharFilter(field_name="reference")
    occurred_after = IsoDateTimeFilter(field_name="occurred_at", lookup_expr="gte")
    occurred_before = IsoDateTimeFilter(field_name="occurred_at", lookup_expr="lt")
    recorded_after = IsoDateTimeFilter(field_name="recorded_at", lookup_expr="gte")
    recorded_before = IsoDateTimeFilter(field_name="recorded_at", lookup_expr="lt")

    class Meta:
        model = Transaction
        fields: list[str] = []

    def filter_currency(self, queryset, name, value):
        return queryset.filter(currency__code=value.upper())
