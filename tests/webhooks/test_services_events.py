"""Recording events: same transaction as the change, per-member sequences, bulk writes."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from members import services as member_services
from membership_site.actors import Actor
from webhooks import services
from webhooks.models import Event, EventDispatch, MemberEventCounter

SYSTEM = Actor.system("tests")


def test_event_record_rolled_back_change_leaves_no_event(program):
    with pytest.raises(RuntimeError), transaction.atomic():
        member_services.member_create(program=program, actor=SYSTEM, email="gone@example.com")
        assert Event.objects.filter(type="member.created").count() == 1
        raise RuntimeError("the caller fails after the change")
    assert not Event.objects.exists()
    assert not EventDispatch.objects.exists()
    assert not MemberEventCounter.objects.exists()


def _visible_to_another_connection(event_id: int) -> bool:
    seen: list[bool] = []

    def look():
        try:
            seen.append(Event.objects.filter(pk=event_id).exists())
        finally:
            connection.close()

    thread = threading.Thread(target=look)
    thread.start()
    thread.join(10)
    return seen == [True]


@pytest.fixture
def enqueued(monkeypatch):
    """Spies on the dispatch task's enqueue: at each call, whether the caller was still
    inside a transaction and whether its events were already committed (visible to
    another connection). Nothing is sent."""
    from webhooks import tasks

    calls: list[dict] = []

    def spy(args, **options):
        [event_ids] = args
        calls.append(
            {
                "event_ids": list(event_ids),
                "queue": options.get("queue"),
                "in_transaction": connection.in_atomic_block,
                "committed": all(_visible_to_another_connection(pk) for pk in event_ids),
            }
        )

    monkeypatch.setattr(tasks.dispatch_events, "apply_async", spy)
    return calls


@pytest.mark.django_db(transaction=True)
def test_event_record_dispatch_is_enqueued_once_after_the_commit_never_inside(program, enqueued):
    with transaction.atomic():
        member = member_services.member_create(program=program, actor=SYSTEM, email="late@example.com")
        services.event_record(program_id=program.pk, member_id=member.pk, type="member.updated", data={})
        assert enqueued == []  # not while the request's transaction is open
    events = list(Event.objects.filter(member_id=member.pk).order_by("id"))
    assert [call["event_ids"] for call in enqueued] == [[events[0].pk], [events[1].pk]]
    assert all(call["queue"] == "webhooks" for call in enqueued)
    assert all(not call["in_transaction"] and call["committed"] for call in enqueued)

    with pytest.raises(RuntimeError), transaction.atomic():
        services.event_record(program_id=program.pk, member_id=member.pk, type="member.updated", data={})
        raise RuntimeError("rolled back")
    assert len(enqueued) == 2  # a rolled-back event is never dispatched


@pytest.mark.django_db(transaction=True)
def test_event_record_dispatch_runs_after_commit_in_process_without_a_broker(program, settings):
    # Eager mode (no CELERY_BROKER_URL, as `make run`): the dispatch task itself runs in the
    # on_commit callback and marks the dispatch record done.
    from membership_site.celery import app

    assert app.conf.task_always_eager
    member = member_services.member_create(program=program, actor=SYSTEM, email="eager@example.com")
    dispatch = EventDispatch.objects.get(event__member_id=member.pk)
    assert dispatch.dispatched_at is not None and dispatch.deliveries == 0


@pytest.mark.django_db(transaction=True)
def test_event_record_committed_change_has_exactly_one_event_and_dispatch_record(program):
    member = member_services.member_create(program=program, actor=SYSTEM, email="kept@example.com")

    events = list(Event.objects.filter(member_id=member.pk))
    assert [(e.type, e.member_sequence, e.program_id) for e in events] == [("member.created", 1, program.pk)]
    assert events[0].data["member"]["email"] == "kept@example.com"
    assert events[0].event_id.startswith("evt_")
    assert events[0].txid > 0  # the PostgreSQL transaction that wrote it
    # Its dispatch record was committed with it (the sweeper's safety net).
    assert EventDispatch.objects.filter(event=events[0]).count() == 1


def test_event_record_refuses_types_not_in_the_catalog(program):
    with pytest.raises(ValueError, match="not in the catalog"):
        services.event_record(program_id=program.pk, type="member.creatd", data={})
    assert not Event.objects.exists()


def test_event_record_numbers_each_members_events_without_gaps(program):
    for _ in range(3):
        services.event_record(program_id=program.pk, member_id=10, type="member.updated", data={})
    services.event_record(program_id=program.pk, member_id=11, type="member.updated", data={})
    program_event = services.event_record(program_id=program.pk, type="webhook.endpoint_disabled", data={})

    assert list(Event.objects.filter(member_id=10).values_list("member_sequence", flat=True)) == [1, 2, 3]
    assert list(Event.objects.filter(member_id=11).values_list("member_sequence", flat=True)) == [1]
    assert program_event.member_sequence is None


def test_event_record_makes_data_json_like_the_api(program):
    occurred_at = datetime(2026, 3, 1, 10, 15, 0, 123456, tzinfo=UTC)
    event = services.event_record(
        program_id=program.pk,
        member_id=1,
        type="member.updated",
        data={"amount": Decimal("12.50"), "at": occurred_at},
        occurred_at=occurred_at,
    )
    assert event.data == {"amount": "12.50", "at": "2026-03-01T10:15:00.123Z"}
    event.refresh_from_db()
    assert event.data == {"amount": "12.50", "at": "2026-03-01T10:15:00.123Z"}
    assert event.occurred_at == occurred_at  # to the microsecond


def test_event_record_many_allocates_sequences_set_based_in_input_order(
    program, django_assert_max_num_queries
):
    services.event_record(program_id=program.pk, member_id=1, type="member.updated", data={})
    inputs = [
        services.EventInput(program_id=program.pk, type="member.created", data={"n": n}, member_id=1 + n % 3)
        for n in range(300)
    ]
    # A fixed number of statements whatever the size: counters, events, dispatch rows.
    with django_assert_max_num_queries(5):
        created = services.event_record_many(events=inputs)

    assert len(created) == 300 and all(event.pk and event.txid for event in created)
    for member_id in (1, 2, 3):
        sequences = list(
            Event.objects.filter(member_id=member_id).order_by("id").values_list("member_sequence", flat=True)
        )
        assert sequences == list(range(1, len(sequences) + 1))
    assert len(Event.objects.filter(member_id=1)) == 101  # 1 earlier + 100 of the batch
    assert EventDispatch.objects.filter(dispatched_at__isnull=True).count() == 301


def test_event_record_many_accepts_mappings_and_nothing(program):
    assert services.event_record_many(events=[]) == []
    [event] = services.event_record_many(
        events=[{"program_id": program.pk, "type": "member.created", "data": {}, "member_id": 5}]
    )
    assert event.member_sequence == 1


@pytest.mark.django_db(transaction=True)
def test_event_record_concurrent_writers_on_one_member_get_sequences_in_commit_order(program):
    """Real threads, real transactions: each holds the member's counter until it commits,
    so the next writer's number is given only after the previous one finished its work."""
    writers = 6
    got_sequence: dict[int, float] = {}
    work_done: dict[int, float] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(writers)

    def write(index: int) -> None:
        try:
            start.wait()
            with transaction.atomic():
                event = services.event_record(
                    program_id=program.pk, member_id=77, type="member.updated", data={"writer": index}
                )
                got_sequence[event.member_sequence] = time.monotonic()
                time.sleep(0.05)  # a slow service: other writers are waiting meanwhile
                # The last moment before COMMIT (stamping after it would race the next writer).
                work_done[event.member_sequence] = time.monotonic()
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert not errors
    assert sorted(got_sequence) == list(range(1, writers + 1))
    for sequence in range(2, writers + 1):
        # Number n+1 was handed out only once number n's transaction had done its work and
        # was committing: the counter row stays locked until then.
        assert got_sequence[sequence] >= work_done[sequence - 1]
    stored = Event.objects.filter(member_id=77).order_by("member_sequence")
    assert [e.member_sequence for e in stored] == list(range(1, writers + 1))
    assert MemberEventCounter.objects.get(member_id=77).last_sequence == writers


def test_event_record_many_statements_do_not_grow_with_the_batch(program):
    """On PostgreSQL one statement writes counters, events and dispatch rows, with the
    columns as arrays: 1 event or 500 cost the same number of round trips."""

    def statements(size: int) -> int:
        events = [
            services.EventInput(program_id=program.pk, type="member.updated", data={"n": n}, member_id=n % 7)
            for n in range(size)
        ]
        with CaptureQueriesContext(connection) as captured:
            services.event_record_many(events=events)
        return len([query for query in captured.captured_queries if "SAVEPOINT" not in query["sql"]])

    assert statements(1) == statements(500) == 1


def test_event_record_many_gives_ids_and_sequences_in_input_order(program):
    inputs = [
        services.EventInput(program_id=program.pk, type="member.updated", data={"n": n}, member_id=member_id)
        for n, member_id in enumerate([9, 3, 9, None, 3, 9])
    ]
    created = services.event_record_many(events=inputs)

    stored = list(Event.objects.order_by("id").values_list("data", "member_id", "member_sequence"))
    assert stored == [
        ({"n": 0}, 9, 1),
        ({"n": 1}, 3, 1),
        ({"n": 2}, 9, 2),
        ({"n": 3}, None, None),
        ({"n": 4}, 3, 2),
        ({"n": 5}, 9, 3),
    ]
    assert [(event.data, event.member_sequence) for event in created] == [(d, s) for d, _m, s in stored]
    assert [event.pk for event in created] == sorted(event.pk for event in created)
    assert EventDispatch.objects.filter(event_id__in=[event.pk for event in created]).count() == 6


@pytest.mark.django_db(transaction=True)
def test_event_record_many_crossing_bulk_writers_neither_deadlock_nor_leave_gaps(program):
    """Two imports writing events for the same members, listed in opposite orders, at the
    same time: counters are locked in member id order, so one waits for the other."""
    members = list(range(1000, 1040))
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def write(order: list[int]) -> None:
        try:
            start.wait()
            with transaction.atomic():
                services.event_record_many(
                    events=[
                        services.EventInput(
                            program_id=program.pk, type="member.updated", data={}, member_id=m
                        )
                        for m in order
                    ]
                )
                time.sleep(0.1)
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=write, args=(order,)) for order in (members, members[::-1])]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert not errors
    for member_id in members:
        assert sorted(
            Event.objects.filter(member_id=member_id).values_list("member_sequence", flat=True)
        ) == [
            1,
            2,
        ]
    assert set(
        MemberEventCounter.objects.filter(member_id__in=members).values_list("last_sequence", flat=True)
    ) == {2}


def test_events_redact_member_nulls_matching_strings_of_that_member_only(program):
    data = {
        "member": {"email": "Ana@Example.com", "first_name": "Ana", "points": 120, "labels": ["vip"]},
        "cards": [{"number": "4242"}, {"number": "9999"}],
        "reason": "Ana asked",
    }
    mine = services.event_record(program_id=program.pk, member_id=5, type="member.updated", data=data)
    untouched = services.event_record(
        program_id=program.pk, member_id=5, type="member.updated", data={"a": 1}
    )
    theirs = services.event_record(program_id=program.pk, member_id=6, type="member.updated", data=data)

    changed = services.events_redact_member(member_id=5, values=["ana@example.com", "Ana", "4242", "", " "])

    assert changed == 1
    mine.refresh_from_db()
    assert mine.data == {
        "member": {"email": None, "first_name": None, "points": 120, "labels": ["vip"]},
        "cards": [{"number": None}, {"number": "9999"}],
        "reason": "Ana asked",  # whole values only
    }
    assert mine.member_sequence == 1
    untouched.refresh_from_db()
    theirs.refresh_from_db()
    assert untouched.data == {"a": 1} and theirs.data == data
    assert services.events_redact_member(member_id=5, values=[]) == 0
