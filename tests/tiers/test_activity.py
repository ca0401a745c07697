"""activity_record: the contract the earning code calls (upgrade at once, idempotent)."""

from __future__ import annotations

import threading
from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.db import connection

from members import services as member_services
from tests.tiers.conftest import SYSTEM, paris
from tiers import selectors, services
from tiers.errors import ActivityReferenceConflictError, InvalidActivityError
from tiers.models import MemberTier, TierActivity, TierChange
from webhooks.models import Event

pytestmark = pytest.mark.django_db


def test_activity_record_upgrades_on_the_crossing_purchase(ladder, member, record):
    first = record(member, date.today(), spend="300.00", visits=1)
    assert first.created and first.change is None and first.tier == ladder["bronze"]
    assert selectors.member_benefits(member=member).earn_multiplier == Decimal("1")

    crossing = record(member, date.today(), spend="250.00", visits=1)

    assert crossing.change is not None
    assert crossing.change.reason == TierChange.Reason.UPGRADE
    assert (crossing.change.from_tier, crossing.change.to_tier) == (ladder["bronze"], ladder["silver"])
    assert crossing.tier == ladder["silver"]
    # The very next purchase, in the same transaction, earns with Silver's multiplier.
    benefits = selectors.member_benefits(member=member)
    assert (benefits.tier_code, benefits.earn_multiplier, benefits.discount_percent) == (
        "silver",
        Decimal("1.250"),
        Decimal("5.00"),
    )


def test_activity_record_skips_levels_when_one_purchase_crosses_several(ladder, member, record):
    result = record(member, date.today(), spend="1200.00")
    assert result.change.to_tier == ladder["gold"]
    assert selectors.member_tier(member=member) == ladder["gold"]
    assert TierChange.objects.filter(member=member).count() == 1


def test_activity_record_emits_tier_changed(ladder, member, record):
    record(member, date.today(), spend="600.00")
    event = Event.objects.get(type="tier.changed", member_id=member.pk)
    assert event.data["from"] == "bronze"
    assert event.data["to"] == "silver"
    assert event.data["reason"] == "upgrade"
    assert event.data["member_id"] == member.pk
    assert event.data["grace_until"] is None


def test_activity_record_is_idempotent_per_reference(ladder, member, record):
    first = record(member, date.today(), spend="600.00", reference="R-1")
    again = record(member, date.today(), spend="600.00", reference="R-1")
    assert first.created and not again.created
    assert again.activity.pk == first.activity.pk
    assert again.change is None
    assert TierActivity.objects.filter(member=member).count() == 1
    assert TierChange.objects.filter(member=member).count() == 1
    # The same reference under another source is another activity.
    refund = record(member, date.today(), spend="-100.00", reference="R-1", source="refund")
    assert refund.created


def test_activity_record_refuses_a_reference_reused_with_other_values(ladder, member, record):
    record(member, date.today(), spend="100.00", reference="R-2")
    with pytest.raises(ActivityReferenceConflictError):
        record(member, date.today(), spend="120.00", reference="R-2")
    assert TierActivity.objects.filter(member=member).count() == 1


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"spend": 10.5}, "spend"),
        ({"spend": Decimal("1.005")}, "spend"),
        ({"spend": Decimal("NaN")}, "spend"),
        ({"points": 1.0}, "points"),
        ({"visits": True}, "visits"),
        ({"source": "bonus"}, "source"),
        ({"reference": ""}, "reference"),
        ({"reference": "x" * 101}, "reference"),
        ({"occurred_at": datetime(2025, 1, 1, 12)}, "occurred_at"),
    ],
)
def test_activity_record_rejects_bad_values(ladder, member, changes, field):
    arguments = {
        "member": member,
        "occurred_at": paris(date.today()),
        "source": "purchase",
        "reference": "R-3",
        "spend": Decimal("10.00"),
        "points": 0,
        "visits": 0,
        "actor": SYSTEM,
        **changes,
    }
    with pytest.raises(InvalidActivityError) as error:
        services.activity_record(**arguments)
    assert error.value.field == field
    assert not TierActivity.objects.exists()


def test_activity_record_counts_the_program_local_day(ladder, member, record):
    # 23:30 UTC on 14 March is 00:30 on 15 March in Paris.
    result = record(member, datetime(2025, 3, 14, 23, 30, tzinfo=ZoneInfo("UTC")), spend="1.00")
    assert result.activity.occurred_on == date(2025, 3, 15)


def test_activity_record_refund_lowers_metrics_but_never_downgrades(ladder, member, record):
    record(member, date.today(), spend="1000.00", reference="order-1")
    refund = record(member, date.today(), spend="-600.00", source="refund", reference="refund-1")
    assert refund.change is None
    assert selectors.member_tier(member=member) == ladder["gold"]
    progress = selectors.member_tier_progress(member=member)
    assert progress.keep.metrics.current.spend == Decimal("400.00")
    assert not progress.keep.met
    assert progress.keep.remaining["spend"] == Decimal("400.00")


def test_activity_record_ignores_adjustments_unless_the_program_counts_them(make_tier, member, record):
    make_tier("basic", 1)
    make_tier("star", 2, qualify_points=1000)
    record(member, date.today(), points=1500, source="adjustment")
    assert selectors.member_tier(member=member).code == "basic"

    services.tier_settings_update(program=member.program, actor=SYSTEM, adjustments_qualify=True)
    result = record(member, date.today(), points=1, source="earn")
    assert result.change is not None
    assert selectors.member_tier(member=member).code == "star"


def test_activity_record_any_mode_takes_one_threshold_all_mode_needs_each(make_tier, make_member, record):
    make_tier("bronze", 1)
    make_tier("regular", 2, qualify_points=50, qualify_visits=3)  # "any", the default
    make_tier("vip", 3, qualify_mode="all", qualify_spend=Decimal("300"), qualify_visits=5)
    visitor, spender = make_member(), make_member()
    for _ in range(3):
        record(visitor, date.today(), visits=1)
    assert selectors.member_tier(member=visitor).code == "regular"  # visits alone are enough

    record(spender, date.today(), spend="1000.00", points=10, visits=1)
    assert selectors.member_tier(member=spender).code == "bronze"  # VIP also needs 5 visits
    record(spender, date.today(), visits=2)
    assert selectors.member_tier(member=spender).code == "regular"
    record(spender, date.today(), visits=2)
    assert selectors.member_tier(member=spender).code == "vip"  # 1000 EUR and 5 visits


def test_activity_record_for_a_program_without_tiers_keeps_the_activity(member, record, make_tier):
    result = record(member, date.today(), spend="600.00")
    assert result.created and result.tier is None and result.change is None
    assert selectors.member_benefits(member=member).earn_multiplier == Decimal("1")
    assert not MemberTier.objects.exists()

    make_tier("bronze", 1)
    make_tier("silver", 2, qualify_spend=Decimal("500"))
    # The selector answers with the default tier before the member has a tier row...
    assert selectors.member_tier(member=member).code == "bronze"
    # ...and the next activity creates the row and counts the earlier activity.
    upgraded = record(member, date.today(), spend="1.00")
    assert upgraded.change.to_tier.code == "silver"


def test_activity_record_does_not_change_a_terminated_member(ladder, member, record):
    member_services.member_status_action(member=member, action="terminate", reason="left", actor=SYSTEM)
    result = record(member, date.today(), spend="2000.00", source="import")
    assert result.created and result.change is None
    assert selectors.member_tier(member=member) == ladder["bronze"]


@pytest.mark.django_db(transaction=True)
def test_activity_record_concurrent_crossings_upgrade_once(make_program, make_member):
    program = make_program("race")
    services.tier_create(program=program, code="bronze", name="Bronze", rank=1, actor=SYSTEM)
    services.tier_create(
        program=program, code="silver", name="Silver", rank=2, qualify_spend=Decimal("100"), actor=SYSTEM
    )
    racer = make_member(target_program=program)
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def purchase(number: int) -> None:
        try:
            barrier.wait()
            services.activity_record(
                member=racer,
                occurred_at=paris(date.today()),
                source="purchase",
                reference=f"T-{number}",
                spend=Decimal("100.00"),
                actor=SYSTEM,
            )
        except BaseException as error:  # reported to the main thread
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=purchase, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert TierActivity.objects.filter(member=racer).count() == 4
    assert list(TierChange.objects.filter(member=racer).values_list("reason", flat=True)) == ["upgrade"]
    assert Event.objects.filter(type="tier.changed", member_id=racer.pk).count() == 1


def test_members_benefits_reads_a_list_in_two_queries(
    ladder, make_member, record, django_assert_max_num_queries
):
    gold, plain = make_member(), make_member()
    record(gold, date.today(), spend="1000.00")
    MemberTier.objects.filter(member=plain).delete()  # not assigned yet: the default applies
    with django_assert_max_num_queries(2):
        benefits = selectors.members_benefits(members=[gold, plain])
    assert (benefits[gold.pk].tier_code, benefits[gold.pk].earn_multiplier) == ("gold", Decimal("1.500"))
    assert (benefits[plain.pk].tier_code, benefits[plain.pk].earn_multiplier) == ("bronze", Decimal("1.000"))


def test_tier_benefits_allow_rewards_by_eligibility_and_tags(ladder, member, record):
    bronze = selectors.member_benefits(member=member)
    assert bronze.allows_reward() and not bronze.allows_reward(["gold-lounge"])
    record(member, date.today(), spend="1000.00")
    gold = selectors.member_benefits(member=member)
    assert gold.allows_reward(["gold-lounge", "platinum-lounge"])
    services.tier_update(tier=ladder["gold"], rewards_eligible=False, actor=SYSTEM)
    assert not selectors.member_benefits(member=member).allows_reward()
