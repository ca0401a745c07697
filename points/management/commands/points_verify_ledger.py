from django.core.management.base import BaseCommand, CommandError

from points import upkeep
from programs.models import Program

from ._progress import progress_for


class Command(BaseCommand):
    help = (
        "Recompute every member account's balances and every lot's remainder from the "
        "entries, and check every transaction balances. Lists the differences and exits "
        "non-zero when there is any. Writes nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("--program", help="Only this program (code).")
        parser.add_argument("--batch-size", type=int, default=1000)
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **options):
        program = None
        if options["program"]:
            program = Program.objects.filter(code=options["program"]).first()
            if program is None:
                raise CommandError(f"No program '{options['program']}'.")
        differences = upkeep.points_verify_ledger(
            program=program,
            batch_size=options["batch_size"],
            progress=progress_for(self, options, "Verifying"),
        )
        for difference in differences:
            self.stdout.write(str(difference))
        if differences:
            raise CommandError(f"The ledger has {len(differences)} differences.")
        self.stdout.write(
            self.style.SUCCESS("The ledger is consistent: balances, lots and transactions match.")
        )
