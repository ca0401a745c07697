from django.core.management.base import BaseCommand

from jobs import services


class Command(BaseCommand):
    help = (
        "Delete the files and reports of jobs past their retention (JOBS_FILE_RETENTION_HOURS). "
        "Same work as the periodic task jobs.purge."
    )

    def handle(self, *args, **options):
        purged = services.jobs_purge()
        self.stdout.write(f"Purged the files and reports of {purged} job(s).")
