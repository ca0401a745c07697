"""Every 4xx/5xx under /api/ is an RFC 9457 problem; request ids; the access log."""

import json
import logging

import pytest
from rest_framework.test import APIClient

from members import selectors
from members.models import Member

pytestmark = pytest.mark.django_db


def _problem(response, status, code):
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status and body["code"] == code
    assert body["type"] == f"/api/problems/{code}"
    assert body["title"] and body["detail"]
    return body


def test_unknown_api_url_is_404_problem(api):
    _problem(api.get("/api/v1/no-such-thing"), 404, "not_found")
    _problem(api.post("/api/v2/members", {}), 404, "not_found")


def test_wrong_method_is_405_problem(api):
    response = api.delete("/api/v1/members")
    _problem(response, 405, "method_not_allowed")
    assert "GET" in response["Allow"]


def test_wrong_content_type_is_415_problem(api):
    response = api.post("/api/v1/members", "email=a@example.com", content_type="text/plain")
    _problem(response, 415, "unsupported_media_type")
    assert not Member.objects.exists()


def test_malformed_json_is_400_problem(api):
    response = api.post("/api/v1/members", '{"email": ', content_type="application/json")
    _problem(response, 400, "malformed_body")


def test_non_object_json_is_400_problem(api):
    body = _problem(api.post("/api/v1/members", [1, 2], format="json"), 400, "validation_error")
    assert body["errors"][0]["field"] is None


def test_deeply_nested_json_is_400_problem(api):
    # json.loads raised RecursionError, which DRF does not treat as a parse error (a 500).
    response = api.post("/api/v1/members", "[" * 5000 + "]" * 5000, content_type="application/json")
    _problem(response, 400, "malformed_body")
    assert not Member.objects.exists()


@pytest.mark.parametrize(
    ("raw", "field", "message"),
    [
        # PostgreSQL text and JSONB cannot hold NUL: these were DataError 500s.
        ('{"first_name": "a\\u0000b"}', "first_name", "The text contains a NUL character (\\u0000)."),
        ('{"preferences": {"\\u0000": 1}}', "preferences", "A key contains a NUL character (\\u0000)."),
        ('{"preferences": {"a": ["x", "\\u0000"]}}', "preferences.a.1", "The text contains a NUL"),
        # A lone surrogate cannot be encoded: the error message quoting it failed to render.
        ('{"status": "\\ud800"}', "status", "The text contains a lone surrogate"),
        ('{"\\udfff": 1}', None, "A key contains a lone surrogate"),
        (
            '{"consents": [{"purpose": "\\ud800"}]}',
            "consents.0.purpose",
            "The text contains a lone surrogate",
        ),
    ],
)
def test_text_postgresql_cannot_store_is_400_problem(api, raw, field, message):
    body = _problem(
        api.post("/api/v1/members", raw, content_type="application/json"), 400, "validation_error"
    )
    assert len(body["errors"]) == 1
    error = body["errors"][0]
    assert (error["field"], error["code"]) == (field, "invalid_characters")
    assert error["message"].startswith(message)
    assert not Member.objects.exists()


def test_surrogate_pairs_are_ordinary_text(api):
    response = api.post(
        "/api/v1/members", '{"first_name": "Ana \\ud83d\\ude00"}', content_type="application/json"
    )
    assert response.status_code == 201, response.content
    assert Member.objects.get().first_name == "Ana \U0001f600"


def test_nul_in_query_or_path_parameter_is_a_problem(api, member):
    body = _problem(api.get("/api/v1/members?external_ref=a%00b"), 400, "validation_error")
    assert [(e["field"], e["code"]) for e in body["errors"]] == [("external_ref", "invalid_characters")]
    body = _problem(api.get("/api/v1/members?a%00=1"), 400, "validation_error")
    assert [(e["field"], e["code"]) for e in body["errors"]] == [(None, "invalid_characters")]
    _problem(api.get("/api/v1/labels/a%00b"), 404, "not_found")
    _problem(api.delete(f"/api/v1/members/{member.pk}/labels/a%00b"), 404, "not_found")


def test_oversized_body_is_413_problem(api, settings):
    settings.API_MAX_BODY_BYTES = 100
    response = api.post(
        "/api/v1/members", json.dumps({"first_name": "x" * 200}), content_type="application/json"
    )
    _problem(response, 413, "payload_too_large")
    assert not Member.objects.exists()


def test_validation_problem_lists_field_errors(api):
    body = _problem(api.post("/api/v1/members", {"email": 5, "birth_date": "never"}), 400, "validation_error")
    fields = {error["field"]: error["code"] for error in body["errors"]}
    assert fields == {"birth_date": "invalid", "email": "invalid_email"} or fields["birth_date"] == "invalid"


def test_unhandled_error_is_500_problem_without_internals(api, member, monkeypatch, caplog):
    def explode(**kwargs):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(selectors, "member_get", explode)
    client = APIClient(raise_request_exception=False)
    client.credentials(HTTP_X_API_KEY=api.key)
    response = client.get(f"/api/v1/members/{member.pk}")
    body = _problem(response, 500, "internal_error")
    assert "secret internal detail" not in response.content.decode()
    assert response["X-Request-ID"] in body["detail"]
    assert any("Unhandled error" in record.message for record in caplog.records)


def test_throttling_answers_429_with_retry_after(make_api):
    client = make_api(rate_limit="3/min")
    for _ in range(3):
        assert client.get("/api/v1/me").status_code == 200
    response = client.get("/api/v1/me")
    _problem(response, 429, "rate_limited")
    assert 1 <= int(response["Retry-After"]) <= 60


def test_throttling_is_per_integration(make_api):
    first = make_api(rate_limit="1/min")
    second = make_api(rate_limit="1/min")
    assert first.get("/api/v1/me").status_code == 200
    assert first.get("/api/v1/me").status_code == 429
    assert second.get("/api/v1/me").status_code == 200


def test_throttling_counts_in_redis_shared_by_processes(make_api, settings):
    import os

    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
            "KEY_PREFIX": f"test-throttle-{os.getpid()}",
        }
    }
    client = make_api(rate_limit="2/min")
    assert client.get("/api/v1/me").status_code == 200
    assert client.get("/api/v1/me").status_code == 200
    assert client.get("/api/v1/me").status_code == 429
    # The counter lives in Redis: another process (here a fresh connection) sees it.
    import redis

    client = redis.Redis.from_url(settings.CACHES["default"]["LOCATION"])
    keys = client.keys(f"test-throttle-{os.getpid()}*")
    assert keys
    # Only this test's keys: the cache's clear() would FLUSHDB the Redis database that
    # Celery workers of other tests use as their broker.
    client.delete(*keys)


def test_request_id_is_returned_and_client_ids_are_kept(api):
    generated = api.get("/api/v1/me")["X-Request-ID"]
    assert len(generated) == 32
    assert api.get("/api/v1/me", HTTP_X_REQUEST_ID="till-42-abcdef")["X-Request-ID"] == "till-42-abcdef"
    assert api.get("/api/v1/me", HTTP_X_REQUEST_ID="bad id\n")["X-Request-ID"] != "bad id\n"


def test_access_log_has_integration_method_path_status_duration_and_no_secrets(api, caplog):
    caplog.set_level(logging.INFO, logger="api.request")
    api.post("/api/v1/members", {"email": "private@example.com"}, HTTP_X_REQUEST_ID="req-12345678")
    [record] = [r for r in caplog.records if r.name == "api.request"]
    assert (record.method, record.path, record.status) == ("POST", "/api/v1/members", 201)
    assert record.integration_id == api.integration.pk
    assert record.duration_ms >= 0
    logged = caplog.text
    assert api.key not in logged and "private@example.com" not in logged
