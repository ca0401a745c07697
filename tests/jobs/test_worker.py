"""Jobs in a real Celery worker: a worker killed in the middle of an import, restarted,
ends with exactly what a clean run gives; a running job can be cancelled."""

from __future__ import annotations

from collections import Counter

import pytest
from django.core.management import call_command

from jobs import engine, services
from jobs.errors import JobFinishedError
from jobs.models import Job, JobChunk
from members.models import Member
from membership_site.actors import Actor
from tests.celery_support import wait_for
from tests.jobs.conftest import csv_bytes, report
from webhooks.models import Event

ROWS = 600


def _file() -> bytes:
    rows = []
    for i in range(ROWS):
        row = {"number": str(1_000_000 + i), "email": f"m{i}@example.com", "first_name": f"F{i}"}
        if i % 50 == 7:
            row["email"] = "broken"  # a failing row now and then
        if i % 97 == 3:
            row["number"] = str(1_000_000 + i - 1)  # the previous row's number: duplicate in the file
        rows.append(row)
    return csv_bytes(rows)


@pytest.fixture
def shared_storage(settings, monkeypatch):
    """The worker process reads the same job files and uses small chunks."""
    settings.JOBS_CHUNK_SIZE = 10
    monkeypatch.setenv("JOBS_STORAGE_DIR", str(settings.JOBS_STORAGE_DIR))


def _state(program) -> dict:
    members = Member.objects.filter(program=program)
    return {
        "members": sorted(members.values_list("number", "email", "first_name", "status")),
        "history": members.model.history.filter(program_id=program.pk).count(),
        "events": Counter(
            Event.objects.filter(program_id=program.pk)
            .exclude(type="job.finished")
            .values_list("type", flat=True)
        ),
    }


def _report(job: Job) -> list[tuple]:
    return [(line["row"], line["outcome"], line["error_codes"], line["object_ref"]) for line in report(job)]


@pytest.mark.celery_queues("jobs")
def test_job_worker_killed_mid_import_and_restarted_ends_like_a_clean_run(
    shared_storage, celery_worker, program, other_program, start_import
):
    data = _file()
    job = start_import("members", data)  # committed: the worker picks it up

    wait_for(
        lambda: Job.objects.filter(pk=job.pk, processed_rows__gte=100).exists(),
        timeout=60,
        interval=0.02,
        message=celery_worker.output(),
    )
    celery_worker.kill()
    job.refresh_from_db()
    assert job.status == Job.Status.RUNNING
    assert 100 <= job.processed_rows < ROWS, "the worker must die in the middle of the job"
    committed = JobChunk.objects.filter(job=job).count()
    assert Member.objects.filter(program=program).count() <= job.processed_rows

    celery_worker.start()
    # The broker keeps the killed worker's message unacknowledged for its visibility
    # timeout; the sweeper re-queues the job whose heartbeat stopped.
    call_command("jobs_requeue_stale", "--stale-seconds=0")
    wait_for(
        lambda: Job.objects.get(pk=job.pk).is_final, timeout=90, interval=0.2, message=celery_worker.output()
    )
    job.refresh_from_db()
    assert job.attempts == 2
    assert JobChunk.objects.filter(job=job).count() == ROWS // 10 > committed

    clean = start_import("members", data, target_program=other_program)
    engine.run(clean.pk)
    clean.refresh_from_db()

    assert job.status == clean.status == Job.Status.PARTIALLY_SUCCEEDED
    assert job.counts == clean.counts
    assert job.processed_rows == clean.processed_rows == ROWS
    assert _report(job) == _report(clean)
    assert _state(program) == _state(other_program)
    assert _state(program)["events"]["member.created"] == job.counts["created"]


@pytest.mark.celery_queues("jobs")
def test_job_running_in_a_worker_can_be_cancelled(shared_storage, celery_worker, program, start_import, api):
    job = start_import("members", _file())
    wait_for(
        lambda: Job.objects.filter(pk=job.pk, processed_rows__gt=0).exists(),
        timeout=60,
        interval=0.02,
        message=celery_worker.output(),
    )
    response = api.post(f"/api/v1/jobs/{job.pk}/cancel")
    assert response.status_code == 200
    wait_for(lambda: Job.objects.get(pk=job.pk).is_final, timeout=30, message=celery_worker.output())
    job.refresh_from_db()
    assert job.status == Job.Status.CANCELLED
    assert 0 < job.processed_rows < ROWS
    assert Member.objects.filter(program=program).count() == job.counts["created"]
    with pytest.raises(JobFinishedError):
        services.job_cancel(job=job, actor=Actor.system("tests"))
