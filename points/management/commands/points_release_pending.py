from django.core.management.base import BaseCommand

from membership_site.actors import Actor
from points import upkeep

from ._progress import progress_for


class Command(BaseCommand):
    help = "Make pending points whose date has come available (safe to interrupt and re-run)."

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=500)
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **options):
        summary = upkeep.points_release_pending(
            actor=Actor.system("command:points_release_pending"),
            batch_size=options["batch_size"],
            progress=progress_for(self, options, "Activating"),
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"{summary['points']} pending points became available in {summary['accounts']} accounts."
            )
        )
