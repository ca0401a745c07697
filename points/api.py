"""Points API: currencies, balances, transactions, earn / redeem / adjust / transfer,
reversals, holds and expiring points."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.response import Response

from members.errors import MemberNotFoundError
from membership_site.api.views import ApiGenericView, ApiView
from programs.models import Location

from . import selectors, services
from .earning import qualifying
from .errors import RecipientNotFoundError, UnknownLocationError
from .events import balance_payload
from .expiry import parse_duration
from .filters import TransactionFilter
from .models import Currency, Transaction
from .serializers import (
    AdjustSerializer,
    CaptureSerializer,
    CurrencyCreateSerializer,
    CurrencySerializer,
    CurrencyUpdateSerializer,
    EarnSerializer,
    ExpiringSerializer,
    HoldCreateSerializer,
    HoldSerializer,
    MemberBalancesSerializer,
    PointsResultSerializer,
    RedeemSerializer,
    ReleaseSerializer,
    ReverseSerializer,
    TransactionSerializer,
    TransferSerializer,
)

_REPLAY_NOTE = (
    " A `reference` seen before for this kind returns the original transaction with 200 "
    "instead of writing a second one (409 `duplicate_reference` if it was for another member "
    "or amount)."
)
_ERRORS_NOTE = (
    " Errors: 409 `insufficient_points` (with `available`), `currency_inactive`, "
    "`member_not_active`, `member_suspended`, `member_terminated`; 422 `below_minimum_redemption`."
)


def _result(result: services.PointsResult, *, member_id: int | None = None) -> Response:
    data = {
        "transaction": TransactionSerializer(
            result.transaction, context={"member_id": member_id or result.account.member_id}
        ).data,
        "balance": {"currency": result.account.currency.code, **balance_payload(result.account)},
        "counterparty_balance": (
            {
                "currency": result.counterparty_account.currency.code,
                **balance_payload(result.counterparty_account),
            }
            if result.counterparty_account is not None
            else None
        ),
        "hold": HoldSerializer(result.hold).data if result.hold is not None else None,
    }
    return Response(data, status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK)


def _location(program, code: str | None) -> Location | None:
    if not code:
        return None
    location = Location.objects.filter(program=program, code=code).first()
    if location is None:
        raise UnknownLocationError(f"No location '{code}' in this program.", field="location")
    return location


# --- Currencies --------------------------------------------------------------------------


class CurrencyListCreateApi(ApiGenericView):
    scope_area = "config"
    serializer_class = CurrencySerializer
    pagination_ordering = "code"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no program
            return Currency.objects.none()
        return selectors.currency_list(program=self.program)

    @extend_schema(summary="List points currencies", responses=CurrencySerializer(many=True))
    def get(self, request):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(CurrencySerializer(page, many=True).data)

    @extend_schema(
        summary="Create a points currency",
        description="Expiry policies: `none`; `rolling_days` / `rolling_months` (N = "
        "`expiry_period` after earning, to the end of that day in the program's timezone); "
        "`fixed_date` (`expiry_month`/`expiry_day`, `expiry_period` years after the year of "
        "earning); `inactivity` (all points after `expiry_period` months without earning or "
        "redeeming).",
        request=CurrencyCreateSerializer,
        responses={201: CurrencySerializer},
    )
    def post(self, request):
        serializer = CurrencyCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        currency = services.currency_create(
            program=self.program, actor=self.actor, **serializer.validated_data
        )
        return Response(CurrencySerializer(currency).data, status=status.HTTP_201_CREATED)


class CurrencyDetailApi(ApiView):
    scope_area = "config"

    @extend_schema(summary="Get a points currency", responses=CurrencySerializer)
    def get(self, request, code: str):
        return Response(CurrencySerializer(selectors.currency_get(program=self.program, code=code)).data)

    @extend_schema(
        summary="Update a points currency",
        description="Expiry policy changes apply to points earned from then on. Switching "
        "`allow_negative` off while an account is below zero gives 409 `negative_balances_exist`.",
        request=CurrencyUpdateSerializer,
        responses=CurrencySerializer,
    )
    def patch(self, request, code: str):
        currency = selectors.currency_get(program=self.program, code=code)
        serializer = CurrencyUpdateSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        currency = services.currency_update(currency=currency, actor=self.actor, **serializer.validated_data)
        return Response(CurrencySerializer(currency).data)


# --- Balances and transactions -----------------------------------------------------------


class MemberBalancesApi(ApiView):
    scope_area = "points"

    @extend_schema(
        summary="A member's balances",
        description="One entry per active currency (zeros before first use): available, "
        "pending (not spendable yet), held (reserved by holds), lifetime earned, and the "
        "next expiry (date and amount).",
        responses=MemberBalancesSerializer,
    )
    def get(self, request, member_id: int):
        member = selectors.member_for_points(program=self.program, member_id=member_id)
        balances = selectors.member_balances(members=[member])[member.pk]
        return Response(
            MemberBalancesSerializer(
                {"member_id": member.pk, "balances": [balance.as_dict() for balance in balances]}
            ).data
        )


class MemberTransactionsApi(ApiGenericView):
    scope_area = "points"
    serializer_class = TransactionSerializer
    filter_backends = [DjangoFilterBackend]
    filterset_class = TransactionFilter

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no program
            return Transaction.objects.none()
        member = selectors.member_for_points(program=self.program, member_id=self.kwargs["member_id"])
        self.member = member
        return selectors.member_transactions(member=member)

    @extend_schema(
        summary="A member's transactions (newest first)",
        description="Includes transfers the member received (with a positive `signed_amount`).",
        responses=TransactionSerializer(many=True),
    )
    def get(self, request, member_id: int):
        queryset = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(
            TransactionSerializer(page, many=True, context={"member_id": self.member.pk}).data
        )


class TransactionDetailApi(ApiView):
    scope_area = "points"

    @extend_schema(summary="Get a transaction", responses=TransactionSerializer)
    def get(self, request, transaction_id: int):
        txn = selectors.transaction_get(program=self.program, transaction_id=transaction_id)
        return Response(TransactionSerializer(txn).data)


class MemberExpiringApi(ApiView):
    scope_area = "points"

    @extend_schema(
        summary="Points expiring soon",
        parameters=[
            OpenApiParameter(
                "within", str, description="A duration: 90d, 12w, 6m (30 days) or 1y (365 days). Default 90d."
            )
        ],
        responses=ExpiringSerializer,
    )
    def get(self, request, member_id: int):
        within_text = request.query_params.get("within", "90d")
        within = parse_duration(within_text)
        member = selectors.member_for_points(program=self.program, member_id=member_id)
        now = timezone.now()
        items = selectors.member_expiring(member=member, within=within, now=now)
        return Response(
            ExpiringSerializer(
                {
                    "member_id": member.pk,
                    "within": within_text,
                    "until": now + within,
                    "total": sum(item["amount"] for item in items),
                    "items": items,
                }
            ).data
        )


# --- Writes ------------------------------------------------------------------------------


class EarnApi(ApiView):
    scope_area = "points"

    @extend_schema(
        summary="Earn points",
        description="Credits points in a new lot expiring by the currency's policy. With "
        "`pending_until` in the future they are pending (visible, not spendable) until then. "
        "Points in the default currency count as qualifying activity for tiers (an upgrade "
        "happens at once)." + _REPLAY_NOTE + _ERRORS_NOTE,
        request=EarnSerializer,
        responses={201: PointsResultSerializer, 200: PointsResultSerializer},
    )
    def post(self, request, member_id: int):
        member = selectors.member_for_points(program=self.program, member_id=member_id)
        serializer = EarnSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        result = qualifying.points_earn_qualifying(
            member=member,
            amount=data["amount"],
            actor=self.actor,
            currency=selectors.currency_for_request(program=self.program, code=data.get("currency")),
            reference=data["reference"],
            occurred_at=data.get("occurred_at"),
            location=_location(self.program, data.get("location")),
            pending_until=data.get("pending_until"),
            metadata=data["metadata"],
            description=data["description"],
        )
        return _result(result)


class RedeemApi(ApiView):
    scope_area = "points"

    @extend_schema(
        summary="Redeem points",
        description="Spends available points, those expiring first first." + _REPLAY_NOTE + _ERRORS_NOTE,
        request=RedeemSerializer,
        responses={201: PointsResultSerializer, 200: PointsResultSerializer},
    )
    def post(self, request, member_id: int):
        member = selectors.member_for_points(program=self.program, member_id=member_id)
        serializer = RedeemSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        result = services.points_redeem(
            member=member,
            amount=data["amount"],
            actor=self.actor,
            currency=selectors.currency_for_request(program=self.program, code=data.get("currency")),
            reference=data["reference"],
            occurred_at=data.get("occurred_at"),
            location=_location(self.program, data.get("location")),
            metadata=data["metadata"],
            description=data["description"],
        )
        return _result(result)


class AdjustApi(ApiView):
    scope_area = "points"

    @extend_schema(
        summary="Adjust points (signed, with a reason)",
        request=AdjustSerializer,
        responses={201: PointsResultSerializer, 200: PointsResultSerializer},
        description="Positive amounts add a lot expiring by the policy from now; negative ones "
        "are taken from available points." + _REPLAY_NOTE + _ERRORS_NOTE,
    )
    def post(self, request, member_id: int):
        member = selectors.member_for_points(program=self.program, member_id=member_id)
        serializer = AdjustSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        result = qualifying.points_adjust_qualifying(
            member=member,
            amount=data["amount"],
            reason=data["reason"],
            actor=self.actor,
            currency=selectors.currency_for_request(program=self.program, code=data.get("currency")),
            reference=data["reference"],
            metadata=data["metadata"],
            description=data["description"],
        )
        return _result(result)


class TransferApi(ApiView):
    scope_area = "points"

    @extend_schema(
        summary="Transfer points to another member",
        description="Same program and currency; the recipient's points keep their expiry dates."
        + _REPLAY_NOTE
        + _ERRORS_NOTE,
        request=TransferSerializer,
        responses={201: PointsResultSerializer, 200: PointsResultSerializer},
    )
    def post(self, request, member_id: int):
        member = selectors.member_for_points(program=self.program, member_id=member_id)
        serializer = TransferSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            to_member = selectors.member_for_points(program=self.program, member_id=data["to_member"])
        except MemberNotFoundError:
            raise RecipientNotFoundError(
                f"No member {data['to_member']} in this program.", field="to_member"
            ) from None
        result = services.points_transfer(
            member=member,
            to_member=to_member,
            amount=data["amount"],
            actor=self.actor,
            currency=selectors.currency_for_request(program=self.program, code=data.get("currency")),
            reference=data["reference"],
            metadata=data["metadata"],
            description=data["description"],
        )
        return _result(result)


class ReverseApi(ApiView):
    scope_area = "points"

    @extend_schema(
        summary="Reverse part or all of a transaction",
        description="Earn, redeem, adjust, transfer and capture transactions can be reversed, "
        "up to what remains reversible (409 `reversal_exceeds_remaining` with `reversible`). "
        "Reversing a redemption restores the points with their original expiry; reversing a "
        "pending earn cancels it." + _REPLAY_NOTE,
        request=ReverseSerializer,
        responses={201: PointsResultSerializer, 200: PointsResultSerializer},
    )
    def post(self, request, transaction_id: int):
        original = selectors.transaction_get(program=self.program, transaction_id=transaction_id)
        serializer = ReverseSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = qualifying.points_reverse_qualifying(
            transaction=original, actor=self.actor, **serializer.validated_data
        )
        return _result(result)


class MemberHoldsApi(ApiView):
    scope_area = "points"

    @extend_schema(
        summary="Put points on hold",
        description="Reserves available points (e.g. during a web checkout) until captured, "
        "released or expired." + _REPLAY_NOTE + _ERRORS_NOTE,
        request=HoldCreateSerializer,
        responses={201: PointsResultSerializer, 200: PointsResultSerializer},
    )
    def post(self, request, member_id: int):
        member = selectors.member_for_points(program=self.program, member_id=member_id)
        serializer = HoldCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        minutes = data.get("expires_in_minutes")
        result = services.hold_create(
            member=member,
            amount=data["amount"],
            actor=self.actor,
            currency=selectors.currency_for_request(program=self.program, code=data.get("currency")),
            expires_in=timedelta(minutes=minutes) if minutes else None,
            reference=data["reference"],
            metadata=data["metadata"],
            description=data["description"],
        )
        return _result(result)


class HoldDetailApi(ApiView):
    scope_area = "points"

    @extend_schema(summary="Get a hold", responses=HoldSerializer)
    def get(self, request, hold_id: int):
        return Response(HoldSerializer(selectors.hold_get(program=self.program, hold_id=hold_id)).data)


class HoldCaptureApi(ApiView):
    scope_area = "points"

    @extend_schema(
        summary="Capture a hold",
        description="Redeems all or part of the hold and releases the rest. A hold that was "
        "captured, released or has expired gives 409 `hold_not_active` (with `state`).",
        request=CaptureSerializer,
        responses={201: PointsResultSerializer, 200: PointsResultSerializer},
    )
    def post(self, request, hold_id: int):
        hold = selectors.hold_get(program=self.program, hold_id=hold_id)
        serializer = CaptureSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = services.hold_capture(hold=hold, actor=self.actor, **serializer.validated_data)
        return _result(result)


class HoldReleaseApi(ApiView):
    scope_area = "points"

    @extend_schema(
        summary="Release a hold",
        description="Gives the held points back. 409 `hold_not_active` when it is no longer active.",
        request=ReleaseSerializer,
        responses={201: PointsResultSerializer},
    )
    def post(self, request, hold_id: int):
        hold = selectors.hold_get(program=self.program, hold_id=hold_id)
        serializer = ReleaseSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = services.hold_release(
            hold=hold, actor=self.actor, reason=serializer.validated_data["reason"]
        )
        return _result(result)
