"""Filters for the earning lists (django-filter)."""

from __future__ import annotations

import django_filters

from membership_site.api.filters import IsoDateTimeFilter

from ..models import Campaign, EarningRule, Purchase, Refund, RuleBase


class PurchaseFilter(django_filters.FilterSet):
    member = django_filters.NumberFilter(field_name="member_id", help_text="Member id.")
    reference = django_filters.CharFilter()
    location = django_filters.CharFilter(field_name="location__code", help_text="Location code.")
    occurred_after = IsoDateTimeFilter(field_name="occurred_at", lookup_expr="gte")
    occurred_before = IsoDateTimeFilter(field_name="occurred_at", lookup_expr="lt")
    recorded_after = IsoDateTimeFilter(field_name="recorded_at", lookup_expr="gte")
    recorded_before = IsoDateTimeFilter(field_name="recorded_at", lookup_expr="lt")
    fully_refunded = django_filters.BooleanFilter()

    class Meta:
        model = Purchase
        fields: list[str] = []


class RefundFilter(django_filters.FilterSet):
    occurred_after = IsoDateTimeFilter(field_name="occurred_at", lookup_expr="gte")
    occurred_before = IsoDateTimeFilter(field_name="occurred_at", lookup_expr="lt")

    class Meta:
        model = Refund
        fields: list[str] = []


class _RuleFilter(django_filters.FilterSet):
    is_active = django_filters.BooleanFilter()
    effect = django_filters.ChoiceFilter(choices=RuleBase.Effect.choices)
    currency = django_filters.CharFilter(method="filter_currency", help_text="Points currency code.")

    def filter_currency(self, queryset, name, value):
        return queryset.filter(currency__code=value.upper())


class RuleFilter(_RuleFilter):
    class Meta:
        model = EarningRule
        fields: list[str] = []


class CampaignFilter(_RuleFilter):
    class Meta:
        model = Campaign
        fields: list[str] = []
