"""Filters for the member list (django-filter)."""

from __future__ import annotations

import django_filters

from membership_site.api.filters import IsoDateTimeFilter
from membership_site.errors import DomainError

from .models import Member
from .normalize import normalize_card_number, normalize_email, normalize_phone


class MemberFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=Member.Status.choices)
    label = django_filters.CharFilter(field_name="labels__code", help_text="Label code.")
    email = django_filters.CharFilter(method="filter_email")
    phone = django_filters.CharFilter(method="filter_phone")
    card = django_filters.CharFilter(method="filter_card", help_text="Any card number, also replaced ones.")
    number = django_filters.CharFilter(field_name="number")
    external_ref = django_filters.CharFilter(field_name="external_ref")
    joined_after = IsoDateTimeFilter(field_name="joined_at", lookup_expr="gte")
    joined_before = IsoDateTimeFilter(field_name="joined_at", lookup_expr="lt")
    updated_since = IsoDateTimeFilter(field_name="updated_at", lookup_expr="gte")

    class Meta:
        model = Member
        fields: list[str] = []

    def filter_email(self, queryset, name, value):
        try:
            return queryset.filter(email=normalize_email(value))
        except DomainError:
            return queryset.none()

    def filter_phone(self, queryset, name, value):
        try:
            return queryset.filter(phone=normalize_phone(value, self.request.auth.program.phone_region))
        except DomainError:
            return queryset.none()

    def filter_card(self, queryset, name, value):
        return queryset.filter(cards__number=normalize_card_number(value))
