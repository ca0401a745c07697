"""The ``members`` import kind through the job engine (run in-process as a worker does)."""

from __future__ import annotations

import json

import pytest
from django.db import connection

from jobs import engine, services
from jobs.errors import JobFinishedError
from jobs.models import Job, JobChunk
from members import bulk, hooks
from members import services as member_services
from members.events import member_payload
from members.models import Card, Label, Member, MemberLabel
from tests.jobs.conftest import csv_bytes, outcomes, report
from webhooks.models import Event

GOOD = [
    {"number": "1000001", "email": "Ana@Example.com", "first_name": "Ana", "phone": "06 12 34 56 78"},
    {"number": "1000002", "email": "bob@example.com", "first_name": "Bob", "birth_date": "1990-04-21"},
    {
        "number": "1000003",
        "email": "cy@example.com",
        "first_name": "Cy",
        "labels": "vip",
        "card": "9000 0000 0001",
    },
    {
        "number": "1000004",
        "email": "di@example.com",
        "first_name": "Di",
        "country": "fr",
        "status": "pending",
    },
]
BAD = [
    {"number": "12", "email": "x@example.com"},  # number too short
    {"number": "1000011", "email": "not-an-email"},
    {"number": "1000012", "email": "y@example.com", "labels": "nope"},
    {"number": "1000013", "email": "z@example.com", "birth_date": "21/04/1990"},
    {"number": "", "email": "w@example.com"},  # upsert needs the number
]


@pytest.fixture
def vip(program, system_actor):
    return member_services.label_create(program=program, code="vip", name="VIP", actor=system_actor)


@pytest.fixture
def created_batches():
    batches = []

    def receiver(*, members, actor):
        batches.append([member.pk for member in members])

    hooks.members_created.register(receiver)
    yield batches
    hooks.members_created._receivers.remove(receiver)


def test_members_import_good_rows_create_members_events_history_and_hook_per_chunk(
    import_and_run, program, vip, created_batches
):
    job = import_and_run("members", csv_bytes(GOOD))

    assert job.status == Job.Status.SUCCEEDED
    assert job.counts == {"created": 4, "updated": 0, "unchanged": 0, "failed": 0}
    assert (job.total_rows, job.processed_rows, job.percent) == (4, 4, 100)
    ana = Member.objects.get(program=program, number="1000001")
    assert (ana.email, ana.phone, ana.first_name) == ("ana@example.com", "+33612345678", "Ana")
    cy = Member.objects.get(program=program, number="1000003")
    assert list(cy.labels.values_list("code", flat=True)) == ["vip"]
    assert Card.objects.get(member=cy).number == "900000000001"
    assert Member.objects.get(program=program, number="1000004").status == "pending"
    # One hook call per chunk (chunk size 3 in these tests), with the list.
    assert [len(batch) for batch in created_batches] == [3, 1]
    events = Event.objects.filter(program_id=program.pk, type="member.created").order_by("id")
    assert [event.data["member"]["number"] for event in events] == [
        "1000001",
        "1000002",
        "1000003",
        "1000004",
    ]
    # The bulk path writes the same payload the per-row service would.
    assert events[2].data["member"] == json.loads(json.dumps(member_payload(cy)))
    assert ana.history.filter(history_type="+").count() == 1
    assert [line["object_ref"] for line in report(job)] == ["1000001", "1000002", "1000003", "1000004"]


def test_members_import_bad_rows_fail_with_codes_and_write_nothing(import_and_run, program, vip):
    job = import_and_run("members", csv_bytes(BAD))

    assert job.status == Job.Status.FAILED
    assert job.counts["failed"] == 5
    assert outcomes(job) == [
        (1, "failed", "bad_format"),
        (2, "failed", "bad_format"),
        (3, "failed", "unknown_label"),
        (4, "failed", "bad_format"),
        (5, "failed", "missing_field"),
    ]
    lines = report(job)
    assert lines[1]["error_fields"] == "email"
    assert "not a valid e-mail" in lines[1]["error_messages"]
    assert not Member.objects.filter(program=program).exists()
    assert not Event.objects.filter(program_id=program.pk, type="member.created").exists()


def test_members_import_mixed_rows_good_ones_go_on(import_and_run, program, vip):
    rows = [GOOD[0], BAD[1], GOOD[1], BAD[2], GOOD[2]]
    job = import_and_run("members", csv_bytes(rows))

    assert job.status == Job.Status.PARTIALLY_SUCCEEDED
    assert [outcome for _row, outcome, _codes in outcomes(job)] == [
        "created",
        "failed",
        "created",
        "failed",
        "created",
    ]
    assert set(Member.objects.filter(program=program).values_list("number", flat=True)) == {
        "1000001",
        "1000002",
        "1000003",
    }


def test_members_import_twice_second_run_is_all_unchanged(import_and_run, program, vip):
    data = csv_bytes(GOOD)
    import_and_run("members", data)
    events_before = Event.objects.filter(program_id=program.pk).count()

    second = import_and_run("members", data)

    assert second.counts == {"created": 0, "updated": 0, "unchanged": 4, "failed": 0}
    assert Member.objects.filter(program=program).count() == 4
    assert Card.objects.filter(program=program).count() == 1
    assert Event.objects.filter(program_id=program.pk).count() == events_before + 1  # job.finished only


def test_members_import_update_by_email_changes_only_given_fields(import_and_run, program, make_member, vip):
    member = make_member(email="ana@example.com", first_name="Ana", last_name="Lopez", city="Paris")
    data = csv_bytes([{"email": "ANA@example.com", "city": "Lyon", "last_name": "", "labels": "vip"}])

    job = import_and_run("members", data, match="email", action="update")

    assert outcomes(job) == [(1, "updated", "")]
    member.refresh_from_db()
    assert (member.city, member.last_name) == ("Lyon", "Lopez")  # empty cells leave values alone
    assert list(member.labels.values_list("code", flat=True)) == ["vip"]
    updated = Event.objects.get(member_id=member.pk, type="member.updated")
    assert updated.data["changed"] == ["city"]
    assert updated.data["member"]["labels"] == ["vip"]
    assert Event.objects.filter(member_id=member.pk, type="label.assigned").count() == 1


def test_members_import_updates_run_the_members_updated_hook_like_member_update(
    import_and_run, program, make_member, vip, system_actor
):
    """Bulk updates run ``members_updated`` (the list form of ``member_updated``, which
    ``member_update`` runs) once per chunk with each member whose profile changed and the
    changed fields; label-only and unchanged rows are not in it. The points app's receiver
    gives the profile-completion bonus."""
    from points.earning import config
    from points.models import Account, BonusAward

    config.earning_settings_update(
        program=program,
        profile_completion_bonus=50,
        profile_completion_fields=["phone", "birth_date"],
        actor=system_actor,
    )
    ana = make_member(number="1000001", phone="+33611111111")
    bob = make_member(number="1000002")
    cy = make_member(number="1000003", city="Paris")
    calls = []

    def receiver(*, updates, actor):
        calls.append([(member.number, changed, member.birth_date) for member, changed in updates])

    hooks.members_updated.register(receiver)
    try:
        job = import_and_run(
            "members",
            csv_bytes(
                [
                    {"number": "1000001", "birth_date": "1990-04-21", "city": "Lyon"},  # completes
                    {"number": "1000002", "birth_date": "1991-01-02"},  # phone still missing
                    {"number": "1000003", "city": "Paris", "labels": "vip"},  # labels only
                ]
            ),
        )
    finally:
        hooks.members_updated._receivers.remove(receiver)

    assert outcomes(job) == [(1, "updated", ""), (2, "updated", ""), (3, "updated", "")]
    (call,) = calls  # one chunk
    assert [(number, changed) for number, changed, _birth in call] == [
        ("1000001", ["birth_date", "city"]),
        ("1000002", ["birth_date"]),
    ]
    assert all(birth is not None for _number, _changed, birth in call)  # saved values seen
    assert list(BonusAward.objects.values_list("member_id", "kind")) == [(ana.pk, "profile")]
    assert Account.objects.get(member=ana).available == 50
    assert not Account.objects.filter(member__in=[bob, cy], available__gt=0).exists()
    # The bonus's points.earned comes before member.updated, as with member_update.
    types = list(Event.objects.filter(member_id=ana.pk).order_by("id").values_list("type", flat=True))
    assert types[-2:] == ["points.earned", "member.updated"]

    again = import_and_run("members", csv_bytes([{"number": "1000001", "birth_date": "1990-04-21"}]))
    assert outcomes(again) == [(1, "unchanged", "")]
    assert BonusAward.objects.count() == 1


def test_members_import_action_rules(import_and_run, program, make_member):
    make_member(email="ana@example.com", external_ref="crm-1")
    rows = [
        {"external_ref": "crm-1", "email": "ana@example.com"},
        {"external_ref": "crm-2", "email": "new@example.com"},
    ]
    create = import_and_run("members", csv_bytes(rows), match="external_ref", action="create")
    assert outcomes(create) == [(1, "failed", "duplicate_member"), (2, "created", "")]

    update = import_and_run(
        "members",
        csv_bytes([{"external_ref": "crm-404", "city": "Lyon"}]),
        match="external_ref",
        action="update",
    )
    assert outcomes(update) == [(1, "failed", "unknown_member")]


def test_members_import_unique_clash_and_number_change_fail_the_row(import_and_run, program, make_member):
    make_member(number="2000001", email="taken@example.com", phone="+33699999999")
    rows = [
        {"number": "2000002", "email": "taken@example.com"},
        {"number": "2000003", "phone": "06 99 99 99 99"},
        {"number": "2000004", "email": "fine@example.com"},
    ]
    job = import_and_run("members", csv_bytes(rows))
    assert outcomes(job) == [
        (1, "failed", "duplicate_member"),
        (2, "failed", "duplicate_member"),
        (3, "created", ""),
    ]
    assert report(job)[1]["error_fields"] == "phone"

    moved = import_and_run(
        "members", csv_bytes([{"email": "taken@example.com", "number": "2000009"}]), match="email"
    )
    assert outcomes(moved) == [(1, "failed", "number_mismatch")]


def test_members_import_matches_and_checks_values_with_quotes_and_backslashes(import_and_run, program):
    """Keys travel to PostgreSQL as one array literal: quotes, backslashes, commas and
    braces in a value must come back as themselves."""
    awkward = ['crm "7", {x}', "crm\\8", "crm,9 }", "NULL", "  spaced  "]
    with connection.cursor() as cursor:
        cursor.execute("SELECT %s::text[]", [bulk.pg_array(awkward)])
        assert cursor.fetchone()[0] == awkward
    awkward = awkward[:3]
    # Written by COPY (CSV): quotes, a comma, a newline, a backslash, PostgreSQL's text NULL marker.
    name = 'Ana "A.", line\nbreak \\N'
    created = import_and_run(
        "members",
        csv_bytes([{"external_ref": ref, "first_name": name} for ref in awkward]),
        match="external_ref",
    )
    assert [outcome for _row, outcome, _codes in outcomes(created)] == ["created"] * 3
    assert sorted(Member.objects.values_list("external_ref", flat=True)) == sorted(awkward)
    assert set(Member.objects.values_list("first_name", "city", "birth_date")) == {(name, "", None)}

    again = import_and_run(
        "members",
        csv_bytes([{"external_ref": ref, "first_name": "B"} for ref in awkward]),
        match="external_ref",
    )
    assert [outcome for _row, outcome, _codes in outcomes(again)] == ["updated"] * 3
    clash = import_and_run(
        "members",
        csv_bytes([{"external_ref": awkward[1], "first_name": "C"}]),
        match="number",
        action="create",
    )
    assert outcomes(clash) == [(1, "failed", "duplicate_member")]
    assert Member.objects.count() == 3


def test_members_import_duplicate_in_file_fails_later_rows(import_and_run, program):
    rows = [
        {"number": "1000001", "email": "a@example.com"},
        {"number": "1000002", "email": "A@example.com "},
        {"number": "1000001", "email": "c@example.com"},
    ]
    job = import_and_run("members", csv_bytes(rows))
    assert outcomes(job) == [
        (1, "created", ""),
        (2, "failed", "duplicate_in_file"),
        (3, "failed", "duplicate_in_file"),
    ]


def test_members_import_terminated_member_is_not_updated(import_and_run, program, make_member, system_actor):
    member = make_member(number="3000001")
    member_services.member_change_status(
        member=member, to_status="terminated", reason="left", actor=system_actor
    )
    job = import_and_run("members", csv_bytes([{"number": "3000001", "city": "Lyon"}]))
    assert outcomes(job) == [(1, "failed", "member_terminated")]


def test_members_import_dry_run_reports_and_changes_nothing(import_and_run, program, vip):
    job = import_and_run("members", csv_bytes([*GOOD, BAD[1]]), dry_run=True)

    assert job.dry_run
    assert job.status == Job.Status.PARTIALLY_SUCCEEDED
    assert job.counts == {"created": 4, "updated": 0, "unchanged": 0, "failed": 1}
    assert [outcome for _row, outcome, _codes in outcomes(job)] == ["created"] * 4 + ["failed"]
    assert not Member.objects.filter(program=program).exists()
    assert not Card.objects.exists()
    assert not MemberLabel.objects.exists()
    assert list(Event.objects.filter(program_id=program.pk).values_list("type", flat=True)) == [
        "job.finished"
    ]


def test_members_import_all_or_nothing_rolls_back_when_a_row_fails(import_and_run, program, vip):
    job = import_and_run("members", csv_bytes([*GOOD, BAD[1]]), mode="all_or_nothing")

    assert job.status == Job.Status.FAILED
    assert job.counts == {"created": 0, "updated": 0, "unchanged": 0, "failed": 1}
    assert [outcome for _row, outcome, _codes in outcomes(job)] == ["not_applied"] * 4 + ["failed"]
    assert all(line["object_id"] == "" for line in report(job))
    assert not Member.objects.filter(program=program).exists()


def test_members_import_all_or_nothing_applies_everything_when_all_rows_are_valid(
    import_and_run, program, vip
):
    job = import_and_run("members", csv_bytes(GOOD), mode="all_or_nothing")

    assert job.status == Job.Status.SUCCEEDED
    assert job.phase == Job.Phase.APPLY
    assert job.counts["created"] == 4
    assert Member.objects.filter(program=program).count() == 4
    assert JobChunk.objects.filter(job=job, phase=Job.Phase.APPLY).count() == 2


@pytest.mark.parametrize("delimiter", [",", ";"])
@pytest.mark.parametrize("bom", [False, True])
def test_members_import_reads_bom_semicolon_and_any_header_case(import_and_run, program, delimiter, bom):
    data = csv_bytes(
        [{"Number": "1000001", "EMAIL": "ana@example.com", "First_Name": "Ana; Maria"}],
        header=["Number", "EMAIL", "First_Name"],
        delimiter=delimiter,
        bom=bom,
    )
    job = import_and_run("members", data)
    assert outcomes(job) == [(1, "created", "")]
    member = Member.objects.get(program=program)
    assert (member.number, member.email, member.first_name) == ("1000001", "ana@example.com", "Ana; Maria")


def test_members_import_json_array(import_and_run, program, vip):
    data = json.dumps(
        [
            {"number": 1000001, "Email": "ana@example.com", "labels": ["vip"]},
            {"number": "1000002", "email": None, "first_name": "Bob"},
            {"number": "1000003", "email": {"nested": True}},
        ]
    ).encode()
    job = import_and_run("members", data)
    assert job.input_format == "json"
    assert outcomes(job) == [(1, "created", ""), (2, "created", ""), (3, "failed", "bad_format")]
    assert Member.objects.get(number="1000001").labels.get().code == "vip"


def test_members_import_row_with_text_postgresql_cannot_store_fails_alone(import_and_run, program):
    # A NUL in a CSV cell (or a lone surrogate / NUL escape in JSON) failed the whole job with
    # internal_error when COPY reached the database; now only its row fails.
    csv_data = b"number,email,first_name\n1000001,ana@example.com,A\x00na\n1000002,bob@example.com,Bob\n"
    job = import_and_run("members", csv_data)
    assert outcomes(job) == [(1, "failed", "bad_format"), (2, "created", "")]
    assert report(job)[0]["error_messages"] == "Row 1: a cell contains a NUL character (\\u0000)."
    json_data = (
        b'[{"number": "1000003", "first_name": "C\\ud800"}, {"number": "1000004", "email": "a\\u0000@x.io"},'
        b' {"number": "1000005", "first_name": "Eve"}]'
    )
    job = import_and_run("members", json_data)
    assert outcomes(job) == [(1, "failed", "bad_format"), (2, "failed", "bad_format"), (3, "created", "")]
    assert sorted(Member.objects.filter(program=program).values_list("number", flat=True)) == [
        "1000002",
        "1000005",
    ]


def test_job_cancel_of_a_queued_job_is_immediate(start_import, run_job, program, system_actor):
    job = start_import("members", csv_bytes(GOOD))
    job = services.job_cancel(job=job, actor=system_actor)
    assert job.status == Job.Status.CANCELLED
    assert job.finished_at is not None
    assert run_job(job).status == Job.Status.CANCELLED  # the queued message does nothing
    assert not Member.objects.exists()
    finished = Event.objects.get(program_id=program.pk, type="job.finished")
    assert finished.data["job"]["status"] == "cancelled"


def test_job_cancel_of_a_running_job_stops_between_chunks(start_import, program, vip, system_actor):
    job = start_import("members", csv_bytes(GOOD))

    def cancel_after_first_chunk(rows: int) -> None:
        services.job_cancel(job=job, actor=system_actor)

    engine.run(job.pk, on_progress=cancel_after_first_chunk)
    job.refresh_from_db()
    assert job.status == Job.Status.CANCELLED
    assert job.processed_rows == 3  # the committed chunk stays done
    assert Member.objects.filter(program=program).count() == 3
    with pytest.raises(JobFinishedError):
        services.job_cancel(job=job, actor=system_actor)


class _WorkerDied(BaseException):
    """Escapes the engine like a killed process: nothing after it runs."""


def test_members_import_resumes_after_the_last_committed_chunk(start_import, run_job, program, vip):
    job = start_import("members", csv_bytes(GOOD))

    def die(rows: int) -> None:
        raise _WorkerDied

    with pytest.raises(_WorkerDied):
        engine.run(job.pk, on_progress=die)  # dies right after committing its first chunk
    job.refresh_from_db()
    assert (job.status, job.processed_rows) == (Job.Status.RUNNING, 3)
    assert Member.objects.filter(program=program).count() == 3

    finished = run_job(job)

    assert finished.status == Job.Status.SUCCEEDED
    assert finished.attempts == 2
    assert finished.counts == {"created": 4, "updated": 0, "unchanged": 0, "failed": 0}
    assert Member.objects.filter(program=program).count() == 4
    assert Event.objects.filter(program_id=program.pk, type="member.created").count() == 4
    assert [line["row"] for line in report(finished)] == [1, 2, 3, 4]


def test_members_import_labels_unknown_to_another_program_fail(
    import_and_run, program, other_program, system_actor
):
    member_services.label_create(program=other_program, code="gold", name="Gold", actor=system_actor)
    job = import_and_run("members", csv_bytes([{"number": "1000001", "labels": "gold"}]))
    assert outcomes(job) == [(1, "failed", "unknown_label")]
    assert not Label.objects.filter(program=program).exists()


def test_members_import_history_records_the_integration_or_the_staff_user(
    start_import, run_job, api, staff_user, program
):
    from membership_site.actors import Actor

    run_job(start_import("members", csv_bytes(GOOD[:1]), actor=Actor.for_integration(api.integration)))
    run_job(start_import("members", csv_bytes(GOOD[1:2]), actor=Actor.for_user(staff_user)))

    by_integration = Member.objects.get(number="1000001").history.get()
    assert (by_integration.history_type, by_integration.history_integration_id) == ("+", api.integration.pk)
    assert by_integration.history_user_id is None
    assert (by_integration.email, by_integration.phone) == ("ana@example.com", "+33612345678")
    by_user = Member.objects.get(number="1000002").history.get()
    assert (by_user.history_user_id, by_user.history_integration_id) == (staff_user.pk, None)
