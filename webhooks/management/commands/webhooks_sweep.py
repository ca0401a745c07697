"""Redo webhook work a crash left behind (what the ``webhooks.sweep`` beat task does)."""

from django.core.management.base import BaseCommand
from tqdm import tqdm

from webhooks import delivery


class Command(BaseCommand):
    help = (
        "Dispatch committed events whose dispatch was lost and enqueue overdue deliveries "
        "(older than WEBHOOK_SWEEP_GRACE_SECONDS). Safe to run at any time."
    )

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=500)

    def handle(self, *args, batch_size: int, **options):
        with tqdm(desc="events and deliveries", unit="row", disable=not self.stdout.isatty()) as bar:
            result = delivery.sweep(batch_size=batch_size, progress=bar.update)
        self.stdout.write(
            self.style.SUCCESS(
                f"Dispatched {result.dispatched_events} event(s); "
                f"enqueued {result.requeued_deliveries} overdue delivery(ies)."
            )
        )
