"""Admin (through the services), catalog import/export jobs, GDPR export and erasure,
demo data."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from jobs import engine
from jobs import services as job_services
from jobs.models import Job
from members import selectors as member_selectors
from members import services as member_services
from membership_site.roles import AUDITOR, SUPPORT_AGENT
from points.models import Account
from rewards import codes, demo, services
from rewards.imports import reward_rows
from rewards.models import (
    PayWithPointsRule,
    PricingException,
    Redemption,
    Reward,
    Shipment,
    Voucher,
    VoucherBatch,
)
from tiers import services as tier_services
from tiers.models import Tier

from .conftest import SYSTEM

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client):
    def _login(role: str | None = None):
        User = get_user_model()
        username = f"user-{(role or 'root').replace(' ', '-').lower()}"
        if role is None:
            user = User.objects.create_superuser(username, f"{username}@example.com", "pw-long-enough-1")
        else:
            user = User.objects.create_user(
                username, f"{username}@example.com", "pw-long-enough-1", is_staff=True
            )
            user.groups.add(Group.objects.get(name=role))
        client.force_login(user)
        return user

    return _login


def reward_form(program, pts, **changes):
    data = {
        "program": program.pk,
        "code": "coffee-5",
        "name": "5 EUR off",
        "description": "",
        "image_url": "",
        "kind": "amount_voucher",
        "sort_order": "0",
        "is_active": "on",
        "stock": "10",
        "limit_total": "",
        "limit_per_period": "",
        "limit_period": "",
        "voucher_amount": "5.00",
        "voucher_percent": "",
        "sku": "",
        "voucher_min_spend": "",
        "voucher_skus": "[]",
        "voucher_valid_days": "30",
        "target_points": "",
        "costs-TOTAL_FORMS": "1",
        "costs-INITIAL_FORMS": "0",
        "costs-MIN_NUM_FORMS": "1",
        "costs-MAX_NUM_FORMS": "1000",
        "costs-0-currency": pts.pk,
        "costs-0-points": "500",
    }
    data.update(changes)
    return {key: value for key, value in data.items() if value is not None}


def test_reward_admin_creates_through_the_service_with_history(client, staff, program, pts):
    user = staff()
    response = client.post("/admin/rewards/reward/add/", reward_form(program, pts))
    assert response.status_code == 302, response.content.decode()[:3000]
    reward = Reward.objects.get(code="coffee-5")
    assert [(c.currency_id, c.points) for c in reward.costs.all()] == [(pts.pk, 500)]
    assert reward.history.first().history_user == user
    changed = client.post(
        f"/admin/rewards/reward/{reward.pk}/change/",
        reward_form(
            program,
            pts,
            stock="4",
            tier_tags='["lounge"]',
            **{
                "costs-INITIAL_FORMS": "1",
                "costs-0-id": reward.costs.get().pk,
                "costs-0-reward": reward.pk,
                "costs-0-points": "450",
            },
        ),
    )
    assert changed.status_code == 302, changed.content.decode()[:3000]
    reward.refresh_from_db()
    assert reward.stock == 4 and reward.costs.get().points == 450
    assert reward.tier_tags == ["lounge"] and reward.history.first().tier_tags == ["lounge"]
    bad_tags = client.post(
        f"/admin/rewards/reward/{reward.pk}/change/",
        reward_form(program, pts, tier_tags='["not a tag"]', **{"costs-INITIAL_FORMS": "1"}),
    )
    assert bad_tags.status_code == 200 and "Tier tags are a list" in bad_tags.content.decode()


def test_reward_admin_shows_rule_errors(client, staff, program, pts):
    staff()
    response = client.post("/admin/rewards/reward/add/", reward_form(program, pts, voucher_amount=""))
    assert response.status_code == 200
    assert "voucher_amount" in response.content.decode()
    assert not Reward.objects.exists()


def test_voucher_batch_admin_generates_codes_with_csv(client, staff, program):
    staff()
    response = client.post(
        "/admin/rewards/voucherbatch/add/",
        {"program": program.pk, "name": "Spring", "count": "30", "value_kind": "amount", "amount": "3.00"},
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    batch = VoucherBatch.objects.get()
    csv_response = client.get(f"/admin/rewards/voucherbatch/{batch.pk}/codes.csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(csv_response.streaming_content).decode())))
    assert len(rows) == 30 and all(codes.is_well_formed(codes.normalize_code(row["code"])) for row in rows)
    assert {(row["amount"], row["percent"], row["min_spend"]) for row in rows} == {("3.00", "", "")}
    refused = client.post(
        "/admin/rewards/voucherbatch/add/",
        {"program": program.pk, "name": "Bad", "count": "3", "value_kind": "percent"},
    )
    assert refused.status_code == 200 and VoucherBatch.objects.count() == 1


def test_redemption_admin_cancel_action_needs_the_permission(client, staff, member, make_reward, earn):
    earn(member, 1000)
    result = services.reward_redeem(member=member, reward=make_reward(), actor=SYSTEM)
    staff(AUDITOR)
    post = {
        "action": "cancel_redemption",
        "_selected_action": [result.redemption.pk],
        "apply": "1",
        "reason": "x",
    }
    client.post("/admin/rewards/redemption/", post)
    assert Redemption.objects.get().status == "completed"
    staff(SUPPORT_AGENT)
    response = client.post("/admin/rewards/redemption/", post)
    assert response.status_code == 302
    assert Redemption.objects.get().status == "cancelled"
    assert Account.objects.get(member=member).available == 1000


def test_pay_rule_and_pricing_admin_through_services(client, staff, program, pts):
    user = staff()
    response = client.post(
        "/admin/rewards/paywithpointsrule/add/",
        {
            "currency": pts.pk,
            "is_active": "on",
            "minimum_points": "100",
            "step": "50",
            "max_share_percent": "40",
            "minimum_bill": "5",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    assert PayWithPointsRule.objects.get().step == 50
    rule = PayWithPointsRule.objects.get()
    change_url = f"/admin/rewards/paywithpointsrule/{rule.pk}/change/"
    assert client.get(change_url).status_code == 200  # the currency is read-only there
    changed = client.post(
        change_url,
        {
            "is_active": "on",
            "minimum_points": "100",
            "step": "100",
            "max_share_percent": "40",
            "minimum_bill": "5",
        },
    )
    assert changed.status_code == 302, changed.content.decode()[:3000]
    assert PayWithPointsRule.objects.get().step == 100 and rule.history.count() == 2
    tier = tier_services.tier_create(program=program, code="gold", name="Gold", rank=30, actor=SYSTEM)
    response = client.post(
        "/admin/rewards/pricingexception/add/",
        {"program": program.pk, "tier": tier.pk, "sku": "WINE", "category": "", "percent": "20"},
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    assert PricingException.objects.get().history.first().history_user == user
    both = client.post(
        "/admin/rewards/pricingexception/add/",
        {"program": program.pk, "tier": tier.pk, "sku": "A", "category": "b", "percent": "20"},
    )
    assert both.status_code == 200 and PricingException.objects.count() == 1


# --- Import and export jobs -----------------------------------------------------------------------


def test_rewards_import_job_creates_updates_and_reports(program, pts, settings, tmp_path):
    settings.JOBS_STORAGE_DIR = str(tmp_path / "jobs")
    data = (
        b"code,name,kind,costs,stock,voucher_amount,eligible_tiers\r\n"
        b"coffee-5,5 EUR off,amount_voucher,PTS:500,10,5.00,\r\n"
        b"bad-1,Bad,amount_voucher,NOPE:5,,5.00,\r\n"
        b"bad-2,No amount,amount_voucher,PTS:5,,,\r\n"
        b"bad-3,Tier,amount_voucher,PTS:5,,1,platinum\r\n"
    )
    kind = job_services.import_kind_get("rewards")
    job = job_services.import_job_create(
        program_id=program.pk,
        kind="rewards",
        chunks=[data],
        filename="rewards.csv",
        params=job_services.validate_import_params(kind, {}),
        actor=SYSTEM,
    )
    engine.run(job.pk)
    job = Job.objects.get(pk=job.pk)
    report = [dict(zip(engine.REPORT_COLUMNS, line, strict=True)) for line in engine.report_rows(job)]
    assert [(r["outcome"], r["error_codes"]) for r in report] == [
        ("created", ""),
        ("failed", "unknown_currency"),
        ("failed", "invalid_reward"),
        ("failed", "unknown_eligible_tier"),
    ]
    reward = Reward.objects.get()
    assert reward.stock == 10 and reward.costs.get().points == 500
    rows = list(reward_rows(program.pk, {}))
    assert rows[0]["costs"] == "PTS:500" and rows[0]["is_active"] == "true"


# --- GDPR ------------------------------------------------------------------------------------------


def test_gdpr_export_and_erasure_of_shipping_addresses(member, make_reward, earn):
    earn(member, 2000)
    services.reward_redeem(
        member=member,
        reward=make_reward("mug", kind=Reward.Kind.PHYSICAL),
        address=services.ShippingAddress(
            name="Ana Lopez", address_line1="1 rue X", city="Paris", country="FR"
        ),
        actor=SYSTEM,
    )
    services.reward_redeem(member=member, reward=make_reward(), actor=SYSTEM)
    export = member_selectors.member_export(member=member)["rewards"]
    assert [r["reward"] for r in export["redemptions"]] == ["mug", "coffee-5"]
    assert export["redemptions"][0]["shipment"]["address_line1"] == "1 rue X"
    assert len(export["vouchers"]) == 1

    member_services.member_erase(member=member, reason="Request", actor=SYSTEM)

    shipment = Shipment.objects.get()
    assert (shipment.name, shipment.address_line1, shipment.city) == ("", "", "")
    assert shipment.erased_at is not None
    assert Voucher.objects.count() == 1  # the ledger side stays


def test_demo_load_is_idempotent(program, member):
    from tiers import demo as tiers_demo

    tiers_demo.load(program=program, actor=SYSTEM)
    demo.load(program=program, actor=SYSTEM)
    demo.load(program=program, actor=SYSTEM)
    assert Reward.objects.filter(program=program).count() == 5
    assert PayWithPointsRule.objects.count() == 1
    assert set(Reward.objects.get(code="free-coffee").eligible_tiers.values_list("code", flat=True)) == {
        "silver",
        "gold",
    }
    assert Decimal(Reward.objects.get(code="voucher-5").voucher_amount) == Decimal("5")
    # The demo Gold tier unlocks the breakfast by its reward tag; Silver does not.
    assert Reward.objects.get(code="gold-breakfast").tier_tags == ["gold"]
    assert Tier.objects.get(program=program, code="gold").reward_tags == ["gold"]


def test_rewards_admin_pages_render(client, staff, member, make_reward, earn):
    earn(member, 1000)
    reward = make_reward()
    services.reward_redeem(member=member, reward=reward, actor=SYSTEM)
    staff()
    for model in (
        "reward",
        "redemption",
        "voucher",
        "shipment",
        "voucherbatch",
        "paywithpointsrule",
        "pricingexception",
    ):
        assert client.get(f"/admin/rewards/{model}/").status_code == 200, model
    assert client.get(f"/admin/rewards/reward/{reward.pk}/change/").status_code == 200
    assert client.get(f"/admin/rewards/reward/{reward.pk}/history/").status_code == 200
    assert client.get("/admin/rewards/voucherbatch/add/").status_code == 200
    code = codes.format_code(Voucher.objects.get().code).lower()
    assert code.upper()[:4] in client.get(f"/admin/rewards/voucher/?q={code}").content.decode()
