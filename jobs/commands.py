"""Bases for the management commands that run an import or an export job in the command's
process (``import_points``, ``export_transactions``; ``import_members`` works the same
way). The job is created by ``jobs.services`` exactly as the API creates it (same checks,
same chunks, events and report) and run by ``jobs.engine`` with a progress bar.

Exit codes of an import command: 0 every row applied (or unchanged), 1 some rows failed
(listed, and the full report with ``--report``), 2 the file or the parameters cannot be
imported. An export command exits 0 once the file is written, 2 otherwise.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from rest_framework.exceptions import ValidationError
from tqdm import tqdm

from membership_site.actors import Actor
from membership_site.errors import DomainError

from . import engine, files, registry, services
from .models import Job

_SHOWN_FAILURES = 20


def _readable(error: Exception) -> str:
    if isinstance(error, ValidationError) and isinstance(error.detail, dict):
        return "; ".join(
            f"{field}: {' '.join(map(str, messages))}" for field, messages in error.detail.items()
        )
    return str(getattr(error, "detail", error))


def program_for(code: str | None) -> Any:
    """The program named by ``--program``; without it, the only program there is. The
    lookup is the programs app's (``registry.register_program_lookup``)."""
    program = registry.program_lookup(code or None)
    if program is None:
        if code:
            raise CommandError(f"No program '{code}'.", returncode=2)
        raise CommandError("Give --program CODE (there is not exactly one program).", returncode=2)
    return program


def _progress_bar(command: BaseCommand, job: Job, description: str, passes: int = 1):
    """A tqdm bar on stderr fed by ``engine.run(on_progress=...)``; its total is read from
    the job once the engine has counted the rows."""
    bar = tqdm(unit="row", desc=description, file=command.stderr, disable=None)

    def progress(rows: int) -> None:
        if bar.total is None:
            bar.total = (Job.objects.values_list("total_rows", flat=True).get(pk=job.pk) or 0) * passes
            bar.refresh()
        bar.update(rows)

    return bar, progress


class ImportCommand(BaseCommand):
    """``manage.py <command> FILE --program CODE [--match] [--mode] [--dry-run]
    [--report PATH] [--queue]`` for the import kind ``kind``."""

    kind: str = ""

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path, help="CSV (UTF-8, ',' or ';') or JSON file.")
        parser.add_argument("--program", help="Program code (optional when there is only one).")
        parser.add_argument(
            "--match",
            choices=["number", "email", "external_ref"],
            default="number",
            help="The column that finds members (default number).",
        )
        parser.add_argument("--mode", choices=[mode.value for mode in Job.Mode], default=Job.Mode.CONTINUE)
        parser.add_argument("--dry-run", action="store_true", help="Validate and report; change nothing.")
        parser.add_argument("--report", type=Path, help="Write the row report (CSV) here.")
        parser.add_argument(
            "--queue", action="store_true", help="Queue the job for a worker instead of running it here."
        )

    def params(self, options: dict[str, Any]) -> dict[str, Any]:
        """The job's parameters from the command line (before validation)."""
        return {"match": options["match"], "mode": options["mode"], "dry_run": options["dry_run"]}

    def handle(self, *args, file: Path, program: str | None, report: Path | None, queue: bool, **options):
        target = program_for(program)
        if not file.is_file():
            raise CommandError(f"No file {file}.", returncode=2)
        kind = services.import_kind_get(self.kind)
        try:
            params = services.validate_import_params(kind, self.params(options), program_id=target.pk)
            with open(file, "rb") as handle:
                job = services.import_job_create(
                    program_id=target.pk,
                    kind=kind.name,
                    chunks=iter(lambda: handle.read(1 << 20), b""),
                    filename=file.name,
                    params=params,
                    actor=Actor.system(f"command:{self.command_name()}"),
                )
        except (DomainError, ValidationError) as error:
            self.stderr.write(f"The file cannot be imported: {_readable(error)}")
            sys.exit(2)
        if queue:
            self.stdout.write(f"Job {job.pk} queued; follow it in the admin or at /api/v1/jobs/{job.pk}.")
            return
        passes = 2 if job.mode == Job.Mode.ALL_OR_NOTHING and not job.dry_run else 1
        bar, progress = _progress_bar(self, job, f"Importing {file.name}", passes)
        with bar:
            engine.run(job.pk, on_progress=progress)
        job.refresh_from_db()
        self._summary(job, report)
        if job.status == Job.Status.FAILED and job.error_code:
            sys.exit(2)
        if job.failed_count:
            sys.exit(1)

    def command_name(self) -> str:
        return self.__module__.rsplit(".", 1)[-1]

    def _summary(self, job: Job, report: Path | None) -> None:
        counts = job.counts
        self.stdout.write(
            f"Job {job.pk} {job.status}{' (dry run: nothing changed)' if job.dry_run else ''}: "
            f"{job.processed_rows} rows, {counts['created']} created, {counts['updated']} updated, "
            f"{counts['unchanged']} unchanged, {counts['failed']} failed."
        )
        if job.error_code:
            self.stdout.write(f"Error: {job.error_code}: {job.error_detail}")
        failed = [line for line in engine.report_rows(job) if line[1] == "failed"]
        for line in failed[:_SHOWN_FAILURES]:
            self.stdout.write(f"  row {line[0]}: {line[2]} {line[4]}")
        if len(failed) > _SHOWN_FAILURES:
            self.stdout.write(f"  ... and {len(failed) - _SHOWN_FAILURES} more failed rows.")
        if report:
            with open(report, "w", encoding="utf-8", newline="") as out:
                for piece in engine.report_csv(job):
                    out.write(piece)
            self.stdout.write(f"Report written to {report}.")


class ExportCommand(BaseCommand):
    """``manage.py <command> [--program CODE] [--format csv|json] [--output PATH]`` plus
    the kind's own options (``export_params``) for the export kind ``kind``."""

    kind: str = ""

    def add_arguments(self, parser):
        parser.add_argument("--program", help="Program code (optional when there is only one).")
        parser.add_argument("--format", choices=[files.CSV, files.JSON], default=files.CSV)
        parser.add_argument("--output", type=Path, help="Where to write the file (default: a name in .).")

    def export_params(self, options: dict[str, Any]) -> dict[str, Any]:
        """The kind's parameters from the command line (before validation)."""
        return {}

    def default_output(self, program: Any, params: dict[str, Any], fmt: str) -> Path:
        return Path(f"{self.kind}-{program.code}.{fmt}")

    def handle(self, *args, program: str | None, output: Path | None, **options):
        target = program_for(program)
        kind = services.export_kind_get(self.kind)
        try:
            params = services.validate_export_params(
                kind, {"format": options["format"], **self.export_params(options)}, program_id=target.pk
            )
        except ValidationError as error:
            raise CommandError(_readable(error), returncode=2) from None
        output = output or self.default_output(target, params, params.get("format", files.CSV))
        job = services.export_job_create(
            program_id=target.pk, kind=kind.name, params=params, actor=Actor.system(f"command:{self.kind}")
        )
        started = time.monotonic()
        bar, progress = _progress_bar(self, job, f"Exporting {self.kind}")
        with bar:
            engine.run(job.pk, on_progress=progress)
            job.refresh_from_db()
            bar.update(max(job.processed_rows - bar.n, 0))
        if job.status != Job.Status.SUCCEEDED or not job.result_file:
            self.stderr.write(f"Job {job.pk} {job.status}: {job.error_code} {job.error_detail}".rstrip())
            sys.exit(2)
        shutil.copyfile(files.path_of(job.result_file), output)
        self.stdout.write(
            f"Job {job.pk} succeeded: {job.result_rows} rows written to {output} "
            f"in {time.monotonic() - started:.1f} s."
        )
