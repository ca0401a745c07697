"""End to end on a real Celery worker (Redis broker, the test database): a committed
member change reaches a receiver that verifies the signature; retries; a lost dispatch
recovered by the sweeper."""

from __future__ import annotations

import pytest
import redis

from members import services as member_services
from membership_site.actors import Actor
from tests.celery_support import broker_url, wait_for
from webhooks import services, tasks
from webhooks.models import Delivery, EventDispatch

from .conftest import Receiver

SYSTEM = Actor.system("tests")

pytestmark = [
    pytest.mark.celery_queues("webhooks"),
    pytest.mark.celery_env(WEBHOOKS_ALLOW_PRIVATE_URLS="true", WEBHOOK_SWEEP_GRACE_SECONDS="0"),
]


@pytest.fixture
def signed_receiver():
    servers: list[Receiver] = []

    def _make(secret: str) -> Receiver:
        server = Receiver(secret).start()
        servers.append(server)
        return server

    yield _make
    for server in servers:
        server.stop()


def _endpoint(program, local_urls):
    # Created with a placeholder URL first: the receiver needs the secret to verify.
    created = services.endpoint_create(program_id=program.pk, url="http://127.0.0.1:9/", actor=SYSTEM)
    return created


def test_member_change_is_delivered_signed_by_the_real_worker(
    program, local_urls, signed_receiver, celery_worker
):
    created = _endpoint(program, local_urls)
    receiver = signed_receiver(created.secret)
    services.endpoint_update(endpoint=created.endpoint, actor=SYSTEM, url=receiver.url)

    member = member_services.member_create(program=program, actor=SYSTEM, email="e2e@example.com")

    delivery = wait_for(
        lambda: Delivery.objects.filter(state=Delivery.State.SUCCEEDED).first(),
        message=celery_worker.output(),
    )
    assert receiver.rejected == []
    [request] = receiver.requests
    assert request.json["type"] == "member.created"
    assert request.json["member_id"] == member.pk
    assert request.json["data"]["member"]["email"] == "e2e@example.com"
    assert request.headers["webhook-id"] == delivery.event.event_id


def test_failed_attempt_is_retried_by_the_worker_with_the_same_webhook_id(
    program, local_urls, signed_receiver, celery_worker
):
    created = _endpoint(program, local_urls)
    receiver = signed_receiver(created.secret)
    receiver.reply(500, 200)
    services.endpoint_update(endpoint=created.endpoint, actor=SYSTEM, url=receiver.url)

    services.event_record(program_id=program.pk, member_id=1, type="member.updated", data={})

    # The first retry comes about 5 seconds later (a countdown task on the queue).
    delivery = wait_for(
        lambda: Delivery.objects.filter(state=Delivery.State.SUCCEEDED).first(),
        timeout=30,
        message=celery_worker.output(),
    )
    assert delivery.attempt_count == 2
    first, second = receiver.requests
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert receiver.rejected == []


def test_sweeper_on_the_worker_recovers_a_lost_dispatch(program, local_urls, signed_receiver, celery_worker):
    created = _endpoint(program, local_urls)
    receiver = signed_receiver(created.secret)
    services.endpoint_update(endpoint=created.endpoint, actor=SYSTEM, url=receiver.url)

    # Crash: the worker is down when the event commits and its queued dispatch is lost.
    celery_worker.kill()
    event = services.event_record(program_id=program.pk, member_id=1, type="member.updated", data={})
    client = redis.Redis.from_url(broker_url())
    assert client.delete(f"{celery_worker.key_prefix}webhooks") == 1
    celery_worker.start()
    assert EventDispatch.objects.get(event=event).dispatched_at is None

    tasks.sweep.apply_async(queue=tasks.QUEUE)

    wait_for(lambda: receiver.requests, message=celery_worker.output())
    assert receiver.requests[0].json["id"] == event.event_id
    wait_for(lambda: Delivery.objects.filter(event=event, state=Delivery.State.SUCCEEDED).exists())
