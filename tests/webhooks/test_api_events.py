"""GET /events (the stream), /events/{id} and /event-types."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, transaction

from membership_site.actors import Actor
from tests.celery_support import wait_for
from webhooks import services

SYSTEM = Actor.system("tests")


def _record(program, type="member.updated", member_id=1, **data):
    return services.event_record(program_id=program.pk, member_id=member_id, type=type, data=data)


def _ids(response):
    return [event["id"] for event in response.json()["results"]]


def test_event_stream_pages_forward_with_the_cursor(api, program):
    events = [_record(program, n=n) for n in range(5)]

    first = api.get("/api/v1/events", {"limit": 2})
    assert first.status_code == 200, first.content
    assert _ids(first) == [e.event_id for e in events[:2]]
    assert first.json()["has_more"] is True
    second = api.get("/api/v1/events", {"limit": 2, "after": first.json()["next_cursor"]})
    assert _ids(second) == [e.event_id for e in events[2:4]]
    last = api.get("/api/v1/events", {"limit": 2, "after": second.json()["next_cursor"]})
    assert _ids(last) == [events[4].event_id]
    assert last.json()["has_more"] is False
    # Nothing new yet: the same cursor comes back, to be used on the next poll.
    empty = api.get("/api/v1/events", {"after": last.json()["next_cursor"]})
    assert empty.json() == {"results": [], "next_cursor": last.json()["next_cursor"], "has_more": False}
    newer = _record(program)
    assert _ids(api.get("/api/v1/events", {"after": last.json()["next_cursor"]})) == [newer.event_id]


def test_event_stream_event_has_the_envelope_and_its_cursor(api, program):
    event = _record(program, type="member.updated", member_id=9, changed=["email"])
    [body] = api.get("/api/v1/events").json()["results"]
    assert body == {
        "id": event.event_id,
        "cursor": body["cursor"],
        "type": "member.updated",
        "occurred_at": body["occurred_at"],
        "recorded_at": body["recorded_at"],
        "program_id": program.pk,
        "member_id": 9,
        "member_sequence": 1,
        "schema_version": 1,
        "data": {"changed": ["email"]},
    }
    assert api.get("/api/v1/events", {"after": body["cursor"]}).json()["results"] == []


def test_event_stream_filters_by_type_list_and_member(api, program):
    created = _record(program, type="member.created", member_id=1)
    _record(program, type="member.updated", member_id=1)
    label = _record(program, type="label.assigned", member_id=2)
    other_member = _record(program, type="member.created", member_id=2)

    both = api.get("/api/v1/events", {"type": "member.created,label.assigned"})
    assert _ids(both) == [created.event_id, label.event_id, other_member.event_id]
    assert _ids(api.get("/api/v1/events", {"member": 2})) == [label.event_id, other_member.event_id]
    assert _ids(api.get("/api/v1/events", {"member": 2, "type": "member.created"})) == [other_member.event_id]


def test_event_stream_never_shows_other_programs_or_test_events(api, program, other_program):
    _record(other_program)
    services.event_record(program_id=program.pk, type="webhook.test", data={})
    mine = _record(program)
    assert _ids(api.get("/api/v1/events")) == [mine.event_id]


@pytest.mark.parametrize(
    ("params", "field", "code"),
    [
        ({"after": "not-a-cursor"}, "after", "invalid_cursor"),
        ({"after": "!!!"}, "after", "invalid_cursor"),
        ({"type": "member.created,nope.nope"}, "type", "unknown_event_type"),
        ({"member": "abc"}, "member", "invalid"),
        ({"limit": "0"}, "limit", "min_value"),
        ({"limit": "100000"}, "limit", "invalid"),
    ],
)
def test_event_stream_bad_parameters_give_400_problems(api, params, field, code):
    response = api.get("/api/v1/events", params)
    assert response.status_code == 400, response.content
    assert response["Content-Type"].startswith("application/problem+json")
    assert response.json()["errors"][0]["field"] == field
    assert response.json()["errors"][0]["code"] == code


def test_event_stream_needs_events_read(make_api, api, program):
    assert api.__class__().get("/api/v1/events").status_code == 401
    response = make_api(["webhooks:read", "events:write"]).get("/api/v1/events")
    assert response.status_code == 403
    assert make_api(["events:read"]).get("/api/v1/events").status_code == 200


def test_event_detail_returns_own_program_events_only(api, program, other_program):
    mine = _record(program)
    theirs = _record(other_program)
    assert api.get(f"/api/v1/events/{mine.event_id}").json()["id"] == mine.event_id
    response = api.get(f"/api/v1/events/{theirs.event_id}")
    assert response.status_code == 404
    assert response.json()["code"] == "event_not_found"
    assert api.get("/api/v1/events/evt_missing").status_code == 404


def test_event_types_lists_the_catalog_with_examples(make_api):
    response = make_api(["events:read"]).get("/api/v1/event-types")
    assert response.status_code == 200
    types = {item["name"]: item for item in response.json()}
    assert {"member.created", "card.issued", "webhook.test", "webhook.endpoint_disabled"} <= set(types)
    assert types["member.created"]["member_scoped"] is True
    assert types["member.created"]["example"]["member"]["number"]
    assert types["webhook.endpoint_disabled"]["member_scoped"] is False
    assert make_api(["webhooks:read"]).get("/api/v1/event-types").status_code == 403


@pytest.mark.django_db(transaction=True)
def test_event_stream_does_not_skip_an_event_that_commits_after_a_later_one(api, program):
    """Transaction A writes an event (lower id) and stays open; B writes one (higher id)
    and commits. A poller must not be handed B's event and a cursor past A's, or A's
    event would be skipped forever when A commits."""
    a_wrote = threading.Event()
    a_may_commit = threading.Event()
    a_events = []

    def transaction_a():
        try:
            with transaction.atomic():
                a_events.append(_record(program, member_id=1))
                a_wrote.set()
                a_may_commit.wait(30)
        finally:
            connection.close()

    thread = threading.Thread(target=transaction_a)
    thread.start()
    try:
        assert a_wrote.wait(30)
        b_event = _record(program, member_id=2)  # autocommit: committed now
        assert b_event.pk > a_events[0].pk

        while_a_open = api.get("/api/v1/events")
        assert while_a_open.status_code == 200
        assert _ids(while_a_open) == []  # neither: B's is held back behind the open A
        cursor = while_a_open.json()["next_cursor"]
    finally:
        a_may_commit.set()
        thread.join(30)

    # Other test processes' transactions on the same server can hold the horizon back a
    # little longer; wait for it, then both events come, A's first.
    def both():
        ids = _ids(api.get("/api/v1/events", {"after": cursor} if cursor else {}))
        return ids if len(ids) == 2 else None

    assert wait_for(both, timeout=30) == [a_events[0].event_id, b_event.event_id]


# The types the events issue asks for at least; each app registers its own.
REQUIRED_TYPES = [
    "member.created",
    "member.updated",
    "member.status_changed",
    "member.erased",
    "card.issued",
    "card.replaced",
    "label.assigned",
    "label.removed",
    "points.earned",
    "points.redeemed",
    "points.adjusted",
    "points.reversed",
    "points.transferred",
    "points.expired",
    "points.expiring",
    "hold.created",
    "hold.captured",
    "hold.released",
    "tier.changed",
    "reward.redeemed",
    "voucher.issued",
    "voucher.used",
    "job.finished",
    "webhook.test",
    "webhook.endpoint_disabled",
]


def test_event_catalog_has_every_required_type_with_an_example_in_the_api_docs_and_the_guide(client, db):
    from pathlib import Path

    from webhooks import catalog

    registered = {event_type.name: event_type for event_type in catalog.all_types()}
    assert set(REQUIRED_TYPES) <= set(registered)
    assert all(event_type.example and event_type.description for event_type in registered.values())

    spec = client.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    detail = spec["paths"]["/api/v1/events/{event_id}"]["get"]["responses"]["200"]["content"]
    examples = detail["application/json"]["examples"]
    assert set(examples) == set(registered)
    assert examples["member.created"]["value"]["data"] == registered["member.created"].example
    stream = spec["paths"]["/api/v1/events"]["get"]["description"]
    assert all(f"`{name}`" in stream for name in registered)

    guide = (Path(__file__).resolve().parents[2] / "docs" / "webhooks.md").read_text()
    missing = [name for name in registered if f"| `{name}` |" not in guide]
    assert missing == [], "docs/webhooks.md's event catalog lacks these types"
