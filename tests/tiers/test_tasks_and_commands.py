"""The nightly task (in a real worker), the tiers_evaluate command and the demo data."""

from __future__ import annotations

from datetime import date, datetime
from io import StringIO
from zoneinfo import ZoneInfo

import pytest
from django.core.management import CommandError, call_command

from programs.models import Program
from tests.celery_support import wait_for
from tests.tiers.conftest import SYSTEM, paris
from tiers import demo, tasks
from tiers.models import MemberTier, Tier, TierChange, TierEvaluation

pytestmark = pytest.mark.django_db


def test_evaluate_due_queues_programs_whose_local_day_has_begun(make_program, make_tier, clock, settings):
    settings.TIERS_EVALUATION_LOCAL_HOUR = 1
    paris_program = make_program("paris", timezone="Europe/Paris")
    tokyo = make_program("tokyo", timezone="Asia/Tokyo")
    make_program("notiers", timezone="Europe/Paris")
    make_tier("basic", 1, target_program=paris_program)
    make_tier("basic", 1, target_program=tokyo)
    # 23:30 UTC: 00:30 in Paris (before the hour), 08:30 in Tokyo.
    clock(datetime(2025, 3, 14, 23, 30, tzinfo=ZoneInfo("UTC")))
    assert tasks.evaluate_due() == [tokyo.pk]  # eager in tests: it has run
    assert TierEvaluation.objects.get(program=tokyo).as_of == date(2025, 3, 15)
    # An hour later Paris is due; Tokyo is done for its day.
    clock(datetime(2025, 3, 15, 0, 30, tzinfo=ZoneInfo("UTC")))
    assert tasks.evaluate_due() == [paris_program.pk]
    assert tasks.evaluate_due() == []


@pytest.mark.celery_queues("default")
def test_evaluate_program_runs_in_a_real_worker(make_program, make_member, celery_worker):
    program = make_program("worker")
    member = make_member(target_program=program)
    Tier.objects.create(program=program, code="basic", name="Basic", rank=1, is_default=True)
    assert not MemberTier.objects.exists()  # the tier was made behind the services' back
    tasks.evaluate_program.delay(program.pk, date.today().isoformat())
    run = wait_for(
        lambda: TierEvaluation.objects.filter(program=program, status="finished").first(),
        message=celery_worker.output(),
    )
    assert run.assigned == 1
    assert MemberTier.objects.get(member=member).tier.code == "basic"


def test_tiers_evaluate_command_prints_a_summary(ladder, make_member, record, clock):
    clock(paris(date(2025, 1, 10), 9))
    member = make_member()
    record(member, date(2025, 1, 10), spend="600.00")
    clock(paris(date(2026, 1, 11), 9))
    out = StringIO()
    call_command("tiers_evaluate", "--program", "acme", "--date", "2026-01-11", "--no-progress", stdout=out)
    assert "acme 2026-01-11: 1 members" in out.getvalue()
    assert "1 grace started" in out.getvalue()
    out = StringIO()
    call_command("tiers_evaluate", "--date", "2026-01-11", "--no-progress", stdout=out)
    assert "0 grace started" in out.getvalue()  # the same day again: nothing changes


def test_tiers_evaluate_command_shows_progress_and_a_second_run_of_the_day_changes_nothing(
    ladder, make_member, record, clock, capsys
):
    clock(paris(date(2025, 1, 10), 9))
    members = [make_member() for _ in range(3)]
    record(members[0], date(2025, 1, 10), spend="600.00")  # Silver; below retention a year on
    clock(paris(date(2026, 1, 11), 9))
    arguments = ["tiers_evaluate", "--program", "acme", "--date", "2026-01-11", "--batch-size", "2"]

    first = StringIO()
    call_command(*arguments, stdout=first)
    progress = capsys.readouterr().err
    assert "acme" in progress and "0/3" in progress  # the bar, on stderr, with the members to do
    assert "3 members" in first.getvalue() and "1 grace started" in first.getvalue()
    states = list(MemberTier.objects.order_by("member_id").values())
    history = TierChange.objects.count()

    again = StringIO()
    call_command(*arguments, stdout=again)
    assert "0/3" in capsys.readouterr().err
    assert "0 upgrades, 0 downgrades, 0 grace started, 0 grace ended" in again.getvalue()
    assert TierChange.objects.count() == history
    assert list(MemberTier.objects.order_by("member_id").values()) == states
    assert TierEvaluation.objects.filter(as_of=date(2026, 1, 11), status="finished").count() == 2


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--program", "nowhere"], "No program 'nowhere'"),
        (["--date", "15/03/2025"], "YYYY-MM-DD"),
        (["--date", "2999-01-01"], "future day"),
        (["--batch-size", "0"], "at least 1"),
    ],
)
def test_tiers_evaluate_command_rejects_bad_arguments(ladder, arguments, message):
    with pytest.raises(CommandError, match=message):
        call_command("tiers_evaluate", "--no-progress", *arguments, stdout=StringIO())
    assert not TierEvaluation.objects.filter(status="finished").exists()


def test_demo_load_is_safe_to_run_again(program, make_member):
    early = make_member()
    demo.load(program=program, actor=SYSTEM)
    demo.load(program=Program.objects.get(pk=program.pk), actor=SYSTEM)
    assert list(Tier.objects.filter(program=program).values_list("code", "is_default")) == [
        ("bronze", True),
        ("silver", False),
        ("gold", False),
    ]
    assert MemberTier.objects.get(member=early).tier.code == "bronze"
