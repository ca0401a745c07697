from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand

from jobs import services


class Command(BaseCommand):
    help = (
        "Re-queue jobs whose worker died: running jobs with no heartbeat for --stale-seconds "
        "(default JOBS_STALE_SECONDS) and queued jobs never picked up. Same work as the "
        "periodic task jobs.requeue_stale."
    )

    def add_arguments(self, parser):
        parser.add_argument("--stale-seconds", type=int, default=settings.JOBS_STALE_SECONDS)

    def handle(self, *args, stale_seconds: int, **options):
        ids = services.jobs_requeue_stale(stale_after=timedelta(seconds=stale_seconds))
        self.stdout.write(f"Re-queued {len(ids)} job(s){': ' + ', '.join(map(str, ids)) if ids else ''}.")
