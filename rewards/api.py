"""Rewards API: the catalog (rewards:read; writes config:write), a member's rewards and
redemptions, vouchers (validate, use, cancel), pay with points and member pricing."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from members.models import Label
from membership_site.api.serializers import ReasonSerializer
from membership_site.api.views import ApiGenericView, ApiView
from points import selectors as points_selectors
from points.errors import UnknownCurrencyError, UnknownLocationError
from points.events import balance_payload
from points.models import Currency
from programs.models import Location
from tiers.models import Tier

from . import payments, selectors, services
from .errors import InvalidRewardError
from .filters import MemberRewardFilter, RedemptionFilter, RewardFilter, VoucherFilter
from .models import Redemption, Reward, Voucher
from .serializers import (
    MemberRewardSerializer,
    PayResultSerializer,
    PayRuleSerializer,
    PayRuleWriteSerializer,
    PaySerializer,
    PricingRequestSerializer,
    PricingResultSerializer,
    RedemptionResultSerializer,
    RedemptionSerializer,
    RewardCreateSerializer,
    RewardRedeemSerializer,
    RewardSerializer,
    RewardUpdateSerializer,
    VoucherCheckSerializer,
    VoucherSerializer,
    VoucherUseSerializer,
)

_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no", "")


class _MoneyContextMixin:
    def money_context(self) -> dict[str, Any]:
        return {"currency": self.program.currency}


def _currency(program, code: str, field: str) -> Currency:
    currency = Currency.objects.select_related("program").filter(program=program, code=code.upper()).first()
    if currency is None:
        raise UnknownCurrencyError(f"No currency '{code}' in this program.", field=field)
    return currency


def _location(program, code: str | None) -> Location | None:
    if not code:
        return None
    location = Location.objects.filter(program=program, code=code).first()
    if location is None:
        raise UnknownLocationError(f"No location '{code}' in this program.", field="location")
    return location


def _by_codes(model, program, codes: list[str], field: str) -> list[Any]:
    found = {obj.code: obj for obj in model.objects.filter(program=program, code__in=codes)}
    missing = sorted(set(codes) - set(found))
    if missing:
        raise InvalidRewardError(f"Unknown {field.replace('_', ' ')}: {', '.join(missing)}.", field=field)
    return [found[code] for code in dict.fromkeys(codes)]


def _reward_arguments(program, data: dict[str, Any]) -> dict[str, Any]:
    """Service keyword arguments from a validated reward body (codes resolved)."""
    args = dict(data)
    if "costs" in args:
        costs: dict[Currency, int] = {}
        for item in args["costs"]:
            currency = _currency(program, item["currency"], "costs")
            if currency in costs:
                raise InvalidRewardError(f"{currency.code} is given twice.", field="costs")
            costs[currency] = item["points"]
        args["costs"] = costs
    if args.get("target_currency"):
        args["target_currency"] = _currency(program, args["target_currency"], "target_currency")
    for name, model in (("eligible_tiers", Tier), ("eligible_labels", Label), ("locations", Location)):
        if name in args:
            args[name] = _by_codes(model, program, args[name], name)
    return args


def _flag(request, name: str) -> bool:
    value = request.query_params.get(name, "").lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValidationError({name: ["Use true or false."]}, code="invalid")


# --- Catalog -----------------------------------------------------------------------------------


class RewardListCreateApi(_MoneyContextMixin, ApiGenericView):
    scope_area = "config"
    required_scopes = {"GET": "rewards:read"}
    serializer_class = RewardSerializer
    filter_backends = [DjangoFilterBackend]
    filterset_class = RewardFilter
    pagination_ordering = "code"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no program
            return Reward.objects.none()
        return selectors.reward_list(program=self.program)

    @extend_schema(summary="List the rewards catalog", responses=RewardSerializer(many=True))
    def get(self, request):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(
            RewardSerializer(page, many=True, context=self.money_context()).data
        )

    @extend_schema(
        summary="Create a reward",
        description="Kinds: `amount_voucher` (needs `voucher_amount`), `percent_voucher` "
        "(`voucher_percent`), `free_item` (`sku`), `physical` (redemptions need an address), "
        "`points_conversion` (`target_currency`, `target_points`). Errors: 400 "
        "`validation_error`, `invalid_reward`, `unknown_currency`; 409 `reward_code_taken`.",
        request=RewardCreateSerializer,
        responses={201: RewardSerializer},
    )
    def post(self, request):
        serializer = RewardCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        reward = services.reward_create(
            program=self.program,
            actor=self.actor,
            **_reward_arguments(self.program, serializer.validated_data),
        )
        reward = selectors.reward_get(program=self.program, code=reward.code)
        return Response(
            RewardSerializer(reward, context=self.money_context()).data, status=status.HTTP_201_CREATED
        )


class RewardDetailApi(_MoneyContextMixin, ApiView):
    scope_area = "config"
    required_scopes = {"GET": "rewards:read"}

    @extend_schema(summary="Get a reward", responses=RewardSerializer)
    def get(self, request, code: str):
        reward = selectors.reward_get(program=self.program, code=code)
        return Response(RewardSerializer(reward, context=self.money_context()).data)

    @extend_schema(
        summary="Update a reward",
        description="Only the fields sent change; lists (`costs`, `eligible_tiers`, ...) are "
        "replaced. `stock` sets the units left.",
        request=RewardUpdateSerializer,
        responses=RewardSerializer,
    )
    def patch(self, request, code: str):
        reward = selectors.reward_get(program=self.program, code=code)
        serializer = RewardUpdateSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        services.reward_update(
            reward=reward, actor=self.actor, **_reward_arguments(self.program, serializer.validated_data)
        )
        reward = selectors.reward_get(program=self.program, code=code)
        return Response(RewardSerializer(reward, context=self.money_context()).data)


class MemberRewardsApi(_MoneyContextMixin, ApiGenericView):
    scope_area = "rewards"
    serializer_class = MemberRewardSerializer
    filter_backends = [DjangoFilterBackend]
    filterset_class = MemberRewardFilter
    # What members see: the manager's sort_order first (the cursor keeps ties apart).
    pagination_ordering = ("sort_order", "code")

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no program
            return Reward.objects.none()
        member = selectors.member_for_rewards(program=self.program, member_id=self.kwargs["member_id"])
        self.ctx = selectors.member_context(member=member)
        return selectors.member_catalog(
            member=member, ctx=self.ctx, include_unavailable=_flag(self.request, "include_unavailable")
        )

    @extend_schema(
        summary="The rewards a member can redeem now",
        description="In `sort_order`, then by code. By default only what the member can redeem now. With "
        "`include_unavailable=true` also the others, each with `reasons`: "
        "`member_not_active` (pending), `member_suspended`, `member_terminated` (a member who "
        "may not spend points can redeem nothing: every reward is greyed out), `inactive`, "
        "`not_yet_valid`, `expired`, `not_eligible_tier`, `not_eligible_label`, `out_of_stock`, "
        "`limit_reached`, `insufficient_points`. A fixed number of queries whatever the "
        "catalog's size.",
        parameters=[
            OpenApiParameter("include_unavailable", bool, description="Also list what is greyed out.")
        ],
        responses=MemberRewardSerializer(many=True),
    )
    def get(self, request, member_id: int):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        reasons = {reward.pk: selectors.reward_reasons(reward, self.ctx) for reward in page}
        context = {**self.money_context(), "reasons": reasons}
        return self.get_paginated_response(MemberRewardSerializer(page, many=True, context=context).data)


# --- Redemptions ------------------------------------------------------------------------------


def _redemption_response(result: services.RedemptionResult, program) -> Response:
    redemption = selectors.redemption_get(program=program, redemption_id=result.redemption.pk)
    account = result.balance
    data = {
        "redemption": RedemptionSerializer(redemption, context={"currency": program.currency}).data,
        "balance": {"currency": account.currency.code, **balance_payload(account)},
    }
    return Response(data, status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK)


class RedeemApi(ApiView):
    scope_area = "rewards"

    @extend_schema(
        summary="Redeem a reward",
        description="In one transaction: debits the points, takes a unit of stock, issues the "
        "voucher (or records the shipment, or converts the points). Nothing is done when it "
        "is refused. A `reference` seen before returns the original redemption with 200. "
        "Errors: 400 `address_required`, `currency_not_accepted`, `unknown_location`; 404 "
        "`member_not_found`, `reward_not_found`; 409 `reward_inactive`, "
        "`reward_not_available` (`reason`), `out_of_stock`, `member_limit_reached`, "
        "`insufficient_points` (`available`), `member_not_active`, `member_suspended`, "
        "`member_terminated`, `duplicate_reference`; 422 "
        "`not_eligible` (`reasons`), `below_minimum_redemption`.",
        request=RewardRedeemSerializer,
        responses={201: RedemptionResultSerializer, 200: RedemptionResultSerializer},
    )
    def post(self, request, member_id: int, code: str):
        member = selectors.member_for_rewards(program=self.program, member_id=member_id)
        reward = selectors.reward_get(program=self.program, code=code)
        serializer = RewardRedeemSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        address = data.get("address")
        result = services.reward_redeem(
            member=member,
            reward=reward,
            actor=self.actor,
            currency=_currency(self.program, data["currency"], "currency") if data.get("currency") else None,
            reference=data["reference"],
            location=_location(self.program, data.get("location")),
            address=services.ShippingAddress(**address) if address else None,
        )
        return _redemption_response(result, self.program)


class MemberRedemptionsApi(_MoneyContextMixin, ApiGenericView):
    scope_area = "rewards"
    serializer_class = RedemptionSerializer
    filter_backends = [DjangoFilterBackend]
    filterset_class = RedemptionFilter

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no program
            return Redemption.objects.none()
        member = selectors.member_for_rewards(program=self.program, member_id=self.kwargs["member_id"])
        return selectors.member_redemptions(member=member).prefetch_related("voucher__locations")

    @extend_schema(summary="A member's redemptions (newest first)", responses=RedemptionSerializer(many=True))
    def get(self, request, member_id: int):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(
            RedemptionSerializer(page, many=True, context=self.money_context()).data
        )


class RedemptionDetailApi(_MoneyContextMixin, ApiView):
    scope_area = "rewards"

    @extend_schema(summary="Get a redemption", responses=RedemptionSerializer)
    def get(self, request, redemption_id: int):
        redemption = selectors.redemption_get(program=self.program, redemption_id=redemption_id)
        return Response(RedemptionSerializer(redemption, context=self.money_context()).data)


class RedemptionCancelApi(ApiView):
    scope_area = "rewards"

    @extend_schema(
        summary="Cancel an unused redemption",
        description="Gives the points back (a reversal restoring their original expiry) and "
        "returns the unit to stock; its voucher is cancelled. 409 "
        "`redemption_not_cancellable` when it was cancelled already, its voucher was used or "
        "expired, or its item shipped; 409 `insufficient_points` when converted points were "
        "spent meanwhile.",
        request=ReasonSerializer,
        responses=RedemptionResultSerializer,
    )
    def post(self, request, redemption_id: int):
        redemption = selectors.redemption_get(program=self.program, redemption_id=redemption_id)
        serializer = ReasonSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = services.redemption_cancel(
            redemption=redemption, reason=serializer.validated_data["reason"], actor=self.actor
        )
        response = _redemption_response(result, self.program)
        response.status_code = status.HTTP_200_OK
        return response


# --- Vouchers -----------------------------------------------------------------------------------


def _money_param(request, name: str) -> Decimal | None:
    value = request.query_params.get(name)
    if value in (None, ""):
        return None
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise ValidationError({name: ["A number, e.g. 42.50."]}, code="invalid") from None
    if not amount.is_finite() or amount < 0:
        raise ValidationError({name: ["A number, e.g. 42.50."]}, code="invalid")
    return amount


class VoucherDetailApi(_MoneyContextMixin, ApiView):
    scope_area = "rewards"

    @extend_schema(
        summary="Validate a voucher",
        description="Whether the voucher can be used now and, when not, why. Give the basket "
        "(`amount`, `location`, `sku` repeated, `member_id`) to check its conditions too; "
        "conditions without a value are listed in `unchecked`.",
        parameters=[
            OpenApiParameter("amount", OpenApiTypes.DECIMAL, description="Basket total."),
            OpenApiParameter("location", str, description="Location code."),
            OpenApiParameter("sku", str, many=True, description="SKUs in the basket (repeat)."),
            OpenApiParameter("member_id", int, description="The member paying."),
        ],
        responses=VoucherCheckSerializer,
    )
    def get(self, request, code: str):
        voucher = selectors.voucher_get(program=self.program, code=code)
        member_id = request.query_params.get("member_id")
        if member_id is not None and not member_id.isdigit():
            raise ValidationError({"member_id": ["A member id."]}, code="invalid")
        skus = request.query_params.getlist("sku")
        basket = selectors.BasketInput(
            amount=_money_param(request, "amount"),
            location_code=request.query_params.get("location") or None,
            skus=tuple(skus) if skus else None,
            member_id=int(member_id) if member_id else None,
        )
        check = selectors.voucher_check(voucher=voucher, basket=basket)
        return Response(
            VoucherCheckSerializer(
                {
                    "voucher": voucher,
                    "usable": check.usable,
                    "reasons": check.reasons,
                    "unchecked": check.unchecked,
                },
                context=self.money_context(),
            ).data
        )


class VoucherUseApi(_MoneyContextMixin, ApiView):
    scope_area = "rewards"

    @extend_schema(
        summary="Use a voucher",
        description="Once, for the purchase `reference`. The basket values its conditions "
        "need are required (400 with the field otherwise). Two tills using the same voucher "
        "at once: one succeeds, the other gets 409 `voucher_not_usable` with `reasons: "
        '["used"]`. The same reference again returns the first use with 200.',
        request=VoucherUseSerializer,
        responses={201: VoucherSerializer, 200: VoucherSerializer},
    )
    def post(self, request, code: str):
        voucher = selectors.voucher_get(program=self.program, code=code)
        serializer = VoucherUseSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        location = _location(self.program, data.get("location"))
        result = services.voucher_use(
            voucher=voucher,
            reference=data["reference"],
            basket=selectors.BasketInput(
                amount=data.get("amount"),
                location_code=location.code if location else None,
                skus=tuple(data["skus"]) if "skus" in data else None,
                member_id=data.get("member_id"),
            ),
            location=location,
            actor=self.actor,
        )
        voucher = selectors.voucher_get(program=self.program, code=result.voucher.code)
        return Response(
            VoucherSerializer(voucher, context=self.money_context()).data,
            status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK,
        )


class VoucherCancelApi(_MoneyContextMixin, ApiView):
    scope_area = "rewards"

    @extend_schema(
        summary="Cancel a voucher",
        description="Only an issued (unused) voucher (409 `voucher_not_cancellable`). A voucher "
        "bought with points is cancelled with its redemption: the points come back.",
        request=ReasonSerializer,
        responses=VoucherSerializer,
    )
    def post(self, request, code: str):
        voucher = selectors.voucher_get(program=self.program, code=code)
        serializer = ReasonSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.voucher_cancel(voucher=voucher, reason=serializer.validated_data["reason"], actor=self.actor)
        voucher = selectors.voucher_get(program=self.program, code=voucher.code)
        return Response(VoucherSerializer(voucher, context=self.money_context()).data)


class MemberVouchersApi(_MoneyContextMixin, ApiGenericView):
    scope_area = "rewards"
    serializer_class = VoucherSerializer
    filter_backends = [DjangoFilterBackend]
    filterset_class = VoucherFilter

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no program
            return Voucher.objects.none()
        member = selectors.member_for_rewards(program=self.program, member_id=self.kwargs["member_id"])
        return selectors.member_vouchers(member=member).select_related("used_location")

    @extend_schema(summary="A member's vouchers (newest first)", responses=VoucherSerializer(many=True))
    def get(self, request, member_id: int):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(
            VoucherSerializer(page, many=True, context=self.money_context()).data
        )


# --- Pay with points and pricing ------------------------------------------------------------------


class PayApi(_MoneyContextMixin, ApiView):
    scope_area = "points"

    @extend_schema(
        summary="Pay part of a bill with points",
        description="Give the bill and either `amount` (money to cover) or `points`. The "
        "currency's pay-with-points rule applies: minimum points, step, maximum share of the "
        "bill, minimum bill. Money to cover becomes points rounded down (to a whole point, "
        "then to the step); points are worth their cash value rounded down to the minor "
        "unit. With `hold: true` the points are held (web checkout): capture the hold with "
        "`POST /holds/{hold_id}/capture` when the order is placed, or release it. Errors: "
        "400 `invalid` (`bill_amount` or `amount` with more decimals than the money currency); "
        "409 `pay_with_points_disabled`, `insufficient_points`, `member_suspended` (and the other "
        "member statuses); 422 `below_minimum_points`, "
        "`not_a_multiple_of_step`, `exceeds_bill_share` (`max_amount`), `below_minimum_bill`, "
        "`below_minimum_redemption`.",
        request=PaySerializer,
        responses={201: PayResultSerializer, 200: PayResultSerializer},
    )
    def post(self, request, member_id: int):
        member = selectors.member_for_rewards(program=self.program, member_id=member_id)
        serializer = PaySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        minutes = data.get("expires_in_minutes")
        result = payments.points_pay(
            member=member,
            bill_amount=data["bill_amount"],
            money=data.get("amount"),
            points=data.get("points"),
            currency=_currency(self.program, data["currency"], "currency") if data.get("currency") else None,
            hold=data["hold"],
            expires_in=timedelta(minutes=minutes) if minutes else None,
            reference=data["reference"],
            location=_location(self.program, data.get("location")),
            actor=self.actor,
        )
        points = result.points_result
        hold = points.hold
        body = {
            "member_id": member.pk,
            "currency": result.currency.code,
            "points": result.quote.points,
            "money_currency": self.program.currency,
            "bill_amount": result.bill_amount,
            "money_covered": result.quote.money_covered,
            "remaining_to_pay": result.remaining,
            "max_amount": result.quote.max_money,
            "transaction_id": points.transaction.pk,
            "hold_id": hold.pk if hold else None,
            "hold_expires_at": hold.expires_at if hold else None,
            "balance": {"currency": result.currency.code, **balance_payload(points.account)},
        }
        return Response(
            PayResultSerializer(body, context=self.money_context()).data,
            status=status.HTTP_201_CREATED if points.created else status.HTTP_200_OK,
        )


class PayRuleApi(_MoneyContextMixin, ApiView):
    scope_area = "config"
    # Tills and shops read the rule to tell the customer what points can pay.
    required_scopes = {"GET": "points:read"}

    @extend_schema(
        summary="A currency's pay-with-points rule",
        description="With the currency's cash value. 404 `currency_not_found`, `pay_rule_not_found`.",
        responses=PayRuleSerializer,
    )
    def get(self, request, code: str):
        currency = points_selectors.currency_get(program=self.program, code=code)
        rule = payments.pay_rule_get(currency=currency)
        return Response(PayRuleSerializer(rule, context=self.money_context()).data)

    @extend_schema(
        summary="Set a currency's pay-with-points rule",
        description="Creates the rule (201) or replaces it (200); omitted fields take their "
        "defaults (no minimum, step 1, 100 % of the bill, any bill). The currency also needs a "
        "cash value (`value_points`, `value_amount` on the currency) to pay bills. Errors: 400 "
        "`validation_error`, `invalid` (`minimum_bill` with more decimals than the money "
        "currency); 404 `currency_not_found`.",
        request=PayRuleWriteSerializer,
        responses={200: PayRuleSerializer, 201: PayRuleSerializer},
    )
    def put(self, request, code: str):
        currency = points_selectors.currency_get(program=self.program, code=code)
        serializer = PayRuleWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        rule, created = payments.pay_rule_put(
            currency=currency, actor=self.actor, **serializer.validated_data
        )
        return Response(
            PayRuleSerializer(rule, context=self.money_context()).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class PricingApi(_MoneyContextMixin, ApiView):
    scope_area = "rewards"
    # Pricing reads only; POST carries the basket.
    required_scopes = {"POST": "rewards:read"}

    @extend_schema(
        summary="Member prices for a basket",
        description="Per line, the member's tier discount: the tier's exception for the SKU, "
        "else for the category, else the tier's `discount_percent`. The discount is taken on "
        "the line total and rounded half-up to the money currency's minor unit. Writes nothing.",
        request=PricingRequestSerializer,
        responses=PricingResultSerializer,
    )
    def post(self, request, member_id: int):
        member = selectors.member_for_rewards(program=self.program, member_id=member_id)
        serializer = PricingRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        lines = [selectors.PriceLine(**line) for line in serializer.validated_data["lines"]]
        result = selectors.member_pricing(member=member, lines=lines)
        return Response(PricingResultSerializer(result, context=self.money_context()).data)
