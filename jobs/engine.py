"""Running a job: what a worker does with ``jobs.tasks.job_run``.

Imports are cut into chunks of ``job.chunk_size`` rows. Each chunk runs in one
transaction that first claims the chunk (inserting its ``JobChunk``, unique per job,
phase and index), then processes its rows through the kind, stores the rows' report and
adds to the job's progress. So a worker that dies loses at most the chunk it was in, and
whoever runs the job next (the same message redelivered, or the sweeper's re-queue)
skips the committed chunks; two workers on one job never apply a chunk twice.

- ``continue`` (default): bad rows are reported, good rows are written.
- dry run: every chunk is processed and rolled back; only the report is kept.
- ``all_or_nothing``: a dry run first (phase ``validate``); if no row failed, all rows
  are applied in one transaction (phase ``apply``), else nothing is.

Exports stream rows to a file (never all in memory) and are simply redone from the start
when restarted.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from datetime import timedelta
from itertools import islice
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from membership_site.actors import Actor, acting_as
from webhooks.services import event_record

from . import files, registry
from .errors import FileUnreadableError
from .models import Job, JobChunk
from .registry import ChunkContext, ImportKind, ImportRow, RowError, RowResult

logger = logging.getLogger("jobs")

_COUNT_FIELDS = {
    "created": "created_count",
    "updated": "updated_count",
    "unchanged": "unchanged_count",
    "failed": "failed_count",
}


class _Rollback(Exception):
    """Raised to roll back a dry-run chunk or a failed all-or-nothing apply."""


def job_actor(job: Job) -> Actor:
    return Actor(
        user_id=job.started_by_user_id,
        integration_id=job.started_by_integration_id,
        label=job.started_by_label or "system",
    )


def run(job_id: int, *, on_progress: Callable[[int], None] | None = None) -> None:
    """Run (or resume) a job until it is finished or cancelled. Safe to call again for
    the same job at any time: a finished job is left alone. ``on_progress(rows)`` is
    called after each committed chunk (commands show a progress bar with it)."""
    job = _claim(job_id)
    if job is None:
        return
    job.on_progress = on_progress or (lambda rows: None)
    try:
        with acting_as(job_actor(job)):
            if job.operation == Job.Operation.IMPORT:
                _run_import(job)
            else:
                _run_export(job)
    except FileUnreadableError as error:
        finish(job, status=Job.Status.FAILED, error_code=error.code, error_detail=error.detail)
    except Exception:
        logger.exception("Job %s (%s %s) failed", job.pk, job.operation, job.kind)
        finish(
            job,
            status=Job.Status.FAILED,
            error_code="internal_error",
            error_detail="The job stopped on an unexpected error; the worker log has the details.",
        )


def _claim(job_id: int) -> Job | None:
    with transaction.atomic():
        job = Job.objects.select_for_update(no_key=True).filter(pk=job_id).first()
        if job is None or job.is_final:
            return None
        now = timezone.now()
        if job.status == Job.Status.QUEUED:
            job.status = Job.Status.RUNNING
            job.started_at = now
        job.heartbeat_at = now
        job.attempts += 1
        job.save(update_fields=["status", "started_at", "heartbeat_at", "attempts"])
    if job.cancel_requested_at:
        finish(job, status=Job.Status.CANCELLED)
        return None
    return job


def _cancel_requested(job_id: int) -> bool:
    return Job.objects.filter(pk=job_id, cancel_requested_at__isnull=False).exists()


def batched(iterable: Iterable, size: int) -> Iterator[list]:
    iterator = iter(iterable)
    while batch := list(islice(iterator, size)):
        yield batch


# --- Imports ------------------------------------------------------------------------------


def _reader(job: Job) -> files.RowReader:
    return files.RowReader(files.path_of(job.input_file), job.input_format)


def prescan(
    rows: Iterable[ImportRow | tuple[int, str]], kind: ImportKind, params: dict
) -> tuple[int, set[int]]:
    """Count the rows and find those whose key an earlier row already had. Computed from
    the file alone, so a resumed job finds the same rows."""
    total = 0
    seen: set[tuple[str, str]] = set()
    duplicates: set[int] = set()
    for row in rows:
        total += 1
        if kind.row_keys is None or not isinstance(row, ImportRow):
            continue
        keys = set(kind.row_keys(row.data, params))
        if keys & seen:
            duplicates.add(row.number)
        seen |= keys
    return total, duplicates


def process_rows(
    kind: ImportKind, batch: list[ImportRow | tuple[int, str]], ctx: ChunkContext, duplicates: set[int]
) -> list[RowResult]:
    """One chunk's results: unreadable and duplicate rows fail here, the others go to
    the kind (rolled back when ``ctx.dry_run``)."""
    results: dict[int, RowResult] = {}
    todo: list[ImportRow] = []
    for row in batch:
        if not isinstance(row, ImportRow):
            number, message = row
            results[number] = RowResult.failed(number, RowError("bad_format", message))
        elif row.number in duplicates:
            results[row.number] = RowResult.failed(
                row.number,
                RowError("duplicate_in_file", "An earlier row of this file is about the same record."),
            )
        else:
            todo.append(row)
    if todo:
        processed: list[RowResult] = []
        if ctx.dry_run:
            try:
                with transaction.atomic():
                    processed = kind.process(todo, ctx)
                    raise _Rollback
            except _Rollback:
                pass
        else:
            processed = kind.process(todo, ctx)
        if [result.row for result in processed] != [row.number for row in todo]:
            raise RuntimeError(f"Import kind {kind.name} did not return one result per row, in order.")
        results.update((result.row, result) for result in processed)
    return [results[number] for number in sorted(results)]


def _report(results: list[RowResult]) -> list[list[Any]]:
    return [
        [
            result.row,
            result.outcome,
            [[error.code, error.field, error.message] for error in result.errors],
            result.object_id,
            result.object_ref,
        ]
        for result in results
    ]


def _chunk_counts(results: Iterable[RowResult]) -> dict[str, int]:
    counts = Counter(result.outcome for result in results)
    return {field: counts.get(outcome, 0) for outcome, field in _COUNT_FIELDS.items()}


def _row_number(row: ImportRow | tuple[int, str]) -> int:
    return row.number if isinstance(row, ImportRow) else row[0]


def _context(job: Job, *, dry_run: bool) -> ChunkContext:
    return ChunkContext(
        program_id=job.program_id, actor=job_actor(job), params=job.params, dry_run=dry_run, job_id=job.pk
    )


def _run_import(job: Job) -> None:
    kind = registry.import_kind(job.kind)
    if kind is None:
        raise FileUnreadableError(f"No import kind '{job.kind}' is registered.", code="unknown_job_kind")
    total, duplicates = prescan(_reader(job).rows(), kind, job.params)
    Job.objects.filter(pk=job.pk).update(total_rows=total, heartbeat_at=timezone.now())
    job.total_rows = total

    all_or_nothing = job.mode == Job.Mode.ALL_OR_NOTHING and not job.dry_run
    if job.dry_run or (all_or_nothing and job.phase == Job.Phase.VALIDATE):
        if not _run_chunks(job, kind, Job.Phase.VALIDATE, _context(job, dry_run=True), duplicates):
            finish(job, status=Job.Status.CANCELLED)
            return
        if job.dry_run:
            finish(job)
            return
        if Job.objects.values_list("failed_count", flat=True).get(pk=job.pk):
            _mark_not_applied(job, failed_rows=None)
            finish(job, status=Job.Status.FAILED)
            return
        Job.objects.filter(pk=job.pk).update(phase=Job.Phase.APPLY, heartbeat_at=timezone.now())
        job.phase = Job.Phase.APPLY
    if all_or_nothing:
        _apply_all(job, kind, duplicates)
        return
    if not _run_chunks(job, kind, Job.Phase.APPLY, _context(job, dry_run=False), duplicates):
        finish(job, status=Job.Status.CANCELLED)
        return
    finish(job)


def _run_chunks(job: Job, kind: ImportKind, phase: str, ctx: ChunkContext, duplicates: set[int]) -> bool:
    """Process the chunks not committed yet; False when the job was cancelled."""
    done = set(JobChunk.objects.filter(job=job, phase=phase).values_list("index", flat=True))
    for index, batch in enumerate(batched(_reader(job).rows(), job.chunk_size)):
        if index in done:
            continue
        if _cancel_requested(job.pk):
            return False
        with transaction.atomic():
            try:
                with transaction.atomic():
                    chunk = JobChunk.objects.create(
                        job=job,
                        phase=phase,
                        index=index,
                        first_row=_row_number(batch[0]),
                        last_row=_row_number(batch[-1]),
                    )
            except IntegrityError:
                continue  # another worker committed this chunk meanwhile
            results = process_rows(kind, batch, ctx, duplicates)
            counts = _chunk_counts(results)
            JobChunk.objects.filter(pk=chunk.pk).update(report=_report(results), **counts)
            Job.objects.filter(pk=job.pk).update(
                processed_rows=F("processed_rows") + len(batch),
                heartbeat_at=timezone.now(),
                **{field: F(field) + value for field, value in counts.items()},
            )
        job.on_progress(len(batch))
    return True


def _apply_all(job: Job, kind: ImportKind, duplicates: set[int]) -> None:
    """All-or-nothing, second phase: every row in one transaction."""
    ctx = _context(job, dry_run=False)
    failures: dict[int, RowResult] = {}
    try:
        with transaction.atomic():
            totals: Counter[str] = Counter()
            processed = 0
            for index, batch in enumerate(batched(_reader(job).rows(), job.chunk_size)):
                # Blocks while another worker holds the same claim; fails once it committed.
                try:
                    with transaction.atomic():
                        chunk = JobChunk.objects.create(
                            job=job,
                            phase=Job.Phase.APPLY,
                            index=index,
                            first_row=_row_number(batch[0]),
                            last_row=_row_number(batch[-1]),
                        )
                except IntegrityError:
                    raise _AlreadyApplied from None
                results = process_rows(kind, batch, ctx, duplicates)
                failures.update((result.row, result) for result in results if result.outcome == "failed")
                counts = _chunk_counts(results)
                JobChunk.objects.filter(pk=chunk.pk).update(report=_report(results), **counts)
                totals.update(counts)
                processed += len(batch)
                job.on_progress(len(batch))
            if failures:
                raise _Rollback
            Job.objects.filter(pk=job.pk).update(
                processed_rows=processed,
                heartbeat_at=timezone.now(),
                **{field: totals[field] for field in _COUNT_FIELDS.values()},
            )
    except _AlreadyApplied:
        pass
    except _Rollback:
        # Valid when checked, failing when applied (a concurrent change, or a row that
        # depends on another): report the failures; nothing was written.
        _mark_not_applied(job, failed_rows=failures)
        Job.objects.filter(pk=job.pk).update(phase=Job.Phase.VALIDATE)
        finish(job, status=Job.Status.FAILED)
        return
    finish(job)


class _AlreadyApplied(Exception):
    pass


def _mark_not_applied(job: Job, *, failed_rows: dict[int, RowResult] | None) -> None:
    """Rewrite the validation report of a failed all-or-nothing job: failed rows keep
    their errors (or get those of ``failed_rows``), the others become ``not_applied``."""
    with transaction.atomic():
        failed_total = 0
        for chunk in JobChunk.objects.select_for_update().filter(job=job, phase=Job.Phase.VALIDATE):
            report = []
            for row, outcome, errors, object_id, object_ref in chunk.report:
                if failed_rows is not None:
                    result = failed_rows.get(row)
                    if result is not None:
                        outcome, errors = "failed", _report([result])[0][2]
                    elif outcome == "failed":
                        outcome, errors = "not_applied", []
                if outcome != "failed":
                    outcome, object_id = "not_applied", None
                report.append([row, outcome, errors, object_id, object_ref])
            failed = sum(1 for entry in report if entry[1] == "failed")
            failed_total += failed
            JobChunk.objects.filter(pk=chunk.pk).update(
                report=report, created_count=0, updated_count=0, unchanged_count=0, failed_count=failed
            )
        Job.objects.filter(pk=job.pk).update(
            created_count=0, updated_count=0, unchanged_count=0, failed_count=failed_total
        )


# --- Exports ------------------------------------------------------------------------------


def _run_export(job: Job) -> None:
    kind = registry.export_kind(job.kind)
    if kind is None:
        raise FileUnreadableError(f"No export kind '{job.kind}' is registered.", code="unknown_job_kind")
    total = kind.count(job.program_id, job.params)
    Job.objects.filter(pk=job.pk).update(total_rows=total, processed_rows=0, heartbeat_at=timezone.now())
    relative, path = files.result_path(job.storage_key, job.result_format)
    partial = path.with_name(path.name + ".part")
    written = 0
    with open(partial, "w", encoding="utf-8", newline="") as out:
        writer = _CsvWriter(out, kind.column_names) if job.result_format == files.CSV else _JsonWriter(out)
        for written, row in enumerate(kind.rows(job.program_id, job.params), start=1):
            writer.write(row)
            if written % job.chunk_size == 0:
                out.flush()
                Job.objects.filter(pk=job.pk).update(processed_rows=written, heartbeat_at=timezone.now())
                job.on_progress(job.chunk_size)
                if _cancel_requested(job.pk):
                    break
        else:
            writer.close()
            partial.replace(path)
            Job.objects.filter(pk=job.pk).update(
                processed_rows=written,
                result_file=relative,
                result_rows=written,
                total_rows=max(total, written),
            )
            finish(job)
            return
    partial.unlink(missing_ok=True)
    finish(job, status=Job.Status.CANCELLED)


class _CsvWriter:
    def __init__(self, out, columns: tuple[str, ...]) -> None:
        self.columns = columns
        self.writer = csv.writer(out)
        self.writer.writerow(columns)

    def write(self, row: dict[str, Any]) -> None:
        self.writer.writerow([_csv_value(row.get(column)) for column in self.columns])

    def close(self) -> None:
        pass


def _csv_value(value: Any) -> str:
    if value.__class__ is str:  # most cells: no further checks
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return files.LIST_SEPARATOR.join(str(item) for item in value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


class _JsonWriter:
    def __init__(self, out) -> None:
        self.out = out
        self.first = True
        out.write("[")

    def write(self, row: dict[str, Any]) -> None:
        self.out.write("\n" if self.first else ",\n")
        self.out.write(json.dumps(row, cls=DjangoJSONEncoder, ensure_ascii=False))
        self.first = False

    def close(self) -> None:
        self.out.write("\n]\n")


# --- Finishing ------------------------------------------------------------------------------


def job_payload(job: Job) -> dict[str, Any]:
    return {
        "id": job.pk,
        "operation": job.operation,
        "kind": job.kind,
        "status": job.status,
        "dry_run": job.dry_run,
        "mode": job.mode,
        "total_rows": job.total_rows,
        "processed_rows": job.processed_rows,
        "counts": job.counts,
        "error_code": job.error_code or None,
        "finished_at": job.finished_at,
    }


def finish(job: Job, *, status: str | None = None, error_code: str = "", error_detail: str = "") -> None:
    with transaction.atomic():
        job = Job.objects.select_for_update(no_key=True).get(pk=job.pk)
        if job.is_final:
            return
        if status is None:
            done = job.created_count + job.updated_count + job.unchanged_count
            if not job.failed_count:
                status = Job.Status.SUCCEEDED
            else:
                status = Job.Status.PARTIALLY_SUCCEEDED if done else Job.Status.FAILED
        now = timezone.now()
        job.status = status
        job.finished_at = now
        job.heartbeat_at = now
        job.expires_at = now + timedelta(hours=settings.JOBS_FILE_RETENTION_HOURS)
        job.error_code = error_code
        job.error_detail = error_detail
        job.save(
            update_fields=[
                "status",
                "finished_at",
                "heartbeat_at",
                "expires_at",
                "error_code",
                "error_detail",
            ]
        )
        event_record(program_id=job.program_id, type="job.finished", data={"job": job_payload(job)})
    logger.info("Job %s (%s %s) finished: %s %s", job.pk, job.operation, job.kind, status, job.counts)


# --- Reports -------------------------------------------------------------------------------

REPORT_COLUMNS = (
    "row",
    "outcome",
    "error_codes",
    "error_fields",
    "error_messages",
    "object_id",
    "object_ref",
)


def report_rows(job: Job) -> Iterator[list[Any]]:
    """The report's lines (without header), in row order, reading a few chunks at a time."""
    chunks = (
        JobChunk.objects.filter(job=job, phase=job.phase).order_by("index").values_list("report", flat=True)
    )
    for report in chunks.iterator(chunk_size=20):
        for row, outcome, errors, object_id, object_ref in report:
            yield [
                row,
                outcome,
                "|".join(code for code, _field, _message in errors),
                "|".join(field or "" for _code, field, _message in errors),
                " | ".join(message for _code, _field, message in errors),
                "" if object_id is None else object_id,
                object_ref or "",
            ]


def report_csv(job: Job) -> Iterator[str]:
    """The report as CSV text, in pieces of about 64 KiB (for a streaming response)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(REPORT_COLUMNS)
    for line in report_rows(job):
        writer.writerow(line)
        if out.tell() > 64 * 1024:
            yield out.getvalue()
            out.seek(0)
            out.truncate()
    yield out.getvalue()


def preview(
    *, kind: ImportKind, program_id: int, reader: files.RowReader, params: dict, actor: Actor, limit: int
) -> tuple[list[tuple[ImportRow | tuple[int, str], RowResult]], int]:
    """A dry run of the first ``limit`` rows, done in the request (the admin's preview
    step): the same prescan and processing as a job, nothing written."""
    total, duplicates = prescan(reader.rows(), kind, params)
    ctx = ChunkContext(program_id=program_id, actor=actor, params=params, dry_run=True)
    shown: list[tuple[ImportRow | tuple[int, str], RowResult]] = []
    rows = list(islice(reader.rows(), limit))
    with acting_as(actor):
        for batch in batched(rows, settings.JOBS_CHUNK_SIZE):
            results = process_rows(kind, batch, ctx, duplicates)
            shown.extend(zip(batch, results, strict=True))
    return shown, total
