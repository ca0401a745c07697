"""Two runners on one job, and cancelling while a long transaction holds the job's chunks
(real threads, each with its own database connection)."""

from __future__ import annotations

import threading

from django.db import connection, transaction

from jobs import engine, services
from jobs.models import Job, JobChunk
from members.models import Member
from tests.jobs.conftest import csv_bytes, report
from webhooks.models import Event

ROWS = [{"number": str(1_000_000 + i), "email": f"m{i}@example.com"} for i in range(60)]


def _in_thread(target) -> threading.Thread:
    def run():
        try:
            target()
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_two_runners_on_one_job_apply_each_chunk_once(broker_without_worker, start_import, program):
    job = start_import("members", csv_bytes(ROWS))
    assert Job.objects.get(pk=job.pk).status == Job.Status.QUEUED
    barrier = threading.Barrier(2)

    def runner():
        barrier.wait()
        engine.run(job.pk)

    threads = [_in_thread(runner) for _ in range(2)]
    for thread in threads:
        thread.join(timeout=120)

    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED
    assert job.counts == {"created": 60, "updated": 0, "unchanged": 0, "failed": 0}
    assert job.processed_rows == 60
    assert Member.objects.filter(program=program).count() == 60
    assert Event.objects.filter(program_id=program.pk, type="member.created").count() == 60
    assert JobChunk.objects.filter(job=job).count() == 20  # chunks of 3
    assert [line["row"] for line in report(job)] == list(range(1, 61))
    assert job.attempts == 2  # both really ran it


def test_job_cancel_does_not_wait_for_a_transaction_holding_the_jobs_chunks(
    broker_without_worker, start_import, system_actor
):
    """An all-or-nothing job applies everything in one long transaction that inserts
    the job's chunks; a cancel request must not wait for that transaction to end."""
    job = start_import("members", csv_bytes(ROWS), mode="all_or_nothing")
    Job.objects.filter(pk=job.pk).update(status=Job.Status.RUNNING, phase=Job.Phase.APPLY)
    holding, release = threading.Event(), threading.Event()

    def long_apply():
        with transaction.atomic():
            JobChunk.objects.create(job=job, phase=Job.Phase.APPLY, index=0, first_row=1, last_row=3)
            holding.set()
            release.wait(30)

    thread = _in_thread(long_apply)
    try:
        assert holding.wait(30)
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL lock_timeout = '2s'")  # waiting would raise, not hang
            services.job_cancel(job=job, actor=system_actor)
    finally:
        release.set()
        thread.join(timeout=30)
    job.refresh_from_db()
    assert job.cancel_requested_at is not None
    assert job.status == Job.Status.RUNNING  # the runner stops it when its transaction ends
