from datetime import date

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from tqdm import tqdm

from membership_site.actors import Actor
from points.earning import bonuses
from programs.models import Program


class _Progress:
    """A tqdm bar opened when the total is known (or nothing with --no-progress)."""

    def __init__(self, command, enabled: bool, desc: str) -> None:
        self.command, self.enabled, self.desc, self.bar = command, enabled, desc, None

    def start(self, total: int) -> None:
        if self.enabled:
            self.bar = tqdm(total=total, desc=self.desc, unit="member", file=self.command.stderr._out)

    def advance(self, done: int) -> None:
        if self.bar is not None:
            self.bar.update(done)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class Command(BaseCommand):
    help = (
        "Give the birthday bonuses due today (in each program's time zone), or on --date: "
        "once per member and year, on the birthday or in the birthday month per the "
        "program's earning settings. Commits per batch; safe to interrupt and to run again."
    )

    def add_arguments(self, parser):
        parser.add_argument("--program", help="Only this program (code).")
        parser.add_argument(
            "--date",
            type=date.fromisoformat,
            help="The program-local day to give the bonuses of (YYYY-MM-DD), e.g. a day the job "
            "missed. Not after today.",
        )
        parser.add_argument("--batch-size", type=int, default=1000)
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **options):
        program = None
        if options["program"]:
            program = Program.objects.filter(code=options["program"]).first()
            if program is None:
                raise CommandError(f"No program '{options['program']}'.")
        actor = Actor.system("command:earning_birthday_bonuses")
        members = points = 0
        for each in bonuses.birthday_programs(program=program):
            today = timezone.now().astimezone(each.tz).date()
            on = options["date"] or today
            if on > today:
                raise CommandError(f"{on} is after today in {each.code} ({today}).")
            progress = _Progress(self, not options["no_progress"], f"{each.code} {on}")
            try:
                summary = bonuses.birthday_bonuses(
                    program=each,
                    actor=actor,
                    on=on,
                    batch_size=options["batch_size"],
                    on_start=progress.start,
                    on_batch=progress.advance,
                )
            finally:
                progress.close()
            members += summary.members
            points += summary.points
            self.stdout.write(
                f"{summary.program} {summary.on}: {summary.members} bonuses, {summary.points} points."
            )
        self.stdout.write(self.style.SUCCESS(f"{members} birthday bonuses given, {points} points in all."))
