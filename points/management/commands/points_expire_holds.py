from django.core.management.base import BaseCommand

from membership_site.actors import Actor
from points import upkeep

from ._progress import progress_for


class Command(BaseCommand):
    help = "Release holds past their expiry, giving the points back (safe to interrupt and re-run)."

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=500)
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **options):
        summary = upkeep.points_expire_holds(
            actor=Actor.system("command:points_expire_holds"),
            batch_size=options["batch_size"],
            progress=progress_for(self, options, "Releasing"),
        )
        self.stdout.write(
            self.style.SUCCESS(f"Released {summary['holds']} expired holds ({summary['points']} points).")
        )
