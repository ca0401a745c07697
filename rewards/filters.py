"""Filters for the rewards lists (django-filter)."""

from __future__ import annotations

import django_filters

from membership_site.api.filters import IsoDateTimeFilter

from .models import Redemption, Reward, Voucher


class RewardFilter(django_filters.FilterSet):
    kind = django_filters.MultipleChoiceFilter(choices=Reward.Kind.choices, help_text="Repeat for several.")
    is_active = django_filters.BooleanFilter()

    class Meta:
        model = Reward
        fields: list[str] = []


class MemberRewardFilter(django_filters.FilterSet):
    kind = django_filters.MultipleChoiceFilter(choices=Reward.Kind.choices, help_text="Repeat for several.")

    class Meta:
        model = Reward
        fields: list[str] = []


class RedemptionFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=Redemption.Status.choices)
    reward = django_filters.CharFilter(field_name="reward__code", help_text="Reward code.")
    reference = django_filters.CharFilter()
    redeemed_after = IsoDateTimeFilter(field_name="redeemed_at", lookup_expr="gte")
    redeemed_before = IsoDateTimeFilter(field_name="redeemed_at", lookup_expr="lt")

    class Meta:
        model = Redemption
        fields: list[str] = []


class VoucherFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=Voucher.Status.choices)

    class Meta:
        model = Voucher
        fields: list[str] = []
