"""Delete events past their retention (what the ``webhooks.events_purge`` beat task does)."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from webhooks import delivery
from webhooks.models import Event


class Command(BaseCommand):
    help = (
        "Delete events recorded more than EVENTS_RETENTION_DAYS ago (or --days), with their "
        "webhook deliveries and attempts, in batches."
    )

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=None, help="Override EVENTS_RETENTION_DAYS.")
        parser.add_argument("--batch-size", type=int, default=2000)

    def handle(self, *args, days: int | None, batch_size: int, **options):
        days = settings.EVENTS_RETENTION_DAYS if days is None else days
        if days < 0 or batch_size < 1:
            raise CommandError("--days must be 0 or more and --batch-size at least 1.")
        with tqdm(desc="events deleted", unit="event", disable=not self.stdout.isatty()) as bar:
            deleted = delivery.events_purge(older_than_days=days, batch_size=batch_size, progress=bar.update)
        self.stdout.write(
            self.style.SUCCESS(
                f"Deleted {deleted} event(s) older than {days} day(s); {Event.objects.count()} kept."
            )
        )
