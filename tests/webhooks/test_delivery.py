"""Fan-out, attempts against a real receiver, signatures, retries on a mocked clock,
automatic disabling, SSRF at delivery time, the sweeper and retention."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone
from standardwebhooks import Webhook

from membership_site.actors import Actor
from webhooks import delivery, services
from webhooks.models import Delivery, DeliveryAttempt, Event, EventDispatch, WebhookEndpoint

from .conftest import Reply, deliveries_of

SYSTEM = Actor.system("tests")


def _event(program, type="member.updated", member_id=1, **data) -> Event:
    return services.event_record(program_id=program.pk, member_id=member_id, type=type, data=data)


def _dispatch_and_send(event: Event) -> list[Delivery]:
    delivery.dispatch_events(event_ids=[event.pk])
    sent = list(Delivery.objects.filter(event=event).order_by("id"))
    for item in sent:
        delivery.attempt_delivery(delivery_id=item.pk)
    return sent


def test_dispatch_creates_one_delivery_per_matching_active_endpoint(
    program, other_program, make_endpoint, receiver
):
    everything = make_endpoint(receiver.url).endpoint
    members_only = make_endpoint(receiver.url, event_types=["member.created"]).endpoint
    cards_only = make_endpoint(receiver.url, event_types=["card.issued"]).endpoint
    make_endpoint(receiver.url, is_active=False)
    make_endpoint(receiver.url, program_id=other_program.pk)
    event = _event(program, type="member.created")

    assert delivery.dispatch_events(event_ids=[event.pk]) == 2
    assert {d.endpoint_id for d in Delivery.objects.filter(event=event)} == {everything.pk, members_only.pk}
    assert not Delivery.objects.filter(endpoint=cards_only).exists()
    assert EventDispatch.objects.get(event=event).deliveries == 2
    # Running it again (a duplicate task, the sweeper) creates nothing more.
    assert delivery.dispatch_events(event_ids=[event.pk]) == 0
    assert Delivery.objects.filter(event=event).count() == 2


def test_attempt_posts_the_envelope_signed_for_standardwebhooks(program, make_endpoint, receiver):
    created = make_endpoint(receiver.url)
    event = _event(program, type="member.created", member_id=5, member={"id": 5})
    [sent] = _dispatch_and_send(event)

    [request] = receiver.requests
    assert request.headers["webhook-id"] == event.event_id
    assert request.headers["content-type"] == "application/json"
    body = Webhook(created.secret).verify(request.body, request.headers)
    assert body == {
        "id": event.event_id,
        "type": "member.created",
        "occurred_at": body["occurred_at"],
        "recorded_at": body["recorded_at"],
        "program_id": program.pk,
        "member_id": 5,
        "member_sequence": 1,
        "schema_version": 1,
        "data": {"member": {"id": 5}},
    }
    sent.refresh_from_db()
    assert sent.state == Delivery.State.SUCCEEDED
    [attempt] = sent.attempts.all()
    assert (attempt.number, attempt.status_code, attempt.succeeded, attempt.response_excerpt) == (
        1,
        200,
        True,
        "ok",
    )
    # A second run of the same task sends nothing: it is no longer due.
    assert delivery.attempt_delivery(delivery_id=sent.pk) is None
    assert len(receiver.requests) == 1


def test_attempt_during_rotation_signs_with_both_secrets(program, make_endpoint, receiver):
    created = make_endpoint(receiver.url)
    rotated = services.endpoint_rotate_secret(endpoint=created.endpoint, actor=SYSTEM)
    _dispatch_and_send(_event(program))

    [request] = receiver.requests
    signatures = request.headers["webhook-signature"].split(" ")
    assert len(signatures) == 2 and all(s.startswith("v1,") for s in signatures)
    for secret in (created.secret, rotated.secret):
        Webhook(secret).verify(request.body, request.headers)


def test_attempt_after_the_overlap_signs_with_the_new_secret_only(program, make_endpoint, receiver):
    created = make_endpoint(receiver.url)
    rotated = services.endpoint_rotate_secret(endpoint=created.endpoint, actor=SYSTEM)
    WebhookEndpoint.objects.filter(pk=created.endpoint.pk).update(
        previous_secret_expires_at=timezone.now() - timedelta(seconds=1)
    )
    _dispatch_and_send(_event(program))

    [request] = receiver.requests
    assert len(request.headers["webhook-signature"].split(" ")) == 1
    Webhook(rotated.secret).verify(request.body, request.headers)
    with pytest.raises(Exception, match="No matching signature"):
        Webhook(created.secret).verify(request.body, request.headers)


def test_attempt_does_not_follow_redirects(program, make_endpoint, make_receiver):
    target, redirecting = make_receiver(), make_receiver()
    redirecting.reply(Reply(status=307, headers={"Location": target.url}))
    make_endpoint(redirecting.url)
    [sent] = _dispatch_and_send(_event(program))

    assert target.requests == []
    sent.refresh_from_db()
    assert sent.state == Delivery.State.RETRYING
    assert sent.last_error == "HTTP 307 (redirects are not followed)"


def test_attempt_times_out_after_the_configured_seconds(program, make_endpoint, receiver, settings):
    settings.WEBHOOK_TIMEOUT_SECONDS = 0.3
    receiver.reply(Reply(delay=1.0))
    make_endpoint(receiver.url)
    [sent] = _dispatch_and_send(_event(program))

    attempt = DeliveryAttempt.objects.get(delivery=sent)
    assert attempt.status_code is None
    assert attempt.error == "Timed out after 0.3 s"
    assert attempt.duration_ms < 1000


def test_attempt_connection_error_is_a_failure(program, make_endpoint, receiver):
    make_endpoint(receiver.url)
    receiver.stop()
    [sent] = _dispatch_and_send(_event(program))
    sent.refresh_from_db()
    assert sent.state == Delivery.State.RETRYING
    assert sent.last_error.startswith("ConnectError")


def test_attempt_refuses_an_address_that_became_private(program, make_endpoint, receiver, settings):
    """Allowed when saved (e.g. public then), refused at delivery time: the check runs
    again before every attempt."""
    make_endpoint(receiver.url)
    settings.WEBHOOKS_ALLOW_PRIVATE_URLS = False
    [sent] = _dispatch_and_send(_event(program))

    assert receiver.requests == []
    attempt = DeliveryAttempt.objects.get(delivery=sent)
    assert attempt.error.startswith("Refused: The host '127.0.0.1' resolves to a private")
    sent.refresh_from_db()
    assert sent.state == Delivery.State.RETRYING


def test_retry_schedule_backs_off_with_jitter_then_fails(program, make_endpoint, receiver, clock):
    receiver.reply(500)
    endpoint = make_endpoint(receiver.url).endpoint
    started = clock.now
    [sent] = _dispatch_and_send(_event(program))

    expected = [timedelta(seconds=5), timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=2)]
    expected += [timedelta(hours=5), timedelta(hours=10), timedelta(hours=10)]
    for number, wait in enumerate(expected, start=1):
        sent.refresh_from_db()
        assert sent.state == Delivery.State.RETRYING and sent.attempt_count == number
        delay = sent.next_attempt_at - clock.now
        assert wait * 0.9 <= delay <= wait * 1.1, (number, delay)
        clock.set(sent.next_attempt_at - timedelta(seconds=1))
        assert delivery.attempt_delivery(delivery_id=sent.pk) is None  # not due yet
        clock.set(sent.next_attempt_at)
        assert delivery.attempt_delivery(delivery_id=sent.pk).status_code == 500

    sent.refresh_from_db()
    assert sent.state == Delivery.State.FAILED and sent.attempt_count == 8
    assert sent.next_attempt_at is None
    assert list(sent.attempts.values_list("number", flat=True)) == list(range(1, 9))
    assert len(receiver.requests) == 8
    assert len({r.headers["webhook-id"] for r in receiver.requests}) == 1
    endpoint.refresh_from_db()
    assert endpoint.failing_since == started
    assert endpoint.is_active  # about 28 hours of failures: not yet 5 days


def test_retry_delay_bounds():
    assert delivery.retry_delay(1, rand=lambda: 0.0) == timedelta(seconds=4.5)
    assert delivery.retry_delay(1, rand=lambda: 1.0) == timedelta(seconds=5.5)
    assert delivery.retry_delay(7, rand=lambda: 0.5) == timedelta(hours=10)
    assert delivery.retry_delay(8) is None
    assert delivery.MAX_ATTEMPTS == 8


def test_a_success_ends_the_failure_streak(program, make_endpoint, receiver, clock):
    receiver.reply(500, 200)
    endpoint = make_endpoint(receiver.url).endpoint
    [sent] = _dispatch_and_send(_event(program))
    endpoint.refresh_from_db()
    assert endpoint.failing_since is not None
    clock.advance(seconds=6)
    delivery.attempt_delivery(delivery_id=sent.pk)
    endpoint.refresh_from_db()
    assert endpoint.failing_since is None


def test_a_retry_after_the_members_erasure_carries_the_redacted_data(program, make_endpoint, receiver, clock):
    receiver.reply(500, 200)
    make_endpoint(receiver.url)
    [sent] = _dispatch_and_send(_event(program, member_id=7, email="ana@example.com", points=10))
    assert receiver.requests[0].json["data"] == {"email": "ana@example.com", "points": 10}

    services.events_redact_member(member_id=7, values=["ana@example.com"])
    clock.advance(seconds=6)
    delivery.attempt_delivery(delivery_id=sent.pk)

    retry = receiver.requests[1]
    assert retry.json["data"] == {"email": None, "points": 10}
    assert retry.headers["webhook-id"] == receiver.requests[0].headers["webhook-id"]


def test_410_gone_disables_the_endpoint_at_once(program, make_endpoint, make_receiver):
    gone, other = make_receiver(), make_receiver()
    gone.reply(410)
    disabled = make_endpoint(gone.url).endpoint
    make_endpoint(other.url)
    [first, _] = _dispatch_and_send(_event(program))

    disabled.refresh_from_db()
    first.refresh_from_db()
    assert not disabled.is_active
    assert disabled.disabled_reason == "The receiver answered 410 Gone."
    assert first.state == Delivery.State.FAILED and first.attempt_count == 1
    notice = Event.objects.get(type="webhook.endpoint_disabled")
    assert notice.data["endpoint"]["id"] == disabled.pk and notice.member_id is None


def test_five_days_of_failures_disable_the_endpoint_and_tell_the_others(
    program, make_endpoint, make_receiver, clock
):
    failing, healthy = make_receiver(), make_receiver()
    failing.reply(503)
    broken = make_endpoint(failing.url, event_types=["member.updated"]).endpoint
    other = make_endpoint(healthy.url).endpoint
    started = clock.now
    _dispatch_and_send(_event(program))
    pending = Delivery.objects.get(endpoint=broken)
    assert pending.state == Delivery.State.RETRYING

    clock.advance(days=4, hours=23)
    _dispatch_and_send(_event(program, type="member.updated", member_id=2))
    broken.refresh_from_db()
    assert broken.is_active  # not yet 5 days

    clock.advance(hours=1, seconds=1)
    _dispatch_and_send(_event(program, type="member.updated", member_id=3))
    broken.refresh_from_db()
    assert not broken.is_active
    assert broken.disabled_at == clock.now
    assert broken.disabled_reason.startswith("Every attempt failed for 5 days")
    assert broken.failing_since == started
    # Its open deliveries are closed, so nothing more is sent to it.
    assert not deliveries_of(broken).filter(state__in=Delivery.OPEN_STATES).exists()

    notice = Event.objects.get(type="webhook.endpoint_disabled")
    assert notice.data["endpoint"] == {"id": broken.pk, "url": broken.url, "description": ""}
    healthy.requests.clear()
    [told] = _dispatch_and_send(notice)
    assert told.endpoint_id == other.pk
    assert healthy.requests[0].json["type"] == "webhook.endpoint_disabled"


def test_attempt_on_a_disabled_endpoint_fails_without_sending(program, make_endpoint, receiver):
    endpoint = make_endpoint(receiver.url).endpoint
    event = _event(program)
    delivery.dispatch_events(event_ids=[event.pk])
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(is_active=False)
    [sent] = Delivery.objects.filter(event=event)
    assert delivery.attempt_delivery(delivery_id=sent.pk) is None
    sent.refresh_from_db()
    assert sent.state == Delivery.State.FAILED and receiver.requests == []


def test_sweeper_dispatches_an_event_whose_dispatch_was_lost(
    program, make_endpoint, receiver, clock, django_capture_on_commit_callbacks
):
    """The event committed but the process died before its after-commit enqueue ran (in
    this test the callbacks never run): the sweeper finds it after the grace period."""
    created = make_endpoint(receiver.url)
    event = _event(program)
    assert delivery.sweep().dispatched_events == 0  # within the grace period: maybe in flight

    clock.advance(seconds=121)
    with django_capture_on_commit_callbacks(execute=True):
        result = delivery.sweep()
    assert result.dispatched_events == 1
    [request] = receiver.requests
    assert Webhook(created.secret).verify(request.body, request.headers)["id"] == event.event_id
    assert EventDispatch.objects.get(event=event).dispatched_at is not None
    with django_capture_on_commit_callbacks(execute=True):
        assert delivery.sweep() == delivery.SweepResult(0, 0)
    assert len(receiver.requests) == 1


def test_sweeper_resends_overdue_deliveries_and_lost_attempts(
    program, make_endpoint, receiver, clock, django_capture_on_commit_callbacks
):
    make_endpoint(receiver.url)
    lost_task, lost_attempt = _event(program, member_id=1), _event(program, member_id=2)
    delivery.dispatch_events(event_ids=[lost_task.pk, lost_attempt.pk])
    # A worker claimed this one and died while sending (its lease runs out).
    Delivery.objects.filter(event=lost_attempt).update(
        state=Delivery.State.SENDING, attempt_count=1, lease_until=clock.now + timedelta(seconds=70)
    )
    clock.advance(seconds=121)
    with django_capture_on_commit_callbacks(execute=True):
        result = delivery.sweep()
    assert result.requeued_deliveries == 2
    assert sorted(r.json["id"] for r in receiver.requests) == sorted(
        [lost_task.event_id, lost_attempt.event_id]
    )
    assert set(Delivery.objects.values_list("state", flat=True)) == {Delivery.State.SUCCEEDED}
    assert Delivery.objects.get(event=lost_attempt).attempt_count == 2


def test_sweep_command_reports_its_work(program, make_endpoint, receiver, clock, capsys):
    make_endpoint(receiver.url)
    _event(program)
    clock.advance(minutes=5)
    call_command("webhooks_sweep")
    assert "Dispatched 1 event(s)" in capsys.readouterr().out


def test_events_purge_deletes_old_events_with_their_deliveries(
    program, make_endpoint, receiver, clock, capsys
):
    make_endpoint(receiver.url)
    old = _event(program, member_id=1)
    _dispatch_and_send(old)
    clock.advance(days=31)
    recent = _event(program, member_id=1)

    call_command("events_purge")
    assert "Deleted 1 event(s) older than 30 day(s); 1 kept." in capsys.readouterr().out
    assert list(Event.objects.values_list("pk", flat=True)) == [recent.pk]
    assert not Delivery.objects.filter(event_id=old.pk).exists()
    assert not DeliveryAttempt.objects.exists()
    assert recent.member_sequence == 2  # numbering goes on after a purge
    assert (
        services.event_record(
            program_id=program.pk, member_id=1, type="member.updated", data={}
        ).member_sequence
        == 3
    )
