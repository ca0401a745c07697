from django.conf import settings
from django.core.management.base import BaseCommand

from points import upkeep

from ._progress import progress_for


class Command(BaseCommand):
    help = (
        "Send points.expiring events for points expiring soon, once per member, currency, "
        "expiry date and offset (POINTS_EXPIRY_WARNING_DAYS, e.g. 30,7)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--days", type=int, nargs="+", help="Offsets in days (default: POINTS_EXPIRY_WARNING_DAYS)."
        )
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **options):
        offsets = options["days"] or settings.POINTS_EXPIRY_WARNING_DAYS
        summary = upkeep.points_expiry_warnings(
            offsets=offsets, progress=progress_for(self, options, "Warning")
        )
        self.stdout.write(
            self.style.SUCCESS(f"Sent {summary['warnings']} expiry warnings ({summary['points']} points).")
        )
