"""Commands (import_members, jobs_requeue_stale, jobs_purge, jobs_run) and the bulk
member service against the per-row services."""

from __future__ import annotations

import csv
import io
import os
from datetime import date, timedelta
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from jobs import files
from jobs.models import Job, JobChunk
from members import bulk
from members.models import Member
from tests.jobs.conftest import csv_bytes
from webhooks.models import Event

GOOD = [
    {"number": "1000001", "email": "ana@example.com", "first_name": "Ana"},
    {"number": "1000002", "email": "bob@example.com", "first_name": "Bob"},
]


def _write(tmp_path: Path, rows: list[dict], **options) -> Path:
    path = tmp_path / "members.csv"
    path.write_bytes(csv_bytes(rows, **options))
    return path


def _call(*args) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_import_members_command_imports_with_a_summary(tmp_path, program):
    out, _err = _call("import_members", str(_write(tmp_path, GOOD)), "--program", "acme")
    assert "succeeded: 2 rows, 2 created, 0 updated, 0 unchanged, 0 failed." in out
    assert Member.objects.filter(program=program).count() == 2
    assert Job.objects.get().started_by_label == "command:import_members"


def test_import_members_command_exits_1_when_rows_fail_and_writes_the_report(tmp_path, program):
    path = _write(tmp_path, [*GOOD, {"number": "1000003", "email": "nope"}], delimiter=";", bom=True)
    report_path = tmp_path / "report.csv"
    out = io.StringIO()
    with pytest.raises(SystemExit) as exit_info:
        call_command(
            "import_members",
            str(path),
            "--program=acme",
            "--match=number",
            f"--report={report_path}",
            stdout=out,
        )
    assert exit_info.value.code == 1
    assert "1 failed" in out.getvalue()
    assert "row 3: bad_format" in out.getvalue()
    lines = list(csv.DictReader(report_path.open()))
    assert [line["outcome"] for line in lines] == ["created", "created", "failed"]


def test_import_members_command_dry_run_and_all_or_nothing(tmp_path, program):
    path = _write(tmp_path, [*GOOD, {"number": "1000003", "email": "nope"}])
    with pytest.raises(SystemExit):
        _call("import_members", str(path), "--program=acme", "--dry-run")
    with pytest.raises(SystemExit):
        _call("import_members", str(path), "--program=acme", "--mode=all_or_nothing")
    assert not Member.objects.exists()
    assert list(Job.objects.order_by("id").values_list("dry_run", "status")) == [
        (True, "partially_succeeded"),
        (False, "failed"),
    ]


def test_import_members_command_refuses_bad_input(tmp_path, program):
    with pytest.raises(CommandError):
        _call("import_members", str(_write(tmp_path, GOOD)), "--program=nope")
    with pytest.raises(CommandError):
        _call("import_members", str(tmp_path / "missing.csv"), "--program=acme")
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"number,colour\n1,red\n")
    err = io.StringIO()
    with pytest.raises(SystemExit) as exit_info:
        call_command("import_members", str(bad), "--program=acme", stderr=err, stdout=io.StringIO())
    assert exit_info.value.code == 2
    assert "Unknown columns" in err.getvalue()
    assert not Job.objects.exists()


def test_jobs_requeue_stale_runs_abandoned_jobs_again(start_import, program):
    job = start_import("members", csv_bytes(GOOD))
    Job.objects.filter(pk=job.pk).update(
        status=Job.Status.RUNNING, heartbeat_at=timezone.now() - timedelta(hours=1)
    )
    fresh = start_import("members", csv_bytes(GOOD[:1]), target_program=program)
    Job.objects.filter(pk=fresh.pk).update(status=Job.Status.RUNNING, heartbeat_at=timezone.now())

    out, _err = _call("jobs_requeue_stale")  # Celery is eager in tests: the job runs now

    assert f"Re-queued 1 job(s): {job.pk}." in out
    assert Job.objects.get(pk=job.pk).status == Job.Status.SUCCEEDED
    assert Job.objects.get(pk=fresh.pk).status == Job.Status.RUNNING


def test_jobs_purge_deletes_expired_files_and_reports_only(start_import, run_job, settings, program):
    old = run_job(start_import("members", csv_bytes(GOOD)))
    recent = run_job(start_import("members", csv_bytes(GOOD)))
    Job.objects.filter(pk=old.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    orphan = Path(settings.JOBS_STORAGE_DIR) / "orphan"
    orphan.mkdir()
    (orphan / "input.csv").write_bytes(b"x")
    long_ago = (timezone.now() - timedelta(hours=settings.JOBS_FILE_RETENTION_HOURS + 1)).timestamp()
    os.utime(orphan, (long_ago, long_ago))

    out, _err = _call("jobs_purge")

    assert "Purged the files and reports of 1 job(s)." in out
    old.refresh_from_db()
    assert old.purged_at is not None and old.input_file == ""
    assert not files.job_dir(old.storage_key).exists()
    assert not JobChunk.objects.filter(job=old).exists()
    assert files.job_dir(recent.storage_key).exists()
    assert JobChunk.objects.filter(job=recent).exists()
    assert not orphan.exists()


def test_jobs_run_command_runs_a_queued_job(start_import, program):
    job = start_import("members", csv_bytes(GOOD))
    out, _err = _call("jobs_run", str(job.pk))
    assert "succeeded" in out
    with pytest.raises(CommandError):
        _call("jobs_run", "999999")


def test_members_upsert_many_gives_what_the_per_row_services_give(program, other_program, system_actor):
    """The bulk path and its row-by-row fallback (the services) agree row for row."""
    bulk.members_upsert_many(
        program=program,
        rows=[bulk.MemberInput(profile={"email": "old@example.com"}, number="1000009")],
        match="number",
        action="upsert",
        actor=system_actor,
    )
    bulk._one_by_one(
        other_program,
        bulk.MemberInput(profile={"email": "old@example.com"}, number="1000009"),
        "number",
        "upsert",
        system_actor,
    )
    rows = [
        bulk.MemberInput(profile={"email": "Ana@Example.com", "phone": "06 12 34 56 78"}, number="1000001"),
        bulk.MemberInput(profile={"email": "bad"}, number="1000002"),
        bulk.MemberInput(profile={"email": "old@example.com"}, number="1000003"),  # taken
        bulk.MemberInput(profile={"city": "Lyon"}, number="1000009"),  # update
        bulk.MemberInput(profile={"email": "old@example.com"}, number="1000009"),  # unchanged
        bulk.MemberInput(profile={"email": "new@example.com"}, labels=["nope"], number="1000004"),
    ]
    fast = bulk.members_upsert_many(
        program=program, rows=rows, match="number", action="upsert", actor=system_actor
    )
    slow = [bulk._one_by_one(other_program, row, "number", "upsert", system_actor) for row in rows]

    def summary(results):
        return [(r.outcome, r.error.code if r.error else None) for r in results]

    assert (
        summary(fast)
        == summary(slow)
        == [
            ("created", None),
            ("failed", "invalid_email"),
            ("failed", "duplicate_member"),
            ("updated", None),
            ("unchanged", None),
            ("failed", "unknown_label"),
        ]
    )

    def stored(target):
        return sorted(Member.objects.filter(program=target).values_list("number", "email", "phone", "city"))

    assert stored(program) == stored(other_program)

    def events(target):
        return sorted(
            (event.type, event.data["member"]["number"], tuple(event.data.get("changed", ())))
            for event in Event.objects.filter(program_id=target.pk, type__startswith="member.")
        )

    assert events(program) == events(other_program)


def test_members_upsert_many_updates_write_what_member_update_writes(
    program, other_program, system_actor, staff_user
):
    """A bulk update stores the same values and "changed" history rows (with the actor) as
    member_update does, for text with quotes and backslashes, dates set and cleared."""
    from members import services as member_services
    from membership_site.actors import Actor

    actor = Actor.for_user(staff_user)
    before = {"city": "Paris", "birth_date": date(1990, 1, 2), "last_name": "Lopez"}
    changes = [
        {"city": 'Saint-"Malo" \\ {x}', "birth_date": date(1991, 3, 4)},
        {"birth_date": None, "first_name": "Ana, María"},
        {"last_name": "O'Neil", "region": "NULL"},
    ]
    bulk_members = [
        member_services.member_create(program=program, number=f"100000{n}", actor=system_actor, **before)
        for n in range(3)
    ]
    service_members = [
        member_services.member_create(
            program=other_program, number=f"100000{n}", actor=system_actor, **before
        )
        for n in range(3)
    ]

    results = bulk.members_upsert_many(
        program=program,
        rows=[bulk.MemberInput(profile=change, number=f"100000{n}") for n, change in enumerate(changes)],
        match="number",
        action="update",
        actor=actor,
    )
    for member, change in zip(service_members, changes, strict=True):
        member_services.member_update(member=member, actor=actor, **change)

    assert [result.outcome for result in results] == ["updated"] * 3
    fields = ["number", "city", "birth_date", "first_name", "last_name", "region"]

    def state(members):
        return [Member.objects.filter(pk=m.pk).values_list(*fields).get() for m in members]

    def history(members, *extra):
        return [
            list(
                Member.history.filter(id=m.pk)
                .order_by("history_id")
                .values_list("history_type", *fields, *extra)
            )
            for m in members
        ]

    assert state(bulk_members) == state(service_members)
    assert history(bulk_members) == history(service_members)
    # The job's actor is recorded (the services take it from the request, absent here).
    assert [rows[-1][-2:] for rows in history(bulk_members, "history_user_id", "history_integration_id")] == [
        (staff_user.pk, None)
    ] * 3
    updated = Member.objects.get(pk=bulk_members[0].pk)
    assert updated.updated_at > updated.created_at


class _Terminal(io.StringIO):
    """stderr as a terminal, where the commands draw their progress bar (tqdm draws
    nothing when the output is not a terminal, e.g. in cron logs)."""

    def isatty(self) -> bool:
        return True


def test_import_members_command_draws_a_progress_bar_on_a_terminal(tmp_path, program, settings):
    settings.JOBS_CHUNK_SIZE = 1
    rows = [*GOOD, {"number": "1000003", "email": "cy@example.com"}]
    out, err = io.StringIO(), _Terminal()
    call_command("import_members", str(_write(tmp_path, rows)), "--program=acme", stdout=out, stderr=err)
    bar = err.getvalue()
    assert "Importing members.csv" in bar
    assert "3/3" in bar and "row" in bar
    assert "succeeded: 3 rows" in out.getvalue()

    quiet = io.StringIO()
    call_command(
        "import_members", str(_write(tmp_path, rows)), "--program=acme", stdout=io.StringIO(), stderr=quiet
    )
    assert quiet.getvalue() == ""  # not a terminal: no bar
