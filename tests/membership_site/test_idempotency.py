"""Idempotency-Key on POST: replay, reuse with another request, in flight, expiry."""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from integrations.models import IdempotencyRecord
from members.models import Member

pytestmark = pytest.mark.django_db


def test_same_key_same_request_replays_the_stored_response(api):
    first = api.post("/api/v1/members", {"email": "a@example.com"}, HTTP_IDEMPOTENCY_KEY="key-1")
    second = api.post("/api/v1/members", {"email": "a@example.com"}, HTTP_IDEMPOTENCY_KEY="key-1")
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert second["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first
    assert Member.objects.count() == 1


def test_replay_keeps_problem_responses(api):
    first = api.post("/api/v1/members", {"email": "bad"}, HTTP_IDEMPOTENCY_KEY="key-2")
    second = api.post("/api/v1/members", {"email": "bad"}, HTTP_IDEMPOTENCY_KEY="key-2")
    assert first.status_code == second.status_code == 400
    assert second["Content-Type"] == "application/problem+json"
    assert first.json() == second.json()


def test_same_key_different_request_is_422(api):
    api.post("/api/v1/members", {"email": "a@example.com"}, HTTP_IDEMPOTENCY_KEY="key-3")
    response = api.post("/api/v1/members", {"email": "b@example.com"}, HTTP_IDEMPOTENCY_KEY="key-3")
    assert response.status_code == 422
    assert response.json()["code"] == "idempotency_key_reused"
    other_path = api.post("/api/v1/labels", {"code": "x", "name": "x"}, HTTP_IDEMPOTENCY_KEY="key-3")
    assert other_path.status_code == 422
    assert Member.objects.count() == 1


def test_same_key_while_first_is_running_is_409(api):
    first = api.post("/api/v1/members", {"email": "c@example.com"}, HTTP_IDEMPOTENCY_KEY="key-5")
    assert first.status_code == 201
    # Put the claim back to "still running", as it is while the first request is served.
    IdempotencyRecord.objects.filter(key="key-5").update(state="in_progress", response_body=None)
    retry = api.post("/api/v1/members", {"email": "c@example.com"}, HTTP_IDEMPOTENCY_KEY="key-5")
    assert retry.status_code == 409
    assert retry.json()["code"] == "idempotency_key_in_use"
    assert Member.objects.count() == 1


def test_stale_in_progress_key_can_be_retried(api, settings):
    from members.models import Label

    api.post("/api/v1/labels", {"code": "a", "name": "A"}, HTTP_IDEMPOTENCY_KEY="key-6")
    # The first attempt "died": its writes rolled back, its claim is left in progress.
    Label.objects.all().delete()
    IdempotencyRecord.objects.filter(key="key-6").update(
        state="in_progress",
        created_at=timezone.now() - timedelta(seconds=settings.IDEMPOTENCY_STALE_SECONDS + 1),
    )
    retry = api.post("/api/v1/labels", {"code": "a", "name": "A"}, HTTP_IDEMPOTENCY_KEY="key-6")
    assert retry.status_code == 201
    assert Label.objects.count() == 1


def test_keys_are_scoped_per_integration(make_api):
    first, second = make_api(), make_api()
    assert (
        first.post("/api/v1/members", {"email": "a@example.com"}, HTTP_IDEMPOTENCY_KEY="shared").status_code
        == 201
    )
    response = second.post("/api/v1/members", {"email": "b@example.com"}, HTTP_IDEMPOTENCY_KEY="shared")
    assert response.status_code == 201 and "Idempotent-Replayed" not in response
    assert Member.objects.count() == 2


def test_expired_key_runs_the_request_again(api):
    api.post("/api/v1/labels", {"code": "a", "name": "A"}, HTTP_IDEMPOTENCY_KEY="key-7")
    IdempotencyRecord.objects.filter(key="key-7").update(expires_at=timezone.now() - timedelta(seconds=1))
    response = api.post("/api/v1/labels", {"code": "a", "name": "A"}, HTTP_IDEMPOTENCY_KEY="key-7")
    assert response.status_code == 409  # ran again: the label exists now
    assert response.json()["code"] == "label_code_taken"


def test_records_are_kept_at_least_24_hours(api):
    api.post("/api/v1/members", {"email": "a@example.com"}, HTTP_IDEMPOTENCY_KEY="key-8")
    record = IdempotencyRecord.objects.get(key="key-8")
    assert record.expires_at - record.created_at >= timedelta(hours=24)


@pytest.mark.parametrize("key", ["", "x" * 256, "non-ascii-é"])
def test_invalid_key_is_400(api, key):
    response = api.post("/api/v1/members", {"email": "a@example.com"}, HTTP_IDEMPOTENCY_KEY=key)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_idempotency_key"
    assert not Member.objects.exists()


def test_server_error_releases_the_key(api, monkeypatch):
    from members import services

    calls = {"n": 0}
    real = services.member_create

    def flaky(**kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("database hiccup")
        return real(**kwargs)

    monkeypatch.setattr(services, "member_create", flaky)
    api.raise_request_exception = False
    first = api.post("/api/v1/members", {"email": "a@example.com"}, HTTP_IDEMPOTENCY_KEY="key-9")
    assert first.status_code == 500
    assert not IdempotencyRecord.objects.filter(key="key-9").exists()
    second = api.post("/api/v1/members", {"email": "a@example.com"}, HTTP_IDEMPOTENCY_KEY="key-9")
    assert second.status_code == 201
    assert Member.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_with_one_key_create_one_member(make_api):
    api = make_api()
    barrier = threading.Barrier(20)
    statuses = []

    def send():
        client = Client()
        barrier.wait()
        try:
            response = client.post(
                "/api/v1/members",
                {"email": "race@example.com"},
                content_type="application/json",
                HTTP_X_API_KEY=api.key,
                HTTP_IDEMPOTENCY_KEY="race",
            )
            statuses.append(response.status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert Member.objects.count() == 1
    assert statuses.count(201) >= 1
    assert set(statuses) <= {201, 409}
