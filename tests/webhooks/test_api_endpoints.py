"""/webhook-endpoints and /webhook-deliveries: CRUD, secrets, test sends, resends, and
every error path (400, 401, 403, 404 other program, 409, idempotency replay)."""

from __future__ import annotations

import pytest
from standardwebhooks import Webhook

from webhooks import crypto
from webhooks.models import Delivery, Event, WebhookEndpoint

from .conftest import Reply

pytestmark = pytest.mark.usefixtures("local_urls")


def _create(api, url, **body):
    return api.post("/api/v1/webhook-endpoints", {"url": url, **body}, format="json")


def test_endpoint_create_returns_the_secret_once_and_stores_it_encrypted(api, receiver):
    response = _create(api, receiver.url, description="CRM", event_types=["member.created", "card.issued"])
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["secret"].startswith("whsec_")
    assert body["event_types"] == ["card.issued", "member.created"]
    assert body["is_active"] is True
    endpoint = WebhookEndpoint.objects.get(pk=body["id"])
    assert body["secret"] not in endpoint.secret_encrypted
    assert crypto.decrypt(endpoint.secret_encrypted) == body["secret"]
    assert endpoint.program_id == api.program.pk
    # Never again: not in reads or lists, nor in the history table.
    assert "secret" not in api.get(f"/api/v1/webhook-endpoints/{endpoint.pk}").json()
    assert "secret" not in api.get("/api/v1/webhook-endpoints").json()["results"][0]
    assert not hasattr(endpoint.history.first(), "secret_encrypted")


def test_endpoint_create_replays_with_the_same_idempotency_key(api, receiver):
    first = api.post(
        "/api/v1/webhook-endpoints", {"url": receiver.url}, format="json", HTTP_IDEMPOTENCY_KEY="k-1"
    )
    again = api.post(
        "/api/v1/webhook-endpoints", {"url": receiver.url}, format="json", HTTP_IDEMPOTENCY_KEY="k-1"
    )
    assert first.status_code == again.status_code == 201
    assert again["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert WebhookEndpoint.objects.count() == 1
    other_body = api.post(
        "/api/v1/webhook-endpoints", {"url": receiver.url + "2"}, format="json", HTTP_IDEMPOTENCY_KEY="k-1"
    )
    assert other_body.status_code == 422


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({}, "url", "required"),
        ({"url": "not a url"}, "url", "invalid_webhook_url"),
        ({"url": "ftp://example.com/x"}, "url", "invalid_webhook_url"),
        # Malformed punycode labels: idna.IDNAError escaped as a 500.
        ({"url": "https://xn--/"}, "url", "invalid_webhook_url"),
        ({"url": "https://xn--ls8h.la/"}, "url", "invalid_webhook_url"),
        (
            {"url": "https://example.com/x", "event_types": ["member.nope"]},
            "event_types",
            "unknown_event_type",
        ),
        ({"url": "https://example.com/x", "event_types": "member.created"}, "event_types", "not_a_list"),
        ({"url": "https://example.com/x", "secret": "whsec_x"}, "secret", "unknown_field"),
        ({"url": "https://example.com/x", "description": "x" * 501}, "description", "max_length"),
    ],
)
def test_endpoint_create_rejects_bad_input_with_field_errors(api, body, field, code):
    response = api.post("/api/v1/webhook-endpoints", body, format="json")
    assert response.status_code == 400, response.content
    assert {"field": field, "code": code} in [
        {"field": e["field"], "code": e["code"]} for e in response.json()["errors"]
    ]
    assert not WebhookEndpoint.objects.exists()


def test_endpoint_create_requires_https_unless_allowed(api, settings):
    settings.WEBHOOKS_REQUIRE_HTTPS = True
    response = _create(api, "http://example.com/hooks")
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "invalid_webhook_url"
    assert "https" in response.json()["detail"]


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hooks",
        "https://localhost:8443/hooks",
        "https://10.1.2.3/hooks",
        "https://192.168.0.10/hooks",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/hooks",
        "https://[::ffff:127.0.0.1]/hooks",
        "https://0.0.0.0/hooks",
    ],
)
def test_endpoint_create_refuses_private_addresses(api, settings, url):
    settings.WEBHOOKS_ALLOW_PRIVATE_URLS = False
    response = _create(api, url)
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "webhook_url_not_allowed"
    assert response.json()["errors"][0]["field"] == "url"
    assert not WebhookEndpoint.objects.exists()


def test_endpoint_update_refuses_private_addresses(api, settings, make_endpoint):
    endpoint = make_endpoint("https://93.184.216.34/hooks").endpoint
    settings.WEBHOOKS_ALLOW_PRIVATE_URLS = False
    response = api.patch(
        f"/api/v1/webhook-endpoints/{endpoint.pk}", {"url": "https://127.0.0.1/x"}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["code"] == "webhook_url_not_allowed"
    endpoint.refresh_from_db()
    assert endpoint.url == "https://93.184.216.34/hooks"


def test_endpoint_create_limits_endpoints_per_program(api, settings, make_endpoint, receiver):
    settings.WEBHOOK_MAX_ENDPOINTS_PER_PROGRAM = 1
    make_endpoint(receiver.url)
    response = _create(api, receiver.url)
    assert response.status_code == 409
    assert response.json()["code"] == "webhook_endpoint_limit"


def test_endpoint_list_filters_and_paginates_own_program_only(api, make_endpoint, receiver, other_program):
    active = make_endpoint(receiver.url).endpoint
    inactive = make_endpoint(receiver.url, is_active=False).endpoint
    make_endpoint(receiver.url, program_id=other_program.pk)

    listed = api.get("/api/v1/webhook-endpoints", {"limit": 1})
    assert len(listed.json()["results"]) == 1 and listed.json()["next"]
    everything = api.get("/api/v1/webhook-endpoints").json()["results"]
    assert {e["id"] for e in everything} == {active.pk, inactive.pk}
    assert [
        e["id"] for e in api.get("/api/v1/webhook-endpoints", {"is_active": "false"}).json()["results"]
    ] == [inactive.pk]
    assert inactive.disabled_reason.startswith("Created disabled")


def test_endpoint_update_changes_only_sent_fields_and_enabling_clears_the_reason(
    api, make_endpoint, receiver
):
    endpoint = make_endpoint(receiver.url, description="old", event_types=["member.created"]).endpoint
    response = api.patch(f"/api/v1/webhook-endpoints/{endpoint.pk}", {"is_active": False}, format="json")
    assert response.status_code == 200
    assert response.json()["disabled_reason"].startswith("Disabled by integration:")
    assert response.json()["description"] == "old"

    response = api.patch(
        f"/api/v1/webhook-endpoints/{endpoint.pk}", {"is_active": True, "event_types": []}, format="json"
    )
    assert response.json()["is_active"] is True
    assert response.json()["disabled_at"] is None and response.json()["disabled_reason"] == ""
    assert response.json()["event_types"] == []
    bad = api.patch(f"/api/v1/webhook-endpoints/{endpoint.pk}", {"event_types": ["x.y"]}, format="json")
    assert bad.status_code == 400
    unknown = api.patch(f"/api/v1/webhook-endpoints/{endpoint.pk}", {"secret": "x"}, format="json")
    assert unknown.status_code == 400 and unknown.json()["errors"][0]["code"] == "unknown_field"


def test_endpoint_delete_removes_it_and_its_deliveries(api, make_endpoint, receiver):
    endpoint = make_endpoint(receiver.url).endpoint
    api.post(f"/api/v1/webhook-endpoints/{endpoint.pk}/test", {}, format="json")
    assert api.delete(f"/api/v1/webhook-endpoints/{endpoint.pk}").status_code == 204
    assert not WebhookEndpoint.objects.exists() and not Delivery.objects.exists()
    assert api.delete(f"/api/v1/webhook-endpoints/{endpoint.pk}").status_code == 404


def test_endpoint_rotate_secret_returns_a_new_secret_and_keeps_the_old_one_signing(
    api, make_endpoint, receiver
):
    created = make_endpoint(receiver.url)
    response = api.post(
        f"/api/v1/webhook-endpoints/{created.endpoint.pk}/rotate-secret", {"overlap_hours": 2}, format="json"
    )
    assert response.status_code == 200, response.content
    new_secret = response.json()["secret"]
    assert new_secret.startswith("whsec_") and new_secret != created.secret
    assert response.json()["previous_secret_expires_at"]
    bad = api.post(
        f"/api/v1/webhook-endpoints/{created.endpoint.pk}/rotate-secret",
        {"overlap_hours": 1000},
        format="json",
    )
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "overlap_hours"


def test_endpoint_test_sends_a_signed_webhook_test_event_to_that_endpoint_only(
    api, make_endpoint, make_receiver, django_capture_on_commit_callbacks
):
    target, bystander = make_receiver(), make_receiver()
    created = make_endpoint(target.url)
    make_endpoint(bystander.url)

    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(f"/api/v1/webhook-endpoints/{created.endpoint.pk}/test", format="json")
    assert response.status_code == 202, response.content
    assert response.json()["event_type"] == "webhook.test"

    [request] = target.requests
    assert Webhook(created.secret).verify(request.body, request.headers)["type"] == "webhook.test"
    assert bystander.requests == []
    delivery = api.get(f"/api/v1/webhook-deliveries/{response.json()['id']}").json()
    assert delivery["status"] == "succeeded"
    assert delivery["attempts"][0]["status_code"] == 200
    assert delivery["attempts"][0]["triggered_by"].startswith("integration:")


def test_endpoint_test_on_a_disabled_endpoint_is_a_conflict(api, make_endpoint, receiver):
    endpoint = make_endpoint(receiver.url, is_active=False).endpoint
    response = api.post(f"/api/v1/webhook-endpoints/{endpoint.pk}/test", format="json")
    assert response.status_code == 409
    assert response.json()["code"] == "webhook_endpoint_disabled"
    assert not Event.objects.filter(type="webhook.test").exists()


def test_endpoint_test_rejects_a_body(api, make_endpoint, receiver):
    endpoint = make_endpoint(receiver.url).endpoint
    response = api.post(f"/api/v1/webhook-endpoints/{endpoint.pk}/test", {"x": 1}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "unknown_field"


def test_endpoint_deliveries_lists_attempts_and_filters_by_status(
    api, make_endpoint, receiver, django_capture_on_commit_callbacks
):
    endpoint = make_endpoint(receiver.url).endpoint
    receiver.reply(Reply(status=500, body=b"x" * 3000), 200)
    with django_capture_on_commit_callbacks(execute=True):
        failed = api.post(f"/api/v1/webhook-endpoints/{endpoint.pk}/test", format="json").json()
    with django_capture_on_commit_callbacks(execute=True):
        succeeded = api.post(f"/api/v1/webhook-endpoints/{endpoint.pk}/test", format="json").json()

    listed = api.get(f"/api/v1/webhook-endpoints/{endpoint.pk}/deliveries").json()["results"]
    assert [d["id"] for d in listed] == [succeeded["id"], failed["id"]]
    retrying = listed[1]
    assert retrying["status"] == "retrying"
    assert retrying["last_status_code"] == 500
    [attempt] = retrying["attempts"]
    assert attempt["succeeded"] is False and attempt["error"] == "HTTP 500"
    assert len(attempt["response_excerpt"]) == 1024
    assert attempt["duration_ms"] >= 0

    only = api.get(f"/api/v1/webhook-endpoints/{endpoint.pk}/deliveries", {"status": "retrying"})
    assert [d["id"] for d in only.json()["results"]] == [failed["id"]]
    bad = api.get(f"/api/v1/webhook-endpoints/{endpoint.pk}/deliveries", {"status": "lost"})
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "status"


def test_delivery_retry_resends_now_with_the_same_webhook_id(
    api, make_endpoint, receiver, django_capture_on_commit_callbacks
):
    created = make_endpoint(receiver.url)
    receiver.reply(503, 200)
    with django_capture_on_commit_callbacks(execute=True):
        delivery = api.post(f"/api/v1/webhook-endpoints/{created.endpoint.pk}/test", format="json").json()
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(f"/api/v1/webhook-deliveries/{delivery['id']}/retry", format="json")
    assert response.status_code == 202, response.content

    first, second = receiver.requests
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == delivery["event_id"]
    assert first.body == second.body
    Webhook(created.secret).verify(second.body, second.headers)
    final = api.get(f"/api/v1/webhook-deliveries/{delivery['id']}").json()
    assert final["status"] == "succeeded"
    assert [a["status_code"] for a in final["attempts"]] == [503, 200]


def test_delivery_retry_is_refused_while_sending_or_when_the_endpoint_is_disabled(
    api, make_endpoint, receiver
):
    endpoint = make_endpoint(receiver.url).endpoint
    delivery_id = api.post(f"/api/v1/webhook-endpoints/{endpoint.pk}/test", format="json").json()["id"]
    Delivery.objects.filter(pk=delivery_id).update(state=Delivery.State.SENDING)
    response = api.post(f"/api/v1/webhook-deliveries/{delivery_id}/retry", format="json")
    assert response.status_code == 409 and response.json()["code"] == "webhook_delivery_in_progress"

    Delivery.objects.filter(pk=delivery_id).update(state=Delivery.State.FAILED)
    api.patch(f"/api/v1/webhook-endpoints/{endpoint.pk}", {"is_active": False}, format="json")
    response = api.post(f"/api/v1/webhook-deliveries/{delivery_id}/retry", format="json")
    assert response.status_code == 409 and response.json()["code"] == "webhook_endpoint_disabled"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/webhook-endpoints/{endpoint}"),
        ("patch", "/api/v1/webhook-endpoints/{endpoint}"),
        ("delete", "/api/v1/webhook-endpoints/{endpoint}"),
        ("post", "/api/v1/webhook-endpoints/{endpoint}/rotate-secret"),
        ("post", "/api/v1/webhook-endpoints/{endpoint}/test"),
        ("get", "/api/v1/webhook-endpoints/{endpoint}/deliveries"),
        ("get", "/api/v1/webhook-deliveries/{delivery}"),
        ("post", "/api/v1/webhook-deliveries/{delivery}/retry"),
    ],
)
def test_webhook_endpoints_of_another_program_answer_404(
    api, make_api, make_endpoint, receiver, other_program, method, path
):
    theirs = make_endpoint(receiver.url, program_id=other_program.pk).endpoint
    their_api = make_api(target_program=other_program)
    delivery_id = their_api.post(f"/api/v1/webhook-endpoints/{theirs.pk}/test", format="json").json()["id"]
    url = path.format(endpoint=theirs.pk, delivery=delivery_id)

    response = getattr(api, method)(url, {}, format="json")
    assert response.status_code == 404, response.content
    assert response.json()["code"] in ("webhook_endpoint_not_found", "webhook_delivery_not_found")
    missing = getattr(api, method)(path.format(endpoint=999999, delivery=999999), {}, format="json")
    assert missing.status_code == 404
    theirs.refresh_from_db()
    assert theirs.is_active


@pytest.mark.parametrize(
    ("method", "path", "scope"),
    [
        ("get", "/api/v1/webhook-endpoints", "webhooks:read"),
        ("post", "/api/v1/webhook-endpoints", "webhooks:write"),
        ("get", "/api/v1/webhook-endpoints/{endpoint}", "webhooks:read"),
        ("patch", "/api/v1/webhook-endpoints/{endpoint}", "webhooks:write"),
        ("delete", "/api/v1/webhook-endpoints/{endpoint}", "webhooks:write"),
        ("post", "/api/v1/webhook-endpoints/{endpoint}/rotate-secret", "webhooks:write"),
        ("post", "/api/v1/webhook-endpoints/{endpoint}/test", "webhooks:write"),
        ("get", "/api/v1/webhook-endpoints/{endpoint}/deliveries", "webhooks:read"),
        ("get", "/api/v1/webhook-deliveries/{delivery}", "webhooks:read"),
        ("post", "/api/v1/webhook-deliveries/{delivery}/retry", "webhooks:write"),
    ],
)
def test_webhook_endpoints_need_their_scope(api, make_api, make_endpoint, receiver, method, path, scope):
    endpoint = make_endpoint(receiver.url).endpoint
    delivery_id = api.post(f"/api/v1/webhook-endpoints/{endpoint.pk}/test", format="json").json()["id"]
    url = path.format(endpoint=endpoint.pk, delivery=delivery_id)
    other_access = "webhooks:read" if scope == "webhooks:write" else "webhooks:write"

    assert getattr(api.__class__(), method)(url, {}, format="json").status_code == 401
    forbidden = getattr(make_api([other_access, "events:read"]), method)(url, {}, format="json")
    assert forbidden.status_code == 403
    assert forbidden.json()["code"] == "insufficient_scope"
    body = {"url": receiver.url} if path == "/api/v1/webhook-endpoints" else {}
    allowed = getattr(make_api([scope]), method)(url, body, format="json")
    assert allowed.status_code < 400, allowed.content
