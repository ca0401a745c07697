import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from rest_framework.exceptions import ValidationError
from tqdm import tqdm

from jobs import engine, services
from jobs.models import Job
from membership_site.actors import Actor
from membership_site.errors import DomainError
from programs.models import Program

from ...bulk import ACTIONS, MATCH_FIELDS


class Command(BaseCommand):
    help = (
        "Import members from a CSV or JSON file into a program, through the same job as "
        "POST /api/v1/imports/members (same validation, chunks, events and report), run in "
        "this process. Exits 1 when rows failed, 2 when the file could not be imported."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)
        parser.add_argument("--program", required=True, help="Program code.")
        parser.add_argument("--match", choices=MATCH_FIELDS, default="number")
        parser.add_argument("--action", choices=ACTIONS, default="upsert")
        parser.add_argument("--mode", choices=[m.value for m in Job.Mode], default=Job.Mode.CONTINUE)
        parser.add_argument("--dry-run", action="store_true", help="Validate and report; change nothing.")
        parser.add_argument("--report", type=Path, help="Write the row report (CSV) here.")
        parser.add_argument(
            "--queue", action="store_true", help="Queue the job for a worker instead of running it here."
        )

    def handle(self, *args, file: Path, program: str, report: Path | None, queue: bool, **options):
        target = Program.objects.filter(code=program).first()
        if target is None:
            raise CommandError(f"No program '{program}'.")
        if not file.is_file():
            raise CommandError(f"No file {file}.")
        kind = services.import_kind_get("members")
        raw = {"match": options["match"], "action": options["action"], "mode": options["mode"]}
        raw["dry_run"] = options["dry_run"]
        try:
            params = services.validate_import_params(kind, raw)
            with open(file, "rb") as handle:
                job = services.import_job_create(
                    program_id=target.pk,
                    kind="members",
                    chunks=iter(lambda: handle.read(1 << 20), b""),
                    filename=file.name,
                    params=params,
                    actor=Actor.system("command:import_members"),
                )
        except (DomainError, ValidationError) as error:
            self.stderr.write(f"The file cannot be imported: {getattr(error, 'detail', error)}")
            sys.exit(2)
        if queue:
            self.stdout.write(f"Job {job.pk} queued; follow it in the admin or at /api/v1/jobs/{job.pk}.")
            return

        passes = 2 if job.mode == Job.Mode.ALL_OR_NOTHING and not job.dry_run else 1
        with tqdm(unit="row", desc=f"Importing {file.name}", file=self.stderr, disable=None) as bar:

            def progress(rows: int) -> None:
                if bar.total is None:
                    bar.total = (
                        Job.objects.values_list("total_rows", flat=True).get(pk=job.pk) or 0
                    ) * passes
                    bar.refresh()
                bar.update(rows)

            engine.run(job.pk, on_progress=progress)
        job.refresh_from_db()
        self._summary(job, report)
        if job.status == Job.Status.FAILED and job.error_code:
            sys.exit(2)
        if job.failed_count:
            sys.exit(1)

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
        for line in failed[:20]:
            self.stdout.write(f"  row {line[0]}: {line[2]} {line[4]}")
        if len(failed) > 20:
            self.stdout.write(f"  ... and {len(failed) - 20} more failed rows.")
        if report:
            with open(report, "w", encoding="utf-8", newline="") as out:
                for piece in engine.report_csv(job):
                    out.write(piece)
            self.stdout.write(f"Report written to {report}.")
