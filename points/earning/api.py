"""Earning API: purchases (record, quote, list, get), refunds, earning rules, campaigns,
earning settings and a member's referral code."""

from __future__ import annotations

from typing import Any

from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response

from members.models import Card, Member
from members.selectors import member_identify
from membership_site.api.views import ApiGenericView, ApiView
from programs.models import Location, Program

from .. import selectors as points_selectors
from ..errors import UnknownLocationError
from ..models import Campaign, EarningRule, Purchase, Refund
from . import bonuses, config, purchases, selectors
from .basket import LineInput
from .filters import CampaignFilter, PurchaseFilter, RefundFilter, RuleFilter
from .serializers import (
    CampaignCreateSerializer,
    CampaignSerializer,
    CampaignUpdateSerializer,
    EarningSettingsInputSerializer,
    EarningSettingsSerializer,
    PurchaseCreateSerializer,
    PurchaseQuoteSerializer,
    PurchaseResultSerializer,
    PurchaseSerializer,
    QuoteSerializer,
    ReferralInputSerializer,
    ReferralSerializer,
    RefundCreateSerializer,
    RefundSerializer,
    RuleCreateSerializer,
    RuleSerializer,
    RuleUpdateSerializer,
    award_data,
    money,
    purchase_data,
    refund_data,
)

_PURCHASE_ERRORS = (
    " Errors: 400 `validation_error`, `lookup_criteria`, `currency_mismatch`, `invalid_amount`, "
    "`amounts_inconsistent` (with the field), `unknown_location`; 404 `member_not_found`; "
    "409 `member_suspended`, `member_terminated`; 422 `card_not_usable` (a replaced or blocked card)."
)


def _identify(program: Program, identifier: dict[str, Any]) -> tuple[Member, Card | None]:
    member, card = member_identify(
        program=program,
        member_id=identifier.get("id"),
        card=identifier.get("card"),
        phone=identifier.get("phone"),
        email=identifier.get("email"),
        number=identifier.get("number"),
        for_transaction=True,
    )
    member.program = program  # the same program, already loaded
    return member, card


def _location(program: Program, code: str | None) -> Location | None:
    if not code:
        return None
    location = Location.objects.filter(program=program, code=code).first()
    if location is None:
        raise UnknownLocationError(f"No location '{code}' in this program.", field="location")
    return location


def _lines(items: list[dict[str, Any]]) -> list[LineInput]:
    return [
        LineInput(
            sku=item["sku"],
            category=item.get("category", ""),
            quantity=item["quantity"],
            unit_price=item["unit_price"],
            line_total=item.get("line_total"),
            discount=item["discount"],
            gift_card=item["gift_card"],
            excluded=item["excluded"],
        )
        for item in items
    ]


def _basket_arguments(program: Program, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "lines": _lines(data["lines"]),
        "currency": data.get("currency"),
        "total": data.get("total"),
        "tax": data["tax"],
        "shipping": data["shipping"],
        "location": _location(program, data.get("location")),
        "occurred_at": data.get("occurred_at"),
    }


# --- Purchases ---------------------------------------------------------------------------


class PurchaseListCreateApi(ApiGenericView):
    scope_area = "points"
    serializer_class = PurchaseSerializer
    filter_backends = [DjangoFilterBackend]
    filterset_class = PurchaseFilter

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no program
            return Purchase.objects.none()
        return selectors.purchase_list(program=self.program)

    @extend_schema(summary="List purchases (newest first)", responses=PurchaseSerializer(many=True))
    def get(self, request):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response([purchase_data(purchase) for purchase in page])

    @extend_schema(
        summary="Record a purchase",
        description="Identifies the member (exactly one of `id`, `card`, `phone`, `email`, "
        "`number`), computes the points through the earning rules and campaigns, posts them "
        "(pending for the program's return window) and answers with the breakdown. A "
        "`reference` recorded before returns the original purchase with 200; the same "
        "reference for another member or total is 409 `duplicate_reference`." + _PURCHASE_ERRORS,
        request=PurchaseCreateSerializer,
        responses={201: PurchaseResultSerializer, 200: PurchaseResultSerializer},
    )
    def post(self, request):
        serializer = PurchaseCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        member, card = _identify(self.program, data["member"])
        result = purchases.purchase_record(
            program=self.program,
            member=member,
            card=card,
            reference=data["reference"],
            actor=self.actor,
            metadata=data["metadata"],
            **_basket_arguments(self.program, data),
        )
        purchase = selectors.purchase_list(program=self.program).get(pk=result.purchase.pk)
        balances = points_selectors.member_balances(members=[member])[member.pk]
        body = {
            **purchase_data(purchase),
            "balances": [
                {"currency": b.currency.code, "available": b.available, "pending": b.pending, "held": b.held}
                for b in balances
            ],
        }
        return Response(body, status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK)


class PurchaseQuoteApi(ApiView):
    scope_area = "points"
    required_scopes = {"POST": "points:read"}

    @extend_schema(
        summary="Quote a purchase's points",
        description="The same calculation as recording the purchase (rules, campaigns, tier, "
        "caps and budgets as they stand now), writing nothing: for a checkout screen." + _PURCHASE_ERRORS,
        request=PurchaseQuoteSerializer,
        responses={200: QuoteSerializer},
    )
    def post(self, request):
        serializer = PurchaseQuoteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        member, _card = _identify(self.program, data["member"])
        quote = purchases.purchase_quote(
            program=self.program, member=member, **_basket_arguments(self.program, data)
        )
        default = points_selectors.default_currency(program_id=self.program.pk)
        codes = {**{pk: c.code for pk, c in quote.currencies.items()}, default.pk: default.code}
        earnings = [
            {"currency": codes[currency_id], "points": result.points, "pending_until": quote.pending_until}
            for currency_id, result in quote.computation.currencies.items()
            if result.points > 0
        ]
        body = {
            "member_id": member.pk,
            "currency": self.program.currency,
            "total": money(quote.basket.total, self.program.currency),
            "eligible_amount": money(quote.basket.eligible_amount, self.program.currency),
            "points": quote.computation.points_in(default.pk),
            "earnings": earnings,
            "breakdown": [
                award_data(award, codes[currency_id])
                for currency_id, result in quote.computation.currencies.items()
                for award in result.awards
            ],
        }
        return Response(QuoteSerializer(body).data)


class PurchaseDetailApi(ApiView):
    scope_area = "points"

    @extend_schema(summary="Get a purchase by its reference", responses=PurchaseSerializer)
    def get(self, request, reference: str):
        return Response(purchase_data(selectors.purchase_get(program=self.program, reference=reference)))


class PurchaseRefundsApi(ApiGenericView):
    scope_area = "points"
    serializer_class = RefundSerializer
    filter_backends = [DjangoFilterBackend]
    filterset_class = RefundFilter

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no program
            return Refund.objects.none()
        purchase = selectors.purchase_get(program=self.program, reference=self.kwargs["reference"])
        return selectors.refund_list(purchase=purchase)

    @extend_schema(summary="A purchase's refunds (newest first)", responses=RefundSerializer(many=True))
    def get(self, request, reference: str):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response([refund_data(refund) for refund in page])

    @extend_schema(
        summary="Refund a purchase",
        description="In full (neither `lines` nor `amount`), by lines (`line` number and an "
        "optional `quantity`), or by `amount`. Points are taken back in proportion of the "
        "eligible amount refunded (cumulatively floored; all of them once the purchase is "
        "refunded in full): still-pending points are cancelled, available ones reversed, "
        "below zero only where the currency allows it; the rest is the `shortfall`. Campaign "
        "budgets and per-member caps are not given back. The refund lowers the member's "
        "qualifying activity for tiers (a downgrade still waits for the evaluation and grace). "
        "A refund `reference` seen before returns the original with 200. Errors: 404 "
        "`purchase_not_found`; 400 `unknown_line`, `invalid_amount`; 409 "
        "`refund_exceeds_purchase`, `purchase_fully_refunded`, `duplicate_reference`.",
        request=RefundCreateSerializer,
        responses={201: RefundSerializer, 200: RefundSerializer},
    )
    def post(self, request, reference: str):
        purchase = selectors.purchase_get(program=self.program, reference=reference)
        serializer = RefundCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        result = purchases.refund_record(
            purchase=purchase,
            reference=data["reference"],
            actor=self.actor,
            lines=[(item["line"], item.get("quantity")) for item in data["lines"]]
            if "lines" in data
            else None,
            amount=data.get("amount"),
            occurred_at=data.get("occurred_at"),
            reason=data["reason"],
            metadata=data["metadata"],
        )
        refund = selectors.refund_list(purchase=purchase).get(pk=result.refund.pk)
        return Response(
            refund_data(refund), status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK
        )


# --- Earning rules and campaigns ---------------------------------------------------------


def _rule_fields(program: Program, data: dict[str, Any]) -> dict[str, Any]:
    fields = dict(data)
    if "currency" in fields:
        fields["currency"] = points_selectors.currency_for_request(program=program, code=fields["currency"])
    return fields


class _RuleApiMixin:
    model: type = EarningRule
    output: type = RuleSerializer
    create_input: type = RuleCreateSerializer
    update_input: type = RuleUpdateSerializer

    def _issued(self, objs) -> dict[int, int]:
        ids = [obj.pk for obj in objs]
        if self.model is Campaign:
            return selectors.campaign_points_issued(campaign_ids=ids)
        return selectors.rule_points_issued(rule_ids=ids)

    def _render(self, objs, *, many: bool = False):
        objs = list(objs) if many else [objs]
        data = self.output(objs, many=True, context={"issued": self._issued(objs)}).data
        return data if many else data[0]

    def _get(self, code: str):
        if self.model is Campaign:
            return selectors.campaign_get(program=self.program, code=code)
        return selectors.rule_get(program=self.program, code=code)


class EarningRuleListCreateApi(_RuleApiMixin, ApiGenericView):
    scope_area = "config"
    serializer_class = RuleSerializer
    filter_backends = [DjangoFilterBackend]
    filterset_class = RuleFilter
    pagination_ordering = "code"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no program
            return EarningRule.objects.none()
        return selectors.rule_list(program=self.program)

    @extend_schema(summary="List earning rules", responses=RuleSerializer(many=True))
    def get(self, request):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(self._render(page, many=True))

    @extend_schema(
        summary="Create an earning rule",
        description="Rules with a points-per-unit effect set the base rate of the lines they "
        "cover (the highest priority wins a line); other effects stack like campaigns. "
        "Errors: 400 `invalid_rule`, `unknown_currency`, `unknown_location` (with the "
        "field); 409 `rule_code_taken`.",
        request=RuleCreateSerializer,
        responses={201: RuleSerializer},
    )
    def post(self, request):
        serializer = self.create_input(data=request.data)
        serializer.is_valid(raise_exception=True)
        fields = _rule_fields(self.program, serializer.validated_data)
        create = config.campaign_create if self.model is Campaign else config.earning_rule_create
        obj = create(program=self.program, actor=self.actor, **fields)
        return Response(self._render(obj), status=status.HTTP_201_CREATED)


class EarningRuleDetailApi(_RuleApiMixin, ApiView):
    scope_area = "config"

    @extend_schema(summary="Get an earning rule", responses=RuleSerializer)
    def get(self, request, code: str):
        return Response(self._render(self._get(code)))

    @extend_schema(
        summary="Update an earning rule",
        description="Only the fields sent change; purchases already recorded keep their points.",
        request=RuleUpdateSerializer,
        responses=RuleSerializer,
    )
    def patch(self, request, code: str):
        obj = self._get(code)
        serializer = self.update_input(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        fields = _rule_fields(self.program, serializer.validated_data)
        if self.model is Campaign:
            obj = config.campaign_update(campaign=obj, actor=self.actor, **fields)
        else:
            obj = config.earning_rule_update(rule=obj, actor=self.actor, **fields)
        return Response(self._render(obj))

    @extend_schema(
        summary="Delete an earning rule",
        description="Only one that never awarded points (409 `rule_in_use`: set `is_active` to false).",
        request=None,
        responses={204: None},
    )
    def delete(self, request, code: str):
        obj = self._get(code)
        if self.model is Campaign:
            config.campaign_delete(campaign=obj, actor=self.actor)
        else:
            config.earning_rule_delete(rule=obj, actor=self.actor)
        return Response(status=status.HTTP_204_NO_CONTENT)


class CampaignListCreateApi(EarningRuleListCreateApi):
    model = Campaign
    output = CampaignSerializer
    create_input = CampaignCreateSerializer
    update_input = CampaignUpdateSerializer
    serializer_class = CampaignSerializer
    filterset_class = CampaignFilter

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no program
            return Campaign.objects.none()
        return selectors.campaign_list(program=self.program)

    @extend_schema(summary="List campaigns", responses=CampaignSerializer(many=True))
    def get(self, request):
        return super().get(request)

    @extend_schema(
        summary="Create a campaign",
        description="Like an earning rule, with `stacking` (add, multiply, best) and an optional "
        "`budget_points`. Errors: 400 `invalid_rule`, `unknown_currency`, `unknown_location`; "
        "409 `rule_code_taken`.",
        request=CampaignCreateSerializer,
        responses={201: CampaignSerializer},
    )
    def post(self, request):
        return super().post(request)


class CampaignDetailApi(EarningRuleDetailApi):
    model = Campaign
    output = CampaignSerializer
    create_input = CampaignCreateSerializer
    update_input = CampaignUpdateSerializer

    @extend_schema(summary="Get a campaign", responses=CampaignSerializer)
    def get(self, request, code: str):
        return super().get(request, code)

    @extend_schema(
        summary="Update a campaign",
        description="Only the fields sent change. Setting a budget counts the points already "
        "issued; a budget below them is 400 `invalid_rule` (with `budget_used`).",
        request=CampaignUpdateSerializer,
        responses=CampaignSerializer,
    )
    def patch(self, request, code: str):
        return super().patch(request, code)

    @extend_schema(
        summary="Delete a campaign",
        description="Only one that never awarded points (409 `rule_in_use`).",
        request=None,
        responses={204: None},
    )
    def delete(self, request, code: str):
        return super().delete(request, code)


# --- Settings and referrals --------------------------------------------------------------


class EarningSettingsApi(ApiView):
    scope_area = "config"

    @extend_schema(summary="Get the program's earning settings", responses=EarningSettingsSerializer)
    def get(self, request):
        return Response(EarningSettingsSerializer(selectors.earning_settings_get(program=self.program)).data)

    @extend_schema(
        summary="Change the program's earning settings",
        description="The return window (days purchase points stay pending) and the event "
        "bonuses; only the fields sent change. Errors: 400 `invalid_earning_settings`, "
        "`unknown_currency`.",
        request=EarningSettingsInputSerializer,
        responses=EarningSettingsSerializer,
    )
    def patch(self, request):
        serializer = EarningSettingsInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        fields = dict(serializer.validated_data)
        if "bonus_currency" in fields:
            fields["bonus_currency"] = points_selectors.currency_for_request(
                program=self.program, code=fields["bonus_currency"], field="bonus_currency"
            )
        result = config.earning_settings_update(program=self.program, actor=self.actor, **fields)
        return Response(EarningSettingsSerializer(result).data)


class MemberReferralApi(ApiView):
    scope_area = "points"

    def _render(self, member: Member, status_code: int = status.HTTP_200_OK):
        code = bonuses.referral_code_get_or_create(member=member, actor=self.actor)
        return Response(
            ReferralSerializer(selectors.referral_summary(member=member, code=code.code)).data,
            status=status_code,
        )

    @extend_schema(
        summary="A member's referral code and referrals",
        description="The code (created on first request) that new members give to be "
        "referred, who referred this member, and how many members they referred.",
        responses=ReferralSerializer,
    )
    def get(self, request, member_id: int):
        return self._render(points_selectors.member_for_points(program=self.program, member_id=member_id))

    @extend_schema(
        summary="Record who referred a member",
        description="Before the member's first purchase, which then gives both members their "
        "referral bonuses. Errors: 400 `unknown_referral_code`, `self_referral`; 409 "
        "`already_referred`, `referral_too_late`, `member_terminated`.",
        request=ReferralInputSerializer,
        responses={201: ReferralSerializer},
    )
    def post(self, request, member_id: int):
        member = points_selectors.member_for_points(program=self.program, member_id=member_id)
        serializer = ReferralInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        bonuses.referral_record(member=member, code=serializer.validated_data["code"], actor=self.actor)
        return self._render(member, status.HTTP_201_CREATED)
