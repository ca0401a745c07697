"""Members API: profiles, status, cards, labels, consents and the till lookup."""

from __future__ import annotations

from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response

from membership_site.api.serializers import ReasonSerializer
from membership_site.api.views import ApiGenericView, ApiView

from . import selectors, services
from .filters import MemberFilter
from .models import Label, Member
from .serializers import (
    CardIssueSerializer,
    CardReplaceSerializer,
    CardSerializer,
    ConsentSerializer,
    ConsentsWriteSerializer,
    LabelAssignSerializer,
    LabelSerializer,
    LabelUpdateSerializer,
    LabelWriteSerializer,
    MemberCreateSerializer,
    MemberProfileSerializer,
    MemberSerializer,
    MemberWriteSerializer,
)


def _reloaded(program, member: Member) -> Member:
    """The member as the full representation needs it (with its prefetches)."""
    return selectors.member_get(program=program, member_id=member.pk)


class MemberListCreateApi(ApiGenericView):
    scope_area = "members"
    serializer_class = MemberSerializer
    filter_backends = [DjangoFilterBackend]
    filterset_class = MemberFilter

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no program
            return Member.objects.none()
        return selectors.member_list(program=self.program)

    @extend_schema(summary="List members", responses=MemberSerializer(many=True))
    def get(self, request):
        queryset = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(MemberSerializer(page, many=True).data)

    @extend_schema(
        summary="Create a member",
        request=MemberCreateSerializer,
        responses={201: MemberSerializer},
    )
    def post(self, request):
        serializer = MemberCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        member = services.member_create(
            program=self.program,
            actor=self.actor,
            number=data.get("number"),
            status=data["status"],
            labels=data["labels"],
            consents=[services.ConsentInput(**consent) for consent in data["consents"]],
            card_number=data.get("card"),
            **serializer.profile(),
        )
        return Response(
            MemberSerializer(_reloaded(self.program, member)).data, status=status.HTTP_201_CREATED
        )


class MemberDetailApi(ApiView):
    scope_area = "members"

    @extend_schema(summary="Get a member", responses=MemberSerializer)
    def get(self, request, member_id: int):
        member = selectors.member_get(program=self.program, member_id=member_id)
        return Response(MemberSerializer(member).data)

    @extend_schema(
        summary="Update a member's profile",
        description="Only the fields sent change. Email and phone are normalised; a value "
        "another member of the program has gives 409 `duplicate_member`.",
        request=MemberWriteSerializer,
        responses=MemberSerializer,
    )
    def patch(self, request, member_id: int):
        member = selectors.member_get(program=self.program, member_id=member_id)
        serializer = MemberWriteSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        member = services.member_update(member=member, actor=self.actor, **serializer.profile())
        return Response(MemberSerializer(_reloaded(self.program, member)).data)


class MemberStatusApi(ApiView):
    """POST /members/{id}/{action}: activate, suspend, reactivate, terminate."""

    scope_area = "members"
    action: str = ""

    @extend_schema(request=ReasonSerializer, responses=MemberSerializer)
    def post(self, request, member_id: int):
        member = selectors.member_get(program=self.program, member_id=member_id)
        serializer = ReasonSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        member = services.member_status_action(
            member=member,
            action=self.action,
            reason=serializer.validated_data["reason"],
            actor=self.actor,
        )
        return Response(MemberSerializer(_reloaded(self.program, member)).data)


def member_status_view(action: str, summary: str):
    """One documented operation per status action, sharing MemberStatusApi.post."""

    def post(self, request, member_id: int):
        return MemberStatusApi.post(self, request, member_id)

    post = extend_schema(
        summary=summary,
        operation_id=f"members_{action}",
        request=ReasonSerializer,
        responses=MemberSerializer,
    )(post)
    view = type(f"Member{action.title()}Api", (MemberStatusApi,), {"action": action, "post": post})
    return view.as_view()


class MemberExportApi(ApiView):
    scope_area = "members"

    @extend_schema(
        summary="Export everything held about a member (GDPR access)",
        description="Profile, consents, cards, labels, status history, plus the points, tiers "
        "and rewards data other parts of the platform hold about the member.",
        responses=OpenApiTypes.OBJECT,
    )
    def get(self, request, member_id: int):
        member = selectors.member_get(program=self.program, member_id=member_id)
        return Response(selectors.member_export(member=member))


class MemberEraseApi(ApiView):
    scope_area = "members"

    @extend_schema(
        summary="Erase a member's personal data (GDPR erasure)",
        description="Terminates the membership, blanks the profile (also in its history), "
        "deletes consents and blocks cards. The id and number stay so the ledger remains "
        "whole. Emits `member.erased`. Cannot be undone; a second call answers 409 "
        "`member_erased`.",
        request=ReasonSerializer,
        responses=MemberSerializer,
    )
    def post(self, request, member_id: int):
        member = selectors.member_get(program=self.program, member_id=member_id)
        serializer = ReasonSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        member = services.member_erase(
            member=member, reason=serializer.validated_data["reason"], actor=self.actor
        )
        return Response(MemberSerializer(_reloaded(self.program, member)).data)


class MemberCardsApi(ApiView):
    scope_area = "members"

    @extend_schema(summary="List a member's cards", responses=CardSerializer(many=True))
    def get(self, request, member_id: int):
        member = selectors.member_get(program=self.program, member_id=member_id)
        return Response(CardSerializer(member.cards.all(), many=True).data)

    @extend_schema(summary="Issue a card", request=CardIssueSerializer, responses={201: CardSerializer})
    def post(self, request, member_id: int):
        member = selectors.member_get(program=self.program, member_id=member_id)
        serializer = CardIssueSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        card = services.card_issue(member=member, actor=self.actor, **serializer.validated_data)
        return Response(CardSerializer(card).data, status=status.HTTP_201_CREATED)


class CardReplaceApi(ApiView):
    scope_area = "members"

    @extend_schema(
        summary="Replace a card",
        description="Issues a new card; the old number still identifies the member but can "
        "no longer be used for transactions.",
        request=CardReplaceSerializer,
        responses={201: CardSerializer},
    )
    def post(self, request, member_id: int, number: str):
        member = selectors.member_get(program=self.program, member_id=member_id)
        card = selectors.card_get(member=member, number=number)
        serializer = CardReplaceSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        new_card = services.card_replace(card=card, actor=self.actor, **serializer.validated_data)
        return Response(CardSerializer(new_card).data, status=status.HTTP_201_CREATED)


class CardBlockApi(ApiView):
    scope_area = "members"

    @extend_schema(summary="Block a card", request=ReasonSerializer, responses=CardSerializer)
    def post(self, request, member_id: int, number: str):
        member = selectors.member_get(program=self.program, member_id=member_id)
        card = selectors.card_get(member=member, number=number)
        serializer = ReasonSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        card = services.card_block(card=card, actor=self.actor, reason=serializer.validated_data["reason"])
        return Response(CardSerializer(card).data)


_LABEL_ASSIGN_RESULT = inline_serializer("LabelAssignResult", {"assigned": serializers.BooleanField()})


class MemberLabelsApi(ApiView):
    scope_area = "members"

    @extend_schema(
        summary="Assign a label",
        description="201 when the label was put on, 200 when the member already had it.",
        request=LabelAssignSerializer,
        responses={201: _LABEL_ASSIGN_RESULT, 200: _LABEL_ASSIGN_RESULT},
    )
    def post(self, request, member_id: int):
        member = selectors.member_get(program=self.program, member_id=member_id)
        serializer = LabelAssignSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        assigned = services.label_assign(
            member=member, label_code=serializer.validated_data["label"], actor=self.actor
        )
        return Response(
            {"assigned": assigned}, status=status.HTTP_201_CREATED if assigned else status.HTTP_200_OK
        )


class MemberLabelDetailApi(ApiView):
    scope_area = "members"

    @extend_schema(summary="Remove a label", request=None, responses={204: None})
    def delete(self, request, member_id: int, code: str):
        member = selectors.member_get(program=self.program, member_id=member_id)
        services.label_remove(member=member, label_code=code, actor=self.actor)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MemberConsentsApi(ApiView):
    scope_area = "members"

    @extend_schema(summary="List a member's consents", responses=ConsentSerializer(many=True))
    def get(self, request, member_id: int):
        member = selectors.member_get(program=self.program, member_id=member_id)
        return Response(ConsentSerializer(member.consents.all(), many=True).data)

    @extend_schema(
        summary="Record consents given or withdrawn",
        request=ConsentsWriteSerializer,
        responses=ConsentSerializer(many=True),
    )
    def post(self, request, member_id: int):
        member = selectors.member_get(program=self.program, member_id=member_id)
        serializer = ConsentsWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.consents_set(
            member=member,
            consents=[services.ConsentInput(**c) for c in serializer.validated_data["consents"]],
            actor=self.actor,
        )
        return Response(ConsentSerializer(member.consents.order_by("purpose"), many=True).data)


class MemberLookupApi(ApiView):
    scope_area = "members"

    @extend_schema(
        summary="Recognise a member (till lookup)",
        description="Exactly one of `card`, `phone`, `email`, `number`. Returns the compact "
        "profile in one round trip. A replaced or blocked card still finds its member, with "
        "`card.usable: false`.",
        parameters=[
            OpenApiParameter("card", str, description="Card number (spaces and dashes ignored)"),
            OpenApiParameter("phone", str, description="Phone, international or in the program's region"),
            OpenApiParameter("email", str),
            OpenApiParameter("number", str, description="Member number"),
        ],
        responses=MemberProfileSerializer,
    )
    def get(self, request):
        params = request.query_params
        member, card = selectors.member_identify(
            program=self.program,
            card=params.get("card"),
            phone=params.get("phone"),
            email=params.get("email"),
            number=params.get("number"),
        )
        profile = selectors.member_profiles([member])[member.pk]
        profile["card"] = (
            {
                "number": card.number,
                "kind": card.kind,
                "status": card.status,
                "usable": card.status == card.Status.ACTIVE,
            }
            if card
            else None
        )
        return Response(profile)


class LabelListCreateApi(ApiGenericView):
    scope_area = "config"
    serializer_class = LabelSerializer
    pagination_ordering = "code"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no program
            return Label.objects.none()
        return selectors.label_list(program=self.program)

    @extend_schema(summary="List labels", responses=LabelSerializer(many=True))
    def get(self, request):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(LabelSerializer(page, many=True).data)

    @extend_schema(summary="Create a label", request=LabelWriteSerializer, responses={201: LabelSerializer})
    def post(self, request):
        serializer = LabelWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        label = services.label_create(program=self.program, actor=self.actor, **serializer.validated_data)
        return Response(LabelSerializer(label).data, status=status.HTTP_201_CREATED)


class LabelDetailApi(ApiView):
    scope_area = "config"

    @extend_schema(summary="Get a label", responses=LabelSerializer)
    def get(self, request, code: str):
        return Response(LabelSerializer(selectors.label_get(program=self.program, code=code)).data)

    @extend_schema(summary="Update a label", request=LabelUpdateSerializer, responses=LabelSerializer)
    def patch(self, request, code: str):
        label = selectors.label_get(program=self.program, code=code)
        serializer = LabelUpdateSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        label = services.label_update(label=label, actor=self.actor, **serializer.validated_data)
        return Response(LabelSerializer(label).data)
