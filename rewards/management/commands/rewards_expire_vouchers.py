from django.core.management.base import BaseCommand
from tqdm import tqdm

from membership_site.actors import Actor
from rewards import services


class Command(BaseCommand):
    help = "Mark issued vouchers past their validity as expired (safe to interrupt and re-run)."

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=500)
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **options):
        def progress(batches):
            if options["no_progress"]:
                return batches
            return tqdm(batches, desc="Expiring", unit="batch", file=self.stderr._out, leave=False)

        expired = services.vouchers_expire(
            actor=Actor.system("command:rewards_expire_vouchers"),
            batch_size=options["batch_size"],
            progress=progress,
        )
        self.stdout.write(self.style.SUCCESS(f"Expired {expired} vouchers."))
