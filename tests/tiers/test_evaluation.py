"""The evaluation: grace, recovery, downgrades per policy, locks, lifetime tiers, re-runs."""

from __future__ import annotations

import threading
from datetime import date
from decimal import Decimal

import pytest
from django.db import connection, transaction

from members import services as member_services
from tests.db_support import wait_for_lock_waiter
from tests.tiers.conftest import SYSTEM, paris
from tiers import rules, selectors, services
from tiers.errors import EvaluationRunningError, TierAssignmentError
from tiers.models import MemberTier, TierChange, TierEvaluation
from webhooks.models import Event
from webhooks.services import event_record

pytestmark = pytest.mark.django_db


@pytest.fixture
def evaluate(program, clock):
    def _evaluate(day: date, target_program=None):
        clock(paris(day, 3))
        return services.tiers_evaluate(program=target_program or program, on=day, actor=SYSTEM)

    return _evaluate


def state_of(member) -> MemberTier:
    return MemberTier.objects.select_related("tier").get(member=member)


def reasons(member) -> list[str]:
    return list(
        TierChange.objects.filter(member=member).order_by("at", "id").values_list("reason", flat=True)
    )


@pytest.fixture
def silver_member(ladder, make_member, record, clock):
    """Silver since 10 January 2025 thanks to 600 EUR spent that day."""
    clock(paris(date(2025, 1, 10), 9))
    member = make_member()
    record(member, date(2025, 1, 10), spend="600.00")
    assert state_of(member).tier == ladder["silver"]
    return member


def test_tiers_evaluate_starts_grace_when_retention_is_lost(silver_member, evaluate):
    run = evaluate(date(2026, 1, 10))  # 10 Jan 2025 is still in the 12 months
    assert (run.members, run.grace_started) == (1, 0)
    assert state_of(silver_member).grace_until is None

    run = evaluate(date(2026, 1, 11))
    assert run.grace_started == 1
    state = state_of(silver_member)
    assert state.tier.code == "silver"
    assert state.grace_until == date(2026, 4, 11)
    change = TierChange.objects.get(member=silver_member, reason="grace_started")
    assert (change.from_tier.code, change.to_tier.code, change.effective_on) == (
        "silver",
        "silver",
        date(2026, 1, 11),
    )
    event = Event.objects.filter(type="tier.changed", member_id=silver_member.pk).last()
    assert event.data["reason"] == "grace_started"
    assert event.data["grace_until"] == "2026-04-11"


def test_tiers_evaluate_downgrades_at_the_end_of_grace(silver_member, evaluate):
    evaluate(date(2026, 1, 11))
    evaluate(date(2026, 4, 10))
    assert state_of(silver_member).tier.code == "silver"

    run = evaluate(date(2026, 4, 11))

    assert run.downgrades == 1
    state = state_of(silver_member)
    assert (state.tier.code, state.grace_until) == ("bronze", None)
    assert reasons(silver_member) == ["upgrade", "grace_started", "downgrade"]
    event = Event.objects.filter(type="tier.changed", member_id=silver_member.pk).last()
    assert (event.data["from"], event.data["to"], event.data["reason"]) == ("silver", "bronze", "downgrade")


def test_activity_during_grace_ends_it_at_once(silver_member, evaluate, record, clock):
    evaluate(date(2026, 1, 11))
    clock(paris(date(2026, 2, 15), 12))
    result = record(silver_member, date(2026, 2, 15), spend="400.00")  # the retention threshold
    assert result.change.reason == "grace_ended"
    assert state_of(silver_member).grace_until is None

    run = evaluate(date(2026, 4, 11))
    assert run.downgrades == 0
    assert state_of(silver_member).tier.code == "silver"
    assert reasons(silver_member) == ["upgrade", "grace_started", "grace_ended"]


def test_tiers_evaluate_ends_grace_when_retention_is_met_again(silver_member, evaluate, ladder):
    evaluate(date(2026, 1, 11))
    # The program lowers what keeps Silver: the next evaluation finds the member meets it.
    services.tier_update(tier=ladder["silver"], retain_spend=Decimal("0"), actor=SYSTEM)
    run = evaluate(date(2026, 1, 12))
    assert run.grace_ended == 1
    assert state_of(silver_member).grace_until is None


def test_refund_lowers_metrics_and_the_downgrade_waits_for_grace(
    ladder, make_member, record, evaluate, clock
):
    clock(paris(date(2025, 6, 1), 9))
    member = make_member()
    record(member, date(2025, 6, 1), spend="1000.00", reference="order-9")
    assert state_of(member).tier.code == "gold"
    record(member, date(2025, 6, 1), spend="-500.00", source="refund", reference="refund-9")
    assert state_of(member).tier.code == "gold"

    run = evaluate(date(2025, 6, 2))

    assert (run.grace_started, run.downgrades) == (1, 0)
    state = state_of(member)
    assert (state.tier.code, state.grace_until) == ("gold", date(2025, 9, 2))
    evaluate(date(2025, 9, 2))
    # One level at a time: Gold -> Silver (500 EUR keeps Silver, so no further grace).
    assert state_of(member).tier.code == "silver"
    evaluate(date(2025, 9, 3))
    assert state_of(member).tier.code == "silver"


def test_tiers_evaluate_twice_for_the_same_day_changes_nothing(ladder, make_member, record, evaluate, clock):
    clock(paris(date(2025, 1, 10), 9))
    members = [make_member() for _ in range(3)]
    record(members[0], date(2025, 1, 10), spend="600.00")  # silver, loses it in 2026
    record(members[1], date(2025, 1, 10), spend="1000.00")  # gold, loses it in 2026
    services.tier_update(tier=ladder["gold"], grace_months=0, actor=SYSTEM)  # gold: straight down
    first = evaluate(date(2026, 1, 11))
    assert (first.grace_started, first.downgrades) == (1, 1)
    history = TierChange.objects.count()
    events = Event.objects.count()
    states = list(MemberTier.objects.order_by("member_id").values())

    again = evaluate(date(2026, 1, 11))

    assert (again.upgrades, again.downgrades, again.grace_started, again.grace_ended) == (0, 0, 0, 0)
    assert TierChange.objects.count() == history
    assert Event.objects.count() == events
    assert list(MemberTier.objects.order_by("member_id").values()) == states
    # The member moved down to Silver that day is looked at again the next day only.
    assert evaluate(date(2026, 1, 12)).grace_started == 1


def test_tiers_evaluate_leaves_members_changed_that_day_alone(ladder, make_member, record, evaluate, clock):
    clock(paris(date(2025, 3, 1), 10))
    member = make_member()
    record(member, date(2025, 3, 1), spend="600.00")  # upgraded on 1 March, activity of 1 March
    # The evaluation of 1 March counts activity before 1 March: without the rule it would
    # take the member's Silver for unearned and start grace.
    run = evaluate(date(2025, 3, 1))
    assert (run.members, run.grace_started) == (0, 0)
    assert evaluate(date(2025, 3, 2)).grace_started == 0


@pytest.mark.parametrize(
    ("policy", "path"),
    [
        ("one_level", ["platinum", "gold", "silver", "silver"]),
        ("supported_level", ["platinum", "silver", "silver", "silver"]),
    ],
)
def test_tiers_evaluate_downgrade_policy(make_tier, make_member, record, evaluate, clock, policy, path):
    make_tier("bronze", 1)
    make_tier("silver", 2, qualify_spend=Decimal("500"), retain_spend=Decimal("400"))
    make_tier("gold", 3, qualify_spend=Decimal("1000"), retain_spend=Decimal("800"))
    make_tier(
        "platinum", 4, qualify_spend=Decimal("2000"), retain_spend=Decimal("1600"), downgrade_policy=policy
    )
    clock(paris(date(2025, 5, 1), 9))
    member = make_member()
    record(member, date(2025, 5, 1), spend="2000.00", reference="o-1")
    record(member, date(2025, 5, 1), spend="-1450.00", source="refund", reference="r-1")  # 550 left
    seen = [state_of(member).tier.code]
    for day in (date(2025, 5, 2), date(2025, 5, 3), date(2025, 5, 4)):
        evaluate(day)
        seen.append(state_of(member).tier.code)
    assert seen == path


def test_supported_level_lands_on_the_default_when_nothing_is_kept(
    make_tier, make_member, record, evaluate, clock
):
    make_tier("bronze", 1)
    make_tier("silver", 2, qualify_spend=Decimal("500"))
    make_tier("gold", 3, qualify_spend=Decimal("1000"), downgrade_policy="supported_level")
    clock(paris(date(2025, 5, 1), 9))
    member = make_member()
    record(member, date(2025, 5, 1), spend="1000.00", reference="o-1")
    record(member, date(2025, 5, 1), spend="-1000.00", source="refund", reference="r-1")
    evaluate(date(2025, 5, 2))
    assert state_of(member).tier.code == "bronze"


def test_all_mode_retention_needs_every_threshold(make_tier, make_member, record, evaluate, clock):
    make_tier("bronze", 1)
    make_tier(
        "vip",
        2,
        qualify_mode="all",
        qualify_spend=Decimal("300"),
        qualify_visits=5,
        retain_spend=Decimal("200"),
        retain_visits=4,
        grace_months=1,
    )
    clock(paris(date(2025, 1, 10), 9))
    short_of_visits, steady = make_member(), make_member()
    for member in (short_of_visits, steady):
        record(member, date(2025, 1, 10), spend="300.00", visits=5)
        assert state_of(member).tier.code == "vip"
    # Two visits undone: 250 EUR still keeps VIP's spend, 3 visits miss its 4.
    record(short_of_visits, date(2025, 1, 10), spend="-50.00", visits=-2, source="refund")

    run = evaluate(date(2025, 6, 1))

    assert (run.members, run.grace_started) == (2, 1)
    assert state_of(short_of_visits).grace_until == date(2025, 7, 1)
    assert state_of(steady).grace_until is None


def test_locked_member_is_not_moved_down_before_the_lock_ends(ladder, member, evaluate, clock):
    clock(paris(date(2025, 1, 10), 9))
    services.member_tier_assign(
        member=member, tier=ladder["gold"], reason="Status match", locked_until=date(2025, 7, 1), actor=SYSTEM
    )
    assert evaluate(date(2025, 1, 11)).grace_started == 0
    assert evaluate(date(2025, 6, 30)).grace_started == 0
    assert state_of(member).grace_until is None

    run = evaluate(date(2025, 7, 1))

    assert run.grace_started == 1
    assert state_of(member).grace_until == date(2025, 10, 1)


def test_lifetime_tier_is_never_lost(make_tier, member, record, evaluate, clock):
    make_tier("bronze", 1)
    gold = make_tier("gold", 2, qualify_spend=Decimal("1000"))
    make_tier("platinum", 3, qualify_spend=Decimal("2000"), downgrade_policy="supported_level")
    clock(paris(date(2025, 1, 10), 9))
    services.member_tier_assign(
        member=member, tier=gold, reason="Founding member", lifetime=True, actor=SYSTEM
    )
    assert evaluate(date(2030, 1, 1)).downgrades == 0
    assert state_of(member).tier.code == "gold"

    clock(paris(date(2030, 2, 1), 9))
    record(member, date(2030, 2, 1), spend="2000.00")
    assert state_of(member).tier.code == "platinum"
    # A year later Platinum is lost; the activity supports only Bronze, but Gold is for life.
    evaluate(date(2031, 2, 2))
    state = state_of(member)
    assert (state.tier.code, state.lifetime_tier.code) == ("gold", "gold")
    assert evaluate(date(2031, 2, 3)).grace_started == 0


def test_tiers_evaluate_gives_existing_members_the_default_tier_and_upgrades(
    make_member, make_tier, record, evaluate, clock
):
    clock(paris(date(2025, 1, 10), 9))
    before = [make_member() for _ in range(3)]
    record(before[0], date(2025, 1, 10), spend="700.00")  # no tiers yet: kept for later
    make_tier("bronze", 1)
    make_tier("silver", 2, qualify_spend=Decimal("500"))
    assert not MemberTier.objects.exists()

    run = evaluate(date(2025, 1, 11))

    assert (run.assigned, run.members, run.upgrades) == (3, 3, 1)
    assert {state_of(m).tier.code for m in before[1:]} == {"bronze"}
    assert state_of(before[0]).tier.code == "silver"
    assert evaluate(date(2025, 1, 11)).assigned == 0


def test_tiers_evaluate_skips_terminated_members(silver_member, evaluate):
    member_services.member_status_action(
        member=silver_member, action="terminate", reason="left", actor=SYSTEM
    )
    run = evaluate(date(2026, 1, 11))
    assert (run.members, run.grace_started) == (0, 0)


def test_tiers_evaluate_processes_members_in_batches(ladder, make_member, record, clock):
    clock(paris(date(2025, 1, 10), 9))
    members = [make_member() for _ in range(7)]
    for member in members[:5]:
        record(member, date(2025, 1, 10), spend="600.00")
    clock(paris(date(2026, 1, 11), 3))
    batches: list[int] = []
    run = services.tiers_evaluate(
        program=members[0].program, on=date(2026, 1, 11), actor=SYSTEM, batch_size=3, on_batch=batches.append
    )
    assert batches == [3, 3, 1]
    assert (run.members, run.grace_started, run.status) == (7, 5, "finished")


def test_tiers_evaluate_refuses_a_future_day(ladder, program, clock):
    clock(paris(date(2025, 1, 10), 9))
    with pytest.raises(TierAssignmentError):
        services.tiers_evaluate(program=program, on=date(2025, 1, 11), actor=SYSTEM)
    assert not TierEvaluation.objects.exists()


def test_tiers_evaluate_of_a_program_without_tiers_does_nothing(program, member):
    run = services.tiers_evaluate(program=program, actor=SYSTEM)
    assert (run.status, run.members, run.assigned) == ("finished", 0, 0)


@pytest.mark.django_db(transaction=True)
def test_tiers_evaluate_refuses_to_run_twice_at_once(make_program):
    program = make_program("busy")
    services.tier_create(program=program, code="bronze", name="Bronze", rank=1, actor=SYSTEM)
    held, release = threading.Event(), threading.Event()

    def hold_lock() -> None:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_lock(%s, %s)", [services._EVALUATION_LOCK_NAMESPACE, program.pk]
            )
            held.set()
            release.wait(10)
            cursor.execute(
                "SELECT pg_advisory_unlock(%s, %s)", [services._EVALUATION_LOCK_NAMESPACE, program.pk]
            )
        connection.close()

    thread = threading.Thread(target=hold_lock)
    thread.start()
    try:
        assert held.wait(10)
        with pytest.raises(EvaluationRunningError):
            services.tiers_evaluate(program=program, actor=SYSTEM)
    finally:
        release.set()
        thread.join()
    assert services.tiers_evaluate(program=program, actor=SYSTEM).status == "finished"


def test_member_tier_progress_shows_what_keeps_and_what_is_next(silver_member, clock):
    clock(paris(date(2025, 2, 1), 9))
    progress = selectors.member_tier_progress(member=silver_member)
    assert progress.tier.code == "silver"
    assert progress.keep.met
    assert progress.keep.metrics.current.spend == Decimal("600.00")
    assert progress.keep.bounds.start == date(2024, 2, 1)
    assert progress.next.tier.code == "gold"
    assert not progress.next.met
    assert progress.next.remaining == {"spend": Decimal("400.00"), "points": None, "visits": None}
    assert [change.reason for change in progress.history] == ["upgrade"]


def test_tiers_evaluate_leaves_a_member_changed_while_the_batch_ran_alone(
    silver_member, ladder, program, clock
):
    # The batch read the member as a Silver losing retention; before it wrote, staff made
    # the member Gold. The write re-reads the row under lock and leaves it as staff set it.
    on = date(2026, 1, 11)
    clock(paris(on, 3))
    read = (
        rules.StateSnapshot(ladder["silver"].pk),
        rules.Decision("grace_started", ladder["silver"].pk, on),
    )
    services.member_tier_assign(member=silver_member, tier=ladder["gold"], reason="Gift", actor=SYSTEM)
    run = TierEvaluation.objects.create(program=program, as_of=on)
    tiers = {tier.pk: tier for tier in ladder.values()}

    services._apply_decisions(run, program, SYSTEM, on, tiers, {silver_member.pk: read})

    assert (run.skipped, run.grace_started) == (1, 0)
    state = state_of(silver_member)
    assert (state.tier.code, state.grace_until) == ("gold", None)
    assert reasons(silver_member) == ["upgrade", "manual"]


@pytest.mark.django_db(transaction=True)
def test_purchase_during_the_evaluation_wins_without_deadlock(make_program, make_member, clock):
    """A purchase that re-qualifies a member in grace, holding the member's tier row and
    event counter (as the points code does: activity first, its own event after), while
    the evaluation decided to move the member down: the evaluation waits, re-reads the
    row under lock and leaves the member alone; nothing deadlocks."""
    program = make_program("clash")
    services.tier_create(program=program, code="bronze", name="Bronze", rank=1, actor=SYSTEM)
    services.tier_create(
        program=program,
        code="silver",
        name="Silver",
        rank=2,
        qualify_spend=Decimal("500"),
        grace_months=3,
        actor=SYSTEM,
    )
    clock(paris(date(2025, 1, 10), 9))
    member = make_member(target_program=program)
    services.activity_record(
        member=member,
        occurred_at=paris(date(2025, 1, 10)),
        source="purchase",
        reference="old",
        spend=Decimal("600.00"),
        actor=SYSTEM,
    )
    clock(paris(date(2026, 1, 11), 3))
    services.tiers_evaluate(program=program, actor=SYSTEM)
    assert MemberTier.objects.get(member=member).grace_until == date(2026, 4, 11)
    clock(paris(date(2026, 4, 11), 3))  # grace ends today: the evaluation will move down

    errors: list[BaseException] = []
    results = {}

    def purchase() -> None:
        try:
            with transaction.atomic():
                results["purchase"] = services.activity_record(
                    member=member,
                    occurred_at=paris(date(2026, 4, 11), 2),
                    source="purchase",
                    reference="new",
                    spend=Decimal("500.00"),
                    actor=SYSTEM,
                )
                evaluation_waits()
                event_record(program_id=program.pk, member_id=member.pk, type="member.updated", data={})
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    def evaluation() -> None:
        try:
            started.wait(10)
            results["run"] = services.tiers_evaluate(program=program, actor=SYSTEM)
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    started = threading.Event()

    def evaluation_waits() -> None:
        started.set()
        wait_for_lock_waiter("the evaluation never waited for the purchase's lock", timeout=10)

    threads = [threading.Thread(target=purchase), threading.Thread(target=evaluation)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert errors == []
    assert results["purchase"].change.reason == "grace_ended"
    assert (results["run"].skipped, results["run"].downgrades) == (1, 0)
    state = MemberTier.objects.select_related("tier").get(member=member)
    assert (state.tier.code, state.grace_until) == ("silver", None)
