"""Filters for the tier lists (django-filter)."""

from __future__ import annotations

import django_filters

from membership_site.api.filters import IsoDateTimeFilter

from .models import Tier, TierActivity, TierChange


class TierFilter(django_filters.FilterSet):
    is_default = django_filters.BooleanFilter()
    window_kind = django_filters.ChoiceFilter(choices=Tier.Window.choices)

    class Meta:
        model = Tier
        fields: list[str] = []


class TierChangeFilter(django_filters.FilterSet):
    reason = django_filters.ChoiceFilter(choices=TierChange.Reason.choices)
    at_after = IsoDateTimeFilter(field_name="at", lookup_expr="gte")
    at_before = IsoDateTimeFilter(field_name="at", lookup_expr="lt")

    class Meta:
        model = TierChange
        fields: list[str] = []


class TierActivityFilter(django_filters.FilterSet):
    source = django_filters.ChoiceFilter(choices=TierActivity.Source.choices)
    reference = django_filters.CharFilter()
    occurred_from = django_filters.DateFilter(
        field_name="occurred_on", lookup_expr="gte", help_text="First program-local day included."
    )
    occurred_to = django_filters.DateFilter(
        field_name="occurred_on", lookup_expr="lte", help_text="Last program-local day included."
    )

    class Meta:
        model = TierActivity
        fields: list[str] = []
