import sys
import time
from datetime import date

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from membership_site.actors import Actor
from membership_site.errors import DomainError
from programs.models import Program
from tiers import services


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"--date must be YYYY-MM-DD, not '{value}'.") from None


class Command(BaseCommand):
    help = (
        "Evaluate members' tiers (grace, downgrades, missed upgrades, default tier for members "
        "without one) as of a day in each program's time zone (default: today). Safe to re-run "
        "for the same day: it changes nothing the second time."
    )

    def add_arguments(self, parser):
        parser.add_argument("--program", help="Program code (default: every program with tiers)")
        parser.add_argument("--date", help="Day to evaluate, YYYY-MM-DD (activity before it counts)")
        parser.add_argument(
            "--batch-size", type=int, default=settings.TIERS_EVALUATION_BATCH_SIZE, help="Members per batch"
        )
        parser.add_argument("--no-progress", action="store_true", help="No progress bar")

    def handle(self, *args, **options):
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1.")
        on = _day(options["date"]) if options["date"] else None
        programs = (
            Program.objects.exclude(status=Program.Status.CLOSED).filter(tiers__isnull=False).distinct()
        )
        if options["program"]:
            programs = Program.objects.filter(code=options["program"])
            if not programs.exists():
                raise CommandError(f"No program '{options['program']}'.")
        actor = Actor.system("command:tiers_evaluate")
        for program in programs.order_by("code"):
            self._evaluate(program, on, actor, options)

    def _evaluate(self, program, on, actor, options) -> None:
        bar = tqdm(
            desc=program.code, unit=" members", file=sys.stderr, disable=options["no_progress"], leave=False
        )
        started = time.monotonic()
        try:
            run = services.tiers_evaluate(
                program=program,
                on=on,
                actor=actor,
                batch_size=options["batch_size"],
                on_start=lambda total: setattr(bar, "total", total) or bar.refresh(),
                on_batch=bar.update,
            )
        except DomainError as error:
            raise CommandError(f"{program.code}: {error.detail}") from None
        finally:
            bar.close()
        seconds = time.monotonic() - started
        self.stdout.write(
            self.style.SUCCESS(
                f"{program.code} {run.as_of}: {run.members} members in {seconds:.1f} s; "
                f"{run.upgrades} upgrades, {run.downgrades} downgrades, {run.grace_started} grace "
                f"started, {run.grace_ended} grace ended, {run.assigned} given the default tier, "
                f"{run.skipped} skipped (changed meanwhile)."
            )
        )
