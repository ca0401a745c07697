"""Events and webhooks API: the event stream, the event catalog, webhook endpoints and
their deliveries."""

from __future__ import annotations

from django.conf import settings
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.response import Response

from membership_site.api.views import ApiGenericView, ApiView

from . import catalog, selectors, services
from .filters import DeliveryFilter, WebhookEndpointFilter
from .models import Delivery, WebhookEndpoint
from .serializers import (
    DeliverySerializer,
    EmptySerializer,
    EventPageSerializer,
    EventSerializer,
    EventStreamQuerySerializer,
    EventTypeSerializer,
    RotateSecretSerializer,
    WebhookEndpointSerializer,
    WebhookEndpointUpdateSerializer,
    WebhookEndpointWithSecretSerializer,
    WebhookEndpointWriteSerializer,
)

DEFAULT_STREAM_LIMIT = 100


class EventStreamApi(ApiView):
    scope_area = "events"

    @extend_schema(
        summary="Read the event stream",
        operation_id="events_stream",
        description=(
            "Events of the program, oldest first, for systems that poll instead of receiving "
            "webhooks. Start without `after`, then pass the `next_cursor` of each page. An event "
            "appears once every transaction that started before it has ended, so a later poll "
            "never finds an event *before* your cursor: keep the cursor and nothing is missed "
            "(at-least-once; the `id` tells duplicates apart). Events are kept "
            "`EVENTS_RETENTION_DAYS` (30 by default). Per member, order by `member_sequence`."
        ),
        parameters=[
            OpenApiParameter("after", str, description="Cursor: read the events after it."),
            OpenApiParameter(
                "type", str, description="Event types, comma-separated (`points.earned,tier.changed`)."
            ),
            OpenApiParameter("member", int, description="Only this member's events (member id)."),
            OpenApiParameter("limit", int, description=f"Page size (default {DEFAULT_STREAM_LIMIT})."),
        ],
        responses=EventPageSerializer,
    )
    def get(self, request):
        # Other query parameters (e.g. a cache buster) are ignored, as in every list.
        names = ("after", "type", "member", "limit")
        query = EventStreamQuerySerializer(
            data={name: request.query_params[name] for name in names if name in request.query_params}
        )
        query.is_valid(raise_exception=True)
        data = query.validated_data
        after = selectors.StreamPosition.decode(data["after"]) if data.get("after") else None
        limit = data.get("limit", min(DEFAULT_STREAM_LIMIT, settings.API_PAGE_SIZE_MAX))
        events = selectors.event_stream(
            program_id=self.program.pk,
            after=after,
            types=selectors.parse_event_types(data.get("type")),
            member_id=data.get("member"),
            limit=limit + 1,
        )
        has_more = len(events) > limit
        events = events[:limit]
        next_cursor = selectors.StreamPosition.of(events[-1]).encode() if events else data.get("after")
        return Response(
            {
                "results": EventSerializer(events, many=True).data,
                "next_cursor": next_cursor,
                "has_more": has_more,
            }
        )


class EventDetailApi(ApiView):
    scope_area = "events"

    @extend_schema(summary="Get an event", responses=EventSerializer)
    def get(self, request, event_id: str):
        return Response(
            EventSerializer(selectors.event_get(program_id=self.program.pk, event_id=event_id)).data
        )


class EventTypeListApi(ApiView):
    scope_area = "events"

    @extend_schema(
        summary="List the event types",
        description="The whole catalog (small and fixed, so not paginated): each type with "
        "what it means and an example of its `data`.",
        responses=EventTypeSerializer(many=True),
    )
    def get(self, request):
        return Response(EventTypeSerializer(catalog.all_types(), many=True).data)


class WebhookEndpointListCreateApi(ApiGenericView):
    scope_area = "webhooks"
    serializer_class = WebhookEndpointSerializer
    filter_backends = [DjangoFilterBackend]
    filterset_class = WebhookEndpointFilter

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation: no request
            return WebhookEndpoint.objects.none()
        return selectors.endpoint_list(program_id=self.program.pk)

    @extend_schema(summary="List webhook endpoints", responses=WebhookEndpointSerializer(many=True))
    def get(self, request):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(WebhookEndpointSerializer(page, many=True).data)

    @extend_schema(
        summary="Create a webhook endpoint",
        description="The response holds the signing secret (`whsec_...`); it is shown only "
        "once. The URL must be https and resolve to public addresses.",
        request=WebhookEndpointWriteSerializer,
        responses={201: WebhookEndpointWithSecretSerializer},
    )
    def post(self, request):
        serializer = WebhookEndpointWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        created = services.endpoint_create(
            program_id=self.program.pk, actor=self.actor, **serializer.validated_data
        )
        return Response(
            WebhookEndpointWithSecretSerializer(created.endpoint, context={"secret": created.secret}).data,
            status=status.HTTP_201_CREATED,
        )


class WebhookEndpointDetailApi(ApiView):
    scope_area = "webhooks"

    @extend_schema(summary="Get a webhook endpoint", responses=WebhookEndpointSerializer)
    def get(self, request, endpoint_id: int):
        endpoint = selectors.endpoint_get(program_id=self.program.pk, endpoint_id=endpoint_id)
        return Response(WebhookEndpointSerializer(endpoint).data)

    @extend_schema(
        summary="Update a webhook endpoint",
        description="Only the fields sent change. `is_active: true` enables an endpoint that "
        "was disabled (by hand, after 410 Gone, or after 5 days of failures).",
        request=WebhookEndpointUpdateSerializer,
        responses=WebhookEndpointSerializer,
    )
    def patch(self, request, endpoint_id: int):
        endpoint = selectors.endpoint_get(program_id=self.program.pk, endpoint_id=endpoint_id)
        serializer = WebhookEndpointUpdateSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        endpoint = services.endpoint_update(endpoint=endpoint, actor=self.actor, **serializer.validated_data)
        return Response(WebhookEndpointSerializer(endpoint).data)

    @extend_schema(summary="Delete a webhook endpoint", request=None, responses={204: None})
    def delete(self, request, endpoint_id: int):
        endpoint = selectors.endpoint_get(program_id=self.program.pk, endpoint_id=endpoint_id)
        services.endpoint_delete(endpoint=endpoint, actor=self.actor)
        return Response(status=status.HTTP_204_NO_CONTENT)


class WebhookEndpointRotateSecretApi(ApiView):
    scope_area = "webhooks"

    @extend_schema(
        summary="Rotate a webhook endpoint's secret",
        description="Returns the new secret (shown once). During the overlap both secrets "
        "sign: `webhook-signature` carries two `v1,...` entries.",
        request=RotateSecretSerializer,
        responses=WebhookEndpointWithSecretSerializer,
    )
    def post(self, request, endpoint_id: int):
        endpoint = selectors.endpoint_get(program_id=self.program.pk, endpoint_id=endpoint_id)
        serializer = RotateSecretSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        rotated = services.endpoint_rotate_secret(
            endpoint=endpoint, actor=self.actor, overlap_hours=serializer.validated_data.get("overlap_hours")
        )
        return Response(
            WebhookEndpointWithSecretSerializer(rotated.endpoint, context={"secret": rotated.secret}).data
        )


class WebhookEndpointTestApi(ApiView):
    scope_area = "webhooks"

    @extend_schema(
        summary="Send a test event",
        description="Sends a `webhook.test` event to this endpoint only; follow it with "
        "GET .../deliveries or the returned delivery.",
        request=EmptySerializer,
        responses={202: DeliverySerializer},
    )
    def post(self, request, endpoint_id: int):
        endpoint = selectors.endpoint_get(program_id=self.program.pk, endpoint_id=endpoint_id)
        EmptySerializer(data=request.data).is_valid(raise_exception=True)
        delivery = services.endpoint_send_test(endpoint=endpoint, actor=self.actor)
        delivery = selectors.delivery_get(program_id=self.program.pk, delivery_id=delivery.pk)
        return Response(DeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)


class WebhookEndpointDeliveriesApi(ApiGenericView):
    scope_area = "webhooks"
    serializer_class = DeliverySerializer
    filter_backends = [DjangoFilterBackend]
    filterset_class = DeliveryFilter

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation: no request
            return Delivery.objects.none()
        endpoint = selectors.endpoint_get(program_id=self.program.pk, endpoint_id=self.kwargs["endpoint_id"])
        return selectors.delivery_list(program_id=self.program.pk, endpoint=endpoint)

    @extend_schema(
        summary="List an endpoint's deliveries",
        description="Newest first, each with its attempts (time, duration, status code, the "
        "first 1 KB of the answer, error).",
        responses=DeliverySerializer(many=True),
    )
    def get(self, request, endpoint_id: int):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(DeliverySerializer(page, many=True).data)


class DeliveryDetailApi(ApiView):
    scope_area = "webhooks"

    @extend_schema(summary="Get a webhook delivery", responses=DeliverySerializer)
    def get(self, request, delivery_id: int):
        delivery = selectors.delivery_get(program_id=self.program.pk, delivery_id=delivery_id)
        return Response(DeliverySerializer(delivery).data)


class DeliveryRetryApi(ApiView):
    scope_area = "webhooks"

    @extend_schema(
        summary="Resend a delivery now",
        description="Same event, same `webhook-id`. 409 while it is being sent or when its "
        "endpoint is disabled.",
        request=EmptySerializer,
        responses={202: DeliverySerializer},
    )
    def post(self, request, delivery_id: int):
        delivery = selectors.delivery_get(program_id=self.program.pk, delivery_id=delivery_id)
        EmptySerializer(data=request.data).is_valid(raise_exception=True)
        delivery = services.delivery_retry(delivery=delivery, actor=self.actor)
        delivery = selectors.delivery_get(program_id=self.program.pk, delivery_id=delivery.pk)
        return Response(DeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)
