"""Creating, cancelling, re-queuing and purging jobs.

The API, the admin and the commands all start jobs here, so that an upload is checked
the same way whatever its way in: the kind exists, the parameters are valid, the file is
UTF-8 CSV or JSON and its columns are the kind's.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from rest_framework import serializers

from membership_site.actors import Actor
from membership_site.api.serializers import StrictSerializer

from . import files, registry
from .errors import FileUnreadableError, JobFinishedError, UnknownJobKindError
from .models import Job
from .registry import ExportKind, ImportKind

logger = logging.getLogger("jobs")


class ImportParamsSerializer(StrictSerializer):
    dry_run = serializers.BooleanField(
        default=False, help_text="Validate every row and report, changing nothing."
    )
    mode = serializers.ChoiceField(
        choices=Job.Mode.choices,
        default=Job.Mode.CONTINUE,
        help_text="continue: bad rows are reported, good rows written. all_or_nothing: "
        "nothing is written unless every row is valid.",
    )


class ExportParamsSerializer(StrictSerializer):
    format = serializers.ChoiceField(choices=[files.CSV, files.JSON], default=files.CSV)


def _combined(base: type[serializers.Serializer], own: type[serializers.Serializer] | None, name: str):
    return type(name, (base, own) if own else (base,), {})


def import_kind_get(name: str) -> ImportKind:
    kind = registry.import_kind(name)
    if kind is None:
        raise UnknownJobKindError(
            f"No import kind '{name}'. Known: {', '.join(k.name for k in registry.import_kinds())}."
        )
    return kind


def export_kind_get(name: str) -> ExportKind:
    kind = registry.export_kind(name)
    if kind is None:
        raise UnknownJobKindError(
            f"No export kind '{name}'. Known: {', '.join(k.name for k in registry.export_kinds())}."
        )
    return kind


def import_params_serializer(kind: ImportKind) -> type[serializers.Serializer]:
    return _combined(ImportParamsSerializer, kind.params, f"{kind.name.title().replace('_', '')}ImportParams")


def export_params_serializer(kind: ExportKind) -> type[serializers.Serializer]:
    return _combined(ExportParamsSerializer, kind.params, f"{kind.name.title().replace('_', '')}ExportParams")


def validate_import_params(
    kind: ImportKind, data: dict[str, Any], *, program_id: int | None = None
) -> dict[str, Any]:
    """The common (dry_run, mode) and the kind's parameters, validated; raises DRF's
    ValidationError (a 400 problem with one entry per field in the API). ``program_id``
    is in the serializer's context, for parameters naming something of the program."""
    serializer = import_params_serializer(kind)(data=data, context={"program_id": program_id})
    serializer.is_valid(raise_exception=True)
    return _jsonable(dict(serializer.validated_data))


def validate_export_params(
    kind: ExportKind, data: dict[str, Any], *, program_id: int | None = None
) -> dict[str, Any]:
    serializer = export_params_serializer(kind)(data=data, context={"program_id": program_id})
    serializer.is_valid(raise_exception=True)
    return _jsonable(dict(serializer.validated_data))


def _jsonable(data: dict[str, Any]) -> dict[str, Any]:
    # Jobs keep their parameters as JSON: dates and times as ISO 8601 text.
    return {key: value.isoformat() if isinstance(value, date) else value for key, value in data.items()}


def import_template_csv(kind: ImportKind) -> str:
    """The kind's template: its columns, and a row of examples."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(kind.column_names)
    writer.writerow([column.example for column in kind.columns])
    return out.getvalue()


def check_columns(kind: ImportKind, columns: Iterable[str], params: dict[str, Any]) -> None:
    columns = [column for column in columns if column]
    unknown = [column for column in columns if column not in kind.column_names]
    if unknown:
        raise FileUnreadableError(
            f"Unknown columns for '{kind.name}': {', '.join(unknown)}. "
            f"Columns: {', '.join(kind.column_names)}.",
            code="unknown_column",
            columns=unknown,
        )
    missing = [column for column in kind.required(params) if column not in columns]
    if missing:
        raise FileUnreadableError(
            f"The file lacks the required columns: {', '.join(missing)}.",
            code="missing_column",
            columns=missing,
        )
    duplicated = sorted({column for column in columns if columns.count(column) > 1})
    if duplicated:
        raise FileUnreadableError(
            f"Columns appear twice: {', '.join(duplicated)}.", code="malformed_file", columns=duplicated
        )


def check_input(kind: ImportKind, relative: str, fmt: str, params: dict[str, Any]) -> None:
    """Refuse a file the job could not read, before the job exists."""
    path = files.path_of(relative)
    files.check_utf8(path)
    reader = files.RowReader(path, fmt)
    check_columns(kind, reader.header().columns, params)


@transaction.atomic
def import_job_create(
    *,
    program_id: int,
    kind: str,
    chunks: Iterable[bytes],
    filename: str = "",
    params: dict[str, Any],
    actor: Actor,
) -> Job:
    """Store the file, check it and queue the job (dispatched once this commits).

    ``params`` are validated ones (``validate_import_params``): ``dry_run``, ``mode`` and
    the kind's own. A file that cannot be read raises ``FileUnreadableError``.
    """
    import_kind = import_kind_get(kind)
    params = dict(params)
    dry_run = params.pop("dry_run", False)
    mode = params.pop("mode", Job.Mode.CONTINUE)
    job = Job(
        program_id=program_id,
        operation=Job.Operation.IMPORT,
        kind=kind,
        dry_run=dry_run,
        mode=mode,
        params=params,
        phase=Job.Phase.VALIDATE if dry_run or mode == Job.Mode.ALL_OR_NOTHING else Job.Phase.APPLY,
        chunk_size=settings.JOBS_CHUNK_SIZE,
        input_name=filename[:255],
        **actor.as_fields("started_by"),
        started_by_label=actor.label[:200],
    )
    chunks = iter(chunks)
    head = next(chunks, b"")
    fmt = files.detect_format(head[:4096])
    try:
        job.input_file = files.save_input(job.storage_key, _prepend(head, chunks), fmt)
        job.input_format = fmt
        check_input(import_kind, job.input_file, fmt, params)
    except Exception:
        files.delete_job_files(job.storage_key)
        raise
    job.save()
    transaction.on_commit(lambda: _dispatch(job.pk))
    return job


def _prepend(head: bytes, rest: Iterable[bytes]) -> Iterable[bytes]:
    yield head
    yield from rest


@transaction.atomic
def export_job_create(*, program_id: int, kind: str, params: dict[str, Any], actor: Actor) -> Job:
    """Queue an export; ``params`` are validated ones (``validate_export_params``)."""
    export_kind_get(kind)
    params = dict(params)
    fmt = params.pop("format", files.CSV)
    job = Job.objects.create(
        program_id=program_id,
        operation=Job.Operation.EXPORT,
        kind=kind,
        params=params,
        chunk_size=settings.JOBS_CHUNK_SIZE,
        result_format=fmt,
        **actor.as_fields("started_by"),
        started_by_label=actor.label[:200],
    )
    transaction.on_commit(lambda: _dispatch(job.pk))
    return job


def _dispatch(job_id: int) -> None:
    from .tasks import QUEUE, job_run

    job_run.apply_async(args=[job_id], queue=QUEUE)


@transaction.atomic
def job_cancel(*, job: Job, actor: Actor) -> Job:
    """Ask a job to stop: a queued job is cancelled at once; a running one stops before
    its next chunk (what its committed chunks did stays done)."""
    # NO KEY: never conflicts with the key-share locks that runners' chunk inserts take on
    # the job row (their foreign-key checks), so a cancel does not queue behind them.
    job = Job.objects.select_for_update(no_key=True).get(pk=job.pk)
    if job.is_final:
        raise JobFinishedError(f"Job {job.pk} is already {job.status}.", status_now=job.status)
    job.cancel_requested_at = job.cancel_requested_at or timezone.now()
    job.save(update_fields=["cancel_requested_at"])
    logger.info("Job %s: cancel requested by %s", job.pk, actor.label)
    if job.status == Job.Status.QUEUED:
        # Nothing runs yet: the worker that picks the message up will see it is final.
        from .engine import finish

        finish(job, status=Job.Status.CANCELLED)
        job.refresh_from_db()
    return job


def jobs_requeue_stale(*, stale_after: timedelta | None = None, now: datetime | None = None) -> list[int]:
    """Re-queue jobs whose worker died: running ones with no heartbeat for
    ``stale_after`` (``JOBS_STALE_SECONDS``), and queued ones never picked up for as long
    (the broker lost the message). Running a job twice is safe (chunks are claimed), so
    a slow worker taken for dead costs time, not correctness."""
    now = now or timezone.now()
    stale_after = stale_after if stale_after is not None else timedelta(seconds=settings.JOBS_STALE_SECONDS)
    cutoff = now - stale_after
    running = Job.objects.filter(status=Job.Status.RUNNING, heartbeat_at__lte=cutoff)
    queued = Job.objects.filter(status=Job.Status.QUEUED, created_at__lte=cutoff)
    ids = sorted(set(running.values_list("pk", flat=True)) | set(queued.values_list("pk", flat=True)))
    for job_id in ids:
        Job.objects.filter(pk=job_id).update(heartbeat_at=now)
        logger.warning("Job %s looks abandoned by its worker; re-queued", job_id)
        _dispatch(job_id)
    return ids


def jobs_purge(*, now: datetime | None = None) -> int:
    """Delete the files and report rows of finished jobs past ``expires_at``, and files
    left by uploads whose job was never created. The job rows stay (history)."""
    now = now or timezone.now()
    purged = 0
    for job in Job.objects.filter(expires_at__lte=now, purged_at__isnull=True).only("pk", "storage_key"):
        files.delete_job_files(job.storage_key)
        with transaction.atomic():
            job.chunks.all().delete()
            Job.objects.filter(pk=job.pk).update(purged_at=now, input_file="", result_file="")
        purged += 1
    root = files.storage_root()
    if root.is_dir():
        known = set(Job.objects.values_list("storage_key", flat=True))
        orphan_before = (now - timedelta(hours=settings.JOBS_FILE_RETENTION_HOURS)).timestamp()
        for directory in root.iterdir():
            if (
                directory.is_dir()
                and directory.name not in known
                and directory.stat().st_mtime < orphan_before
            ):
                files.delete_job_files(directory.name)
    return purged
