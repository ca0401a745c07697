"""Fixtures for job tests: an isolated storage directory, staff users, file helpers and a
way to run a job the way the worker does (``run_job``)."""

from __future__ import annotations

import csv
import io

import pytest
from django.contrib.auth import get_user_model

from jobs import engine, services
from jobs.models import Job
from membership_site.actors import Actor


@pytest.fixture(autouse=True)
def _job_storage(settings, tmp_path):
    settings.JOBS_STORAGE_DIR = str(tmp_path / "jobs")
    settings.JOBS_CHUNK_SIZE = 3  # several chunks from a handful of rows


def csv_bytes(
    rows: list[dict], *, delimiter: str = ",", bom: bool = False, header: list[str] | None = None
) -> bytes:
    out = io.StringIO()
    columns = header or list(dict.fromkeys(key for row in rows for key in row))
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([row.get(column, "") for column in columns])
    data = out.getvalue().encode()
    return b"\xef\xbb\xbf" + data if bom else data


@pytest.fixture
def start_import(program, system_actor):
    """Create an import job from bytes through the service (not run yet)."""

    def _start(kind: str, data: bytes, *, actor: Actor | None = None, target_program=None, **params) -> Job:
        import_kind = services.import_kind_get(kind)
        validated = services.validate_import_params(import_kind, params)
        return services.import_job_create(
            program_id=(target_program or program).pk,
            kind=kind,
            chunks=[data],
            filename=f"upload.{'json' if data.lstrip().startswith(b'[') else 'csv'}",
            params=validated,
            actor=actor or system_actor,
        )

    return _start


@pytest.fixture
def run_job():
    """Run a job in this process exactly as the Celery task does."""

    def _run(job: Job) -> Job:
        engine.run(job.pk)
        return Job.objects.get(pk=job.pk)

    return _run


@pytest.fixture
def import_and_run(start_import, run_job):
    def _go(kind: str, data: bytes, **params) -> Job:
        return run_job(start_import(kind, data, **params))

    return _go


def report(job: Job) -> list[dict]:
    return [dict(zip(engine.REPORT_COLUMNS, line, strict=True)) for line in engine.report_rows(job)]


def outcomes(job: Job) -> list[tuple[int, str, str]]:
    return [(line["row"], line["outcome"], line["error_codes"]) for line in report(job)]


@pytest.fixture
def staff_user(db):
    return get_user_model().objects.create_superuser("boss", "boss@example.com", "pw-not-used-1234")


@pytest.fixture
def broker_without_worker(transactional_db):
    """Committed jobs are queued on a real Redis broker that no worker consumes (Celery is
    eager otherwise, and would run them at commit): the test runs them itself."""
    import uuid

    import redis

    from membership_site.celery import app as celery_app
    from tests.celery_support import _reset_broker_connections, broker_url

    key_prefix = f"test-idle-{uuid.uuid4().hex[:12]}-"
    previous = {
        "broker_url": celery_app.conf.broker_url,
        "task_always_eager": celery_app.conf.task_always_eager,
        "broker_transport_options": celery_app.conf.broker_transport_options,
    }
    celery_app.conf.update(
        broker_url=broker_url(),
        task_always_eager=False,
        broker_transport_options={"global_keyprefix": key_prefix},
    )
    _reset_broker_connections()
    try:
        yield
    finally:
        celery_app.conf.update(**previous)
        _reset_broker_connections()
        client = redis.Redis.from_url(broker_url())
        for key in client.scan_iter(match=f"{key_prefix}*"):
            client.delete(key)
