"""Filters for the endpoint and delivery lists (django-filter)."""

from __future__ import annotations

import django_filters

from membership_site.api.filters import IsoDateTimeFilter

from .models import Delivery, WebhookEndpoint


class WebhookEndpointFilter(django_filters.FilterSet):
    is_active = django_filters.BooleanFilter()

    class Meta:
        model = WebhookEndpoint
        fields: list[str] = []


class DeliveryFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(
        field_name="state", choices=Delivery.State.choices, help_text="Repeat to give several."
    )
    event_type = django_filters.CharFilter(field_name="event__type")
    created_after = IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Delivery
        fields: list[str] = []
