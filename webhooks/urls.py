from django.urls import path

from . import api

urlpatterns = [
    path("events", api.EventStreamApi.as_view(), name="event-stream"),
    path("events/<str:event_id>", api.EventDetailApi.as_view(), name="event-detail"),
    path("event-types", api.EventTypeListApi.as_view(), name="event-type-list"),
    path("webhook-endpoints", api.WebhookEndpointListCreateApi.as_view(), name="webhook-endpoint-list"),
    path(
        "webhook-endpoints/<int:endpoint_id>",
        api.WebhookEndpointDetailApi.as_view(),
        name="webhook-endpoint-detail",
    ),
    path(
        "webhook-endpoints/<int:endpoint_id>/rotate-secret",
        api.WebhookEndpointRotateSecretApi.as_view(),
        name="webhook-endpoint-rotate-secret",
    ),
    path(
        "webhook-endpoints/<int:endpoint_id>/test",
        api.WebhookEndpointTestApi.as_view(),
        name="webhook-endpoint-test",
    ),
    path(
        "webhook-endpoints/<int:endpoint_id>/deliveries",
        api.WebhookEndpointDeliveriesApi.as_view(),
        name="webhook-endpoint-deliveries",
    ),
    path(
        "webhook-deliveries/<int:delivery_id>",
        api.DeliveryDetailApi.as_view(),
        name="webhook-delivery-detail",
    ),
    path(
        "webhook-deliveries/<int:delivery_id>/retry",
        api.DeliveryRetryApi.as_view(),
        name="webhook-delivery-retry",
    ),
]
