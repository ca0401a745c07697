"""Benchmark: import 100,000 members from CSV through the job path, against PostgreSQL
``COPY`` of the same rows into a plain table, in the same run.

The job path is the real one: ``jobs.services.import_job_create`` stores and checks the
file and queues the job (Redis, as in production), and the job task
``jobs.tasks.job_run`` then runs in this process, as a worker runs it, chunk by chunk
(``JOBS_CHUNK_SIZE``): parsing, validation, normalisation (e-mail, phone), uniqueness
checks, member and history rows, ``member.created`` events, the ``members_created`` hook
and the report. The webhook dispatch tasks it queues are left to other workers (and
deleted from Redis at the end), as in production. ``BENCH_PROFILE=1`` prints where the
job spends its time (cProfile; slower). ``COPY`` only moves the same text into a table
without indexes or constraints.

Goal: the job imports at least 10% of COPY's rate. The run then exports the members to
CSV through an export job and prints the peak Python allocations (tracemalloc, export
only) next to the file's size, to show that exports stream. Peak memory is the process's peak
resident size (ru_maxrss), which does not slow the run as tracemalloc would.

Uses its own database (``loyalty_bench_import`` on the server of DATABASE_URL), dropped
and created afresh each run. ``BENCH_ROWS`` changes the row count.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/loyalty .venv/bin/python bench/bench_import.py
"""

from __future__ import annotations

import csv
import io
import json
import os
import resource
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
ROWS = int(os.environ.get("BENCH_ROWS", "100000"))
GOAL = 0.10
DB_NAME = "loyalty_bench_import"

COLUMNS = [
    "number",
    "email",
    "phone",
    "first_name",
    "last_name",
    "birth_date",
    "city",
    "country",
    "external_ref",
]


def _server_url() -> str:
    return os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/loyalty")


def _recreate_database() -> str:
    import psycopg

    parsed = urlparse(_server_url())
    admin = parsed._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB_NAME}")
    return parsed._replace(path=f"/{DB_NAME}").geturl()


def _luhn(digits: str) -> str:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 0:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return str((10 - total % 10) % 10)


def make_csv(rows: int) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for i in range(rows):
        body = str(100_000_000 + i)
        writer.writerow(
            [
                body + _luhn(body),
                f"member{i}@example.com",
                f"+336{10_000_000 + i:08d}",
                f"First{i}",
                f"Last{i % 5000}",
                f"19{50 + i % 50}-0{1 + i % 9}-1{i % 9}",
                ["Paris", "Lyon", "Lille", "Nantes"][i % 4],
                "FR",
                f"crm-{i}",
            ]
        )
    return out.getvalue().encode()


def time_copy(data: bytes) -> float:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE bench_copy_members (" + ", ".join(f"{name} text" for name in COLUMNS) + ")"
        )
    started = time.perf_counter()
    with (
        connection.cursor() as cursor,
        cursor.copy("COPY bench_copy_members FROM STDIN (FORMAT csv, HEADER true)") as copy,
    ):
        copy.write(data)
    elapsed = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM bench_copy_members")
        assert cursor.fetchone()[0] == ROWS
    return elapsed


def main() -> int:
    os.environ["DATABASE_URL"] = _recreate_database()
    os.environ.setdefault("SECRET_KEY", "bench-only-secret-key")
    # A real broker, as in production: the tasks the import queues for other workers
    # (webhook dispatch) are queued, not run here; the job itself is run below in this
    # process by its task, as a worker runs it.
    prefix = f"bench-import-{os.getpid()}-"
    os.environ["CELERY_BROKER_URL"] = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    os.environ["CELERY_REDIS_KEY_PREFIX"] = prefix
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ["JOBS_STORAGE_DIR"] = str(ROOT / "bench" / "results" / "jobs-files")
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "membership_site.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    call_command("migrate", verbosity=0)

    from jobs import services
    from jobs.models import Job
    from jobs.tasks import job_run
    from members.models import Member
    from membership_site.actors import Actor
    from programs import services as program_services
    from webhooks.models import Event

    program = program_services.program_create(
        code="bench",
        name="Bench",
        timezone="Europe/Paris",
        currency="EUR",
        phone_region="FR",
        actor=Actor.system("bench"),
    )
    data = make_csv(ROWS)
    copy_seconds = time_copy(data)

    kind = services.import_kind_get("members")
    params = services.validate_import_params(kind, {"match": "number", "action": "upsert"})
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    job = services.import_job_create(
        program_id=program.pk,
        kind="members",
        chunks=[data],
        filename="bench.csv",
        params=params,
        actor=Actor.system("bench"),
    )
    if os.environ.get("BENCH_PROFILE"):
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.runcall(job_run.apply, args=[job.pk])
        stats = pstats.Stats(profiler, stream=sys.stderr).sort_stats(
            os.environ.get("BENCH_PROFILE_SORT", "tottime")
        )
        stats.print_stats(40)
        if os.environ.get("BENCH_PROFILE_CALLEES"):
            stats.print_callees(os.environ["BENCH_PROFILE_CALLEES"])
    else:
        job_run.apply(args=[job.pk])
    job_seconds = time.perf_counter() - started
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    job = Job.objects.get(pk=job.pk)
    members = Member.objects.filter(program=program).count()
    events = Event.objects.filter(program_id=program.pk, type="member.created").count()
    if job.status != Job.Status.SUCCEEDED or members != ROWS or events != ROWS:
        print(f"FAILED: job {job.status} {job.counts} {job.error_code}; {members} members, {events} events")
        return 1

    export = _time_export(program.pk)

    copy_rate = ROWS / copy_seconds
    job_rate = ROWS / job_seconds
    ratio = job_rate / copy_rate
    result = {
        "rows": ROWS,
        "chunk_size": settings.JOBS_CHUNK_SIZE,
        "copy_seconds": round(copy_seconds, 3),
        "copy_rows_per_second": round(copy_rate),
        "job_seconds": round(job_seconds, 3),
        "job_rows_per_second": round(job_rate),
        "ratio": round(ratio, 4),
        "goal": GOAL,
        "goal_met": ratio >= GOAL,
        "peak_rss_mib": round(rss_after / 1024, 1),
        "peak_rss_growth_during_job_mib": round((rss_after - rss_before) / 1024, 1),
        "export": export,
    }
    print(f"Rows:                 {ROWS:,} members (CSV, {len(data) / 1e6:.1f} MB)")
    print(f"Baseline COPY:        {copy_seconds:8.2f} s  {copy_rate:12,.0f} rows/s (plain table, same rows)")
    print(
        f"Import job:           {job_seconds:8.2f} s  {job_rate:12,.0f} rows/s "
        f"(chunks of {settings.JOBS_CHUNK_SIZE})"
    )
    print(
        f"Ratio job/COPY:       {ratio:8.1%}   (goal >= {GOAL:.0%}: {'met' if ratio >= GOAL else 'NOT met'})"
    )
    print(
        f"Peak memory (RSS):    {result['peak_rss_mib']:8.1f} MiB "
        f"(+{result['peak_rss_growth_during_job_mib']} MiB during the job)"
    )
    print(
        f"Export job (CSV):     {export['seconds']:8.2f} s  {export['rows_per_second']:12,} rows/s, "
        f"file {export['file_mib']} MiB, peak Python allocations {export['peak_traced_mib']} MiB "
        "(streamed; timed under tracemalloc)"
    )
    results_dir = ROOT / "bench" / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / "bench_import.json").write_text(json.dumps(result, indent=2))
    _forget_queued_tasks(prefix)
    return 0


def _time_export(program_id: int) -> dict:
    """Export the imported members to CSV through a job, tracing Python allocations: the
    peak stays far below the file's size because rows are streamed to the file."""
    import tracemalloc

    from jobs import files, services
    from jobs.models import Job
    from jobs.tasks import job_run
    from membership_site.actors import Actor

    job = services.export_job_create(
        program_id=program_id, kind="members", params={}, actor=Actor.system("bench")
    )
    tracemalloc.start()
    started = time.perf_counter()
    job_run.apply(args=[job.pk])
    seconds = time.perf_counter() - started
    _current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    job = Job.objects.get(pk=job.pk)
    assert job.status == Job.Status.SUCCEEDED and job.result_rows == ROWS, (job.status, job.result_rows)
    size = files.path_of(job.result_file).stat().st_size
    return {
        "rows": job.result_rows,
        "seconds": round(seconds, 3),
        "rows_per_second": round(ROWS / seconds),
        "file_mib": round(size / 2**20, 1),
        "peak_traced_mib": round(peak / 2**20, 1),
    }


def _forget_queued_tasks(prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(os.environ["CELERY_BROKER_URL"])
    for key in client.scan_iter(match=f"{prefix}*"):
        client.delete(key)


if __name__ == "__main__":
    sys.exit(main())
