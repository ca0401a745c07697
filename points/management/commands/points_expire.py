from datetime import UTC, date, datetime

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from membership_site.actors import Actor
from points import upkeep
from programs.models import Program

from ._progress import progress_for


class Command(BaseCommand):
    help = (
        "Expire points that are due: lots past their expiry date and the points of accounts "
        "inactive for longer than their currency allows. Works a batch of accounts per database "
        "transaction (each batch commits whole or not at all), so it is safe to interrupt and to "
        "run again."
    )

    def add_arguments(self, parser):
        when = parser.add_mutually_exclusive_group()
        when.add_argument(
            "--date",
            type=date.fromisoformat,
            help="Expire lots whose last valid day is before this date (YYYY-MM-DD), in each "
            "program's timezone. Default: everything due now. Never later than now.",
        )
        when.add_argument("--at", type=datetime.fromisoformat, help="An ISO instant instead of a date.")
        parser.add_argument("--program", help="Only this program (code).")
        parser.add_argument(
            "--batch-size",
            type=int,
            default=500,
            help="Accounts expired per database transaction (default 500).",
        )
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **options):
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1.")
        program = None
        if options["program"]:
            program = Program.objects.filter(code=options["program"]).first()
            if program is None:
                raise CommandError(f"No program '{options['program']}'.")
        at = options["at"]
        if at is not None and timezone.is_naive(at):
            at = timezone.make_aware(at, UTC)
        summary = upkeep.points_expire(
            actor=Actor.system("command:points_expire"),
            at=at,
            on_date=options["date"],
            program=program,
            batch_size=options["batch_size"],
            progress=progress_for(self, options, "Expiring"),
        )
        per_currency = ", ".join(f"{code}: {points}" for code, points in sorted(summary.by_currency.items()))
        self.stdout.write(
            self.style.SUCCESS(
                f"Checked {summary.accounts} accounts; {summary.transactions} expiry transactions, "
                f"{summary.points} points expired" + (f" ({per_currency})." if per_currency else ".")
            )
        )
