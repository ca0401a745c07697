from django.core.management.base import BaseCommand, CommandError

from jobs import engine
from jobs.models import Job


class Command(BaseCommand):
    help = (
        "Run (or resume) a queued or interrupted job in this process, as a worker would. "
        "For operators when no worker is available; safe while a worker runs it too."
    )

    def add_arguments(self, parser):
        parser.add_argument("job_id", type=int)

    def handle(self, *args, job_id: int, **options):
        if not Job.objects.filter(pk=job_id).exists():
            raise CommandError(f"No job {job_id}.")
        engine.run(job_id)
        job = Job.objects.get(pk=job_id)
        self.stdout.write(f"Job {job.pk}: {job.status}, {job.processed_rows} rows, {job.counts}.")
