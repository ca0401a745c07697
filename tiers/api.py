"""Tiers API: tier definitions (config scopes), a member's tier, history and activity
(tiers scopes)."""

from __future__ import annotations

from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response

from membership_site.api.views import ApiGenericView, ApiView

from . import selectors, services
from .filters import TierActivityFilter, TierChangeFilter, TierFilter
from .models import Tier, TierActivity, TierChange
from .serializers import (
    MemberTierAssignSerializer,
    MemberTierSerializer,
    TierActivitySerializer,
    TierChangeSerializer,
    TierCreateSerializer,
    TierSerializer,
    TierSettingsSerializer,
    TierUpdateSerializer,
)


class _ProgramMoneyMixin:
    def get_serializer_context(self):
        if getattr(self, "swagger_fake_view", False):
            return super().get_serializer_context()
        return {**super().get_serializer_context(), "currency": self.program.currency}


class TierListCreateApi(_ProgramMoneyMixin, ApiGenericView):
    scope_area = "config"
    serializer_class = TierSerializer
    filter_backends = [DjangoFilterBackend]
    filterset_class = TierFilter
    pagination_ordering = "rank"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no program
            return Tier.objects.none()
        return selectors.tier_list(program=self.program)

    @extend_schema(summary="List tiers", responses=TierSerializer(many=True))
    def get(self, request):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    @extend_schema(
        summary="Create a tier",
        description="The program's first tier becomes its default. Spend amounts are in the "
        "program's money with at most its currency's decimals.",
        request=TierCreateSerializer,
        responses={201: TierSerializer},
    )
    def post(self, request):
        serializer = TierCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        tier = services.tier_create(program=self.program, actor=self.actor, **serializer.validated_data)
        return Response(self.get_serializer(tier).data, status=status.HTTP_201_CREATED)


class TierDetailApi(ApiView):
    scope_area = "config"

    def _render(self, tier):
        return Response(TierSerializer(tier, context={"currency": self.program.currency}).data)

    @extend_schema(summary="Get a tier", responses=TierSerializer)
    def get(self, request, code: str):
        return self._render(selectors.tier_get(program=self.program, code=code))

    @extend_schema(
        summary="Update a tier",
        description="Only the fields sent change. Members move to match the new definition "
        "at their next activity (upgrades) or the next evaluation.",
        request=TierUpdateSerializer,
        responses=TierSerializer,
    )
    def patch(self, request, code: str):
        tier = selectors.tier_get(program=self.program, code=code)
        serializer = TierUpdateSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        return self._render(services.tier_update(tier=tier, actor=self.actor, **serializer.validated_data))

    @extend_schema(
        summary="Delete a tier",
        description="Only a tier that is not the default, that nobody holds and that no "
        "history mentions (409 otherwise).",
        request=None,
        responses={204: None},
    )
    def delete(self, request, code: str):
        services.tier_delete(tier=selectors.tier_get(program=self.program, code=code), actor=self.actor)
        return Response(status=status.HTTP_204_NO_CONTENT)


class TierSettingsApi(ApiView):
    scope_area = "config"

    @extend_schema(summary="Get the program's tier settings", responses=TierSettingsSerializer)
    def get(self, request):
        return Response(TierSettingsSerializer(selectors.tier_settings_get(program=self.program)).data)

    @extend_schema(
        summary="Change the program's tier settings",
        request=TierSettingsSerializer,
        responses=TierSettingsSerializer,
    )
    def patch(self, request):
        serializer = TierSettingsSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        tier_settings = services.tier_settings_update(
            program=self.program, actor=self.actor, **serializer.validated_data
        )
        return Response(TierSettingsSerializer(tier_settings).data)


class MemberTierApi(ApiView):
    scope_area = "tiers"

    def _render(self, member):
        progress = selectors.member_tier_progress(member=member)
        return Response(MemberTierSerializer(progress, context={"currency": self.program.currency}).data)

    @extend_schema(
        summary="A member's tier and progress",
        description="The current tier and its benefits, the activity in the current window, "
        "what keeps the tier (`keep`) and what the next tier needs (`next`), grace and lock "
        "days, and the latest history. Activity recorded so far counts.",
        responses=MemberTierSerializer,
    )
    def get(self, request, member_id: int):
        return self._render(selectors.member_for_tiers(program=self.program, member_id=member_id))

    @extend_schema(
        summary="Assign a tier by hand",
        description="Puts the member on `tier` with a reason. `locked_until`: not moved down "
        "before that day; `lifetime`: never below this tier. Both replace what an earlier "
        "assignment set, and grace ends. 409 `member_terminated` for a terminated member.",
        request=MemberTierAssignSerializer,
        responses=MemberTierSerializer,
    )
    def post(self, request, member_id: int):
        member = selectors.member_for_tiers(program=self.program, member_id=member_id)
        serializer = MemberTierAssignSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        services.member_tier_assign(
            member=member,
            tier=selectors.tier_for_assignment(program=self.program, code=data["tier"]),
            reason=data["reason"],
            locked_until=data.get("locked_until"),
            lifetime=data["lifetime"],
            actor=self.actor,
        )
        return self._render(member)


class MemberTierHistoryApi(ApiGenericView):
    scope_area = "tiers"
    serializer_class = TierChangeSerializer
    filter_backends = [DjangoFilterBackend]
    filterset_class = TierChangeFilter

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no program
            return TierChange.objects.none()
        member = selectors.member_for_tiers(program=self.program, member_id=self.kwargs["member_id"])
        return selectors.tier_history(member=member)

    @extend_schema(summary="A member's tier history", responses=TierChangeSerializer(many=True))
    def get(self, request, member_id: int):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(self.get_serializer(page, many=True).data)


class MemberTierActivityApi(_ProgramMoneyMixin, ApiGenericView):
    scope_area = "tiers"
    serializer_class = TierActivitySerializer
    filter_backends = [DjangoFilterBackend]
    filterset_class = TierActivityFilter

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no program
            return TierActivity.objects.none()
        member = selectors.member_for_tiers(program=self.program, member_id=self.kwargs["member_id"])
        return selectors.member_activity(member=member)

    @extend_schema(
        summary="A member's qualifying activity",
        description="What the tier metrics are summed from, newest first (refunds negative).",
        responses=TierActivitySerializer(many=True),
    )
    def get(self, request, member_id: int):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(self.get_serializer(page, many=True).data)
