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

Goal: the job imports at least 10% of COPY's rate. To show what bounds it, the run also
times the **database floor**: the same members written into the real tables by SQL alone
(member rows, their history rows, ``member.created`` events with their dispatch rows and
sequence counters, in chunks of ``JOBS_CHUNK_SIZE``, foreign keys checked), with no Python
per row. No import keeping these tables, indexes and events can be faster than that.

The run then exports the members to CSV through an export job and prints the peak Python
allocations (tracemalloc, export only) next to the file's size, to show that exports
stream. Peak memory is the process's peak resident size (ru_maxrss), which does not slow
the run as tracemalloc would. Last, it imports ``BENCH_ADJUSTMENTS`` point adjustments
(default 5,000, all credits, as when opening balances are migrated) through the
``point_adjustments`` job, which writes a chunk's credits together
(``points_adjust_credits_qualifying``), against the baseline of calling
``points_adjust_qualifying`` (one adjustment at a time, as the API does) directly for as
many other members, one transaction per chunk; then it exports the ledger's transactions,
balances and liability the same way.

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

from _support import recreate_database

ROOT = Path(__file__).resolve().parent.parent
ROWS = int(os.environ.get("BENCH_ROWS", "100000"))
ADJUSTMENTS = int(os.environ.get("BENCH_ADJUSTMENTS", "5000"))
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
    os.environ["DATABASE_URL"] = recreate_database(DB_NAME)
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

    floor_seconds = time_database_floor(program.pk, settings.JOBS_CHUNK_SIZE)
    export = _time_export(program.pk)
    adjustments = _time_adjustments(program.pk)

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
        "database_floor_seconds": round(floor_seconds, 3),
        "database_floor_rows_per_second": round(ROWS / floor_seconds),
        "database_floor_ratio_to_copy": round(copy_seconds / floor_seconds, 4),
        "job_share_in_database_floor": round(floor_seconds / job_seconds, 3),
        "peak_rss_mib": round(rss_after / 1024, 1),
        "peak_rss_growth_during_job_mib": round((rss_after - rss_before) / 1024, 1),
        "export": export,
        "adjustments": adjustments,
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
        f"Database floor:       {floor_seconds:8.2f} s  {ROWS / floor_seconds:12,.0f} rows/s "
        f"= {copy_seconds / floor_seconds:.1%} of COPY (the same rows into the real tables by SQL "
        f"alone: {floor_seconds / job_seconds:.0%} of the job's time)"
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
    print(
        f"Adjustments baseline: {adjustments['direct_seconds']:8.2f} s  "
        f"{adjustments['direct_rows_per_second']:12,} rows/s "
        "(points_adjust_qualifying called directly, one at a time, same count)"
    )
    print(
        f"Point adjustments:    {adjustments['seconds']:8.2f} s  {adjustments['rows_per_second']:12,} rows/s "
        f"({adjustments['rows']:,} rows through the job) = "
        f"{adjustments['rows_per_second'] / adjustments['direct_rows_per_second']:.0%} of the baseline"
    )
    for name, measured in adjustments["exports"].items():
        print(
            f"Export {name + ':':14s}{measured['seconds']:8.2f} s  {measured['rows_per_second']:12,} rows/s, "
            f"file {measured['file_mib']} MiB, peak Python allocations {measured['peak_traced_mib']} MiB"
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


def time_database_floor(program_id: int, chunk_size: int) -> float:
    """Write again, by SQL alone, what the import wrote for the program's members: member
    rows (into another program), their history rows, one event each with its dispatch
    row and sequence counter; one statement and a savepoint per chunk, deferred foreign
    keys checked at its end; all rolled back afterwards."""
    from django.db import connection, transaction

    from members.models import Member
    from membership_site.actors import Actor
    from programs import services as program_services
    from webhooks.models import Event, EventDispatch, MemberEventCounter

    member_table = Member._meta.db_table
    history_table = Member.history.model._meta.db_table
    member_columns = [field.column for field in Member._meta.concrete_fields if field.column != "id"]
    history_columns = [
        field.column
        for field in Member.history.model._meta.concrete_fields
        if field.column in member_columns or field.column == "id"
    ]
    selected = ", ".join("%s" if column == "program_id" else column for column in member_columns)
    statement = f"""
        WITH source AS (SELECT * FROM {member_table} WHERE id = ANY(%s::bigint[])),
        created AS (
            INSERT INTO {member_table} ({", ".join(member_columns)})
            SELECT {selected} FROM source ORDER BY id RETURNING *
        ), history AS (
            INSERT INTO {history_table} ({", ".join(history_columns)}, history_date, history_type)
            SELECT {", ".join(history_columns)}, now(), '+' FROM created
        ), counters AS (
            INSERT INTO {MemberEventCounter._meta.db_table} (member_id, last_sequence)
            SELECT id, 1 FROM created
        ), events AS (
            INSERT INTO {Event._meta.db_table}
                (event_id, type, program_id, member_id, member_sequence, schema_version, occurred_at,
                 recorded_at, data)
            SELECT 'evt_' || substr(md5(id::text), 1, 24), 'member.created', program_id, id, 1, 1, now(),
                   now(), jsonb_build_object('member', jsonb_build_object(
                       'id', id, 'number', number, 'status', status, 'email', email, 'phone', phone,
                       'first_name', first_name, 'last_name', last_name, 'external_ref', external_ref,
                       'labels', '[]'::jsonb))
            FROM created ORDER BY id RETURNING id
        )
        INSERT INTO {EventDispatch._meta.db_table} (event_id, created_at, deliveries)
        SELECT id, now(), 0 FROM events
    """
    ids = list(Member.objects.filter(program_id=program_id).order_by("pk").values_list("pk", flat=True))
    with transaction.atomic():
        target = program_services.program_create(
            code="floor", name="Floor", timezone="Europe/Paris", currency="EUR", actor=Actor.system("bench")
        )
        started = time.perf_counter()
        for start in range(0, len(ids), chunk_size):
            chunk = ids[start : start + chunk_size]
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(statement, ["{" + ",".join(map(str, chunk)) + "}", target.pk])
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
                cursor.execute("SET CONSTRAINTS ALL DEFERRED")
        seconds = time.perf_counter() - started
        transaction.set_rollback(True)
    return seconds


def _time_adjustments(program_id: int) -> dict:
    """Import point adjustments (credits) for the first members through the job, then
    export transactions, balances and liability under tracemalloc."""
    import tracemalloc

    from django.utils import timezone

    from jobs import files, services
    from jobs.models import Job
    from jobs.tasks import job_run
    from membership_site.actors import Actor

    rows = min(ADJUSTMENTS, ROWS // 2)
    direct_seconds = _time_direct_adjustments(program_id, first=rows, count=rows)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["number", "amount", "reason", "reference"])
    for i in range(rows):
        body = str(100_000_000 + i)
        writer.writerow([body + _luhn(body), 100 + i % 50, "Welcome bonus", f"bench-adj-{i}"])
    kind = services.import_kind_get("point_adjustments")
    params = services.validate_import_params(kind, {"match": "number"})
    started = time.perf_counter()
    job = services.import_job_create(
        program_id=program_id,
        kind="point_adjustments",
        chunks=[out.getvalue().encode()],
        filename="adjustments.csv",
        params=params,
        actor=Actor.system("bench"),
    )
    job_run.apply(args=[job.pk])
    seconds = time.perf_counter() - started
    job = Job.objects.get(pk=job.pk)
    assert job.status == Job.Status.SUCCEEDED and job.created_count == rows, (job.status, job.counts)

    today = timezone.now().date().isoformat()
    exports = {}
    for name, export_params in (
        ("transactions", {"from": "2000-01-01", "to": today}),
        ("balances", {}),
        ("liability", {}),
    ):
        export_kind = services.export_kind_get(name)
        validated = services.validate_export_params(export_kind, export_params, program_id=program_id)
        export_job = services.export_job_create(
            program_id=program_id, kind=name, params=validated, actor=Actor.system("bench")
        )
        tracemalloc.start()
        export_started = time.perf_counter()
        job_run.apply(args=[export_job.pk])
        export_seconds = time.perf_counter() - export_started
        _current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        export_job = Job.objects.get(pk=export_job.pk)
        assert export_job.status == Job.Status.SUCCEEDED, (name, export_job.error_detail)
        exports[name] = {
            "rows": export_job.result_rows,
            "seconds": round(export_seconds, 3),
            "rows_per_second": round(export_job.result_rows / export_seconds),
            "file_mib": round(files.path_of(export_job.result_file).stat().st_size / 2**20, 2),
            "peak_traced_mib": round(peak / 2**20, 1),
        }
    return {
        "rows": rows,
        "seconds": round(seconds, 3),
        "rows_per_second": round(rows / seconds),
        "direct_seconds": round(direct_seconds, 3),
        "direct_rows_per_second": round(rows / direct_seconds),
        "exports": exports,
    }


def _time_direct_adjustments(program_id: int, *, first: int, count: int) -> float:
    """The baseline: points_adjust_qualifying (the ledger's adjustment and the tiers'
    qualifying activity, one adjustment at a time, as the API makes them) for ``count`` members from the
    ``first``-th, one transaction per ``JOBS_CHUNK_SIZE`` rows, as a chunk of the job runs
    them."""
    from django.conf import settings
    from django.db import transaction

    from members.models import Member
    from membership_site.actors import Actor
    from points.earning import qualifying
    from programs.models import Program

    program = Program.objects.get(pk=program_id)
    members = list(Member.objects.filter(program=program).order_by("pk")[first : first + count])
    actor = Actor.system("bench")
    started = time.perf_counter()
    for start in range(0, len(members), settings.JOBS_CHUNK_SIZE):
        with transaction.atomic():
            for index, member in enumerate(members[start : start + settings.JOBS_CHUNK_SIZE], start=start):
                member.program = program
                qualifying.points_adjust_qualifying(
                    member=member,
                    amount=100 + index % 50,
                    reason="Welcome bonus",
                    actor=actor,
                    reference=f"bench-direct-{index}",
                )
    return time.perf_counter() - started


def _forget_queued_tasks(prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(os.environ["CELERY_BROKER_URL"])
    for key in client.scan_iter(match=f"{prefix}*"):
        client.delete(key)


if __name__ == "__main__":
    sys.exit(main())
