"""The admin: endpoints (secret shown once), deliveries (read-only, resend), events."""

from __future__ import annotations

import pytest
from django.urls import reverse

from membership_site.actors import Actor
from webhooks import crypto, delivery, services
from webhooks.models import Delivery, WebhookEndpoint

SYSTEM = Actor.system("tests")

pytestmark = pytest.mark.usefixtures("local_urls")


def test_admin_endpoint_add_shows_the_secret_once(admin_client, program, receiver):
    response = admin_client.post(
        reverse("admin:webhooks_webhookendpoint_add"),
        {"program_id": program.pk, "url": receiver.url, "description": "CRM", "is_active": "on"},
    )
    assert response.status_code == 200, response.content
    endpoint = WebhookEndpoint.objects.get()
    secret = crypto.decrypt(endpoint.secret_encrypted)
    assert secret in response.content.decode()
    assert "shown only once" in response.content.decode()
    change = admin_client.get(reverse("admin:webhooks_webhookendpoint_change", args=[endpoint.pk]))
    assert secret not in change.content.decode()


def test_admin_endpoint_add_refuses_private_urls(admin_client, program, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_URLS = False
    response = admin_client.post(
        reverse("admin:webhooks_webhookendpoint_add"),
        {"program_id": program.pk, "url": "https://127.0.0.1/x", "is_active": "on"},
    )
    assert response.status_code == 200
    assert "private" in response.content.decode()
    assert not WebhookEndpoint.objects.exists()


def test_admin_endpoint_rotate_action_shows_the_new_secret(admin_client, program, receiver):
    endpoint = services.endpoint_create(program_id=program.pk, url=receiver.url, actor=SYSTEM).endpoint
    response = admin_client.post(
        reverse("admin:webhooks_webhookendpoint_changelist"),
        {"action": "rotate_secret", "_selected_action": [endpoint.pk]},
    )
    endpoint.refresh_from_db()
    assert crypto.decrypt(endpoint.secret_encrypted) in response.content.decode()
    assert endpoint.previous_secret_expires_at is not None


def test_admin_endpoint_change_and_disabled_reason(admin_client, program, receiver):
    endpoint = services.endpoint_create(program_id=program.pk, url=receiver.url, actor=SYSTEM).endpoint
    delivery.endpoint_disable_automatically(endpoint_id=endpoint.pk, reason="The receiver answered 410 Gone.")
    listing = admin_client.get(reverse("admin:webhooks_webhookendpoint_changelist"))
    assert "The receiver answered 410 Gone." in listing.content.decode()
    response = admin_client.post(
        reverse("admin:webhooks_webhookendpoint_change", args=[endpoint.pk]),
        {"url": receiver.url, "description": "again", "is_active": "on"},
    )
    assert response.status_code == 302, response.content
    endpoint.refresh_from_db()
    assert endpoint.is_active and endpoint.disabled_reason == "" and endpoint.description == "again"


def test_admin_deliveries_filter_failed_and_resend(
    admin_client, program, receiver, django_capture_on_commit_callbacks
):
    endpoint = services.endpoint_create(program_id=program.pk, url=receiver.url, actor=SYSTEM).endpoint
    test = services.endpoint_send_test(endpoint=endpoint, actor=SYSTEM)
    Delivery.objects.filter(pk=test.pk).update(state=Delivery.State.FAILED, attempt_count=8)

    failed = admin_client.get(reverse("admin:webhooks_delivery_changelist"), {"state__exact": "failed"})
    assert failed.status_code == 200 and test.event.event_id in failed.content.decode()
    assert admin_client.get(reverse("admin:webhooks_delivery_change", args=[test.pk])).status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(
            reverse("admin:webhooks_delivery_changelist"),
            {"action": "retry_now", "_selected_action": [test.pk]},
        )
    test.refresh_from_db()
    assert test.state == Delivery.State.SUCCEEDED
    assert test.attempts.get().triggered_by == "user:admin"


def test_admin_events_search_by_id_type_and_member(admin_client, program):
    event = services.event_record(program_id=program.pk, member_id=4242, type="member.updated", data={})
    url = reverse("admin:webhooks_event_changelist")
    for term in (event.event_id, "member.updated", "4242"):
        assert event.event_id in admin_client.get(url, {"q": term}).content.decode(), term
    assert admin_client.get(reverse("admin:webhooks_event_change", args=[event.pk])).status_code == 200
