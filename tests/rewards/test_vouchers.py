"""Vouchers: codes, validation, use, cancel, campaign batches, expiry (command and task)."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.utils import timezone

from programs import services as program_services
from rewards import codes, services
from rewards.models import Voucher
from rewards.tasks import rewards_expire_vouchers
from webhooks.models import Event

from .conftest import SYSTEM

pytestmark = pytest.mark.django_db


def test_voucher_codes_are_unambiguous_and_carry_a_check_character():
    drawn = {codes.generate_code() for _ in range(2000)}
    assert len(drawn) == 2000
    for code in drawn:
        assert re.fullmatch(r"[2-9A-HJKMNP-Z]{16}", code) and codes.is_well_formed(code)
    code = next(iter(drawn))
    for index in range(len(code)):  # every single mistyped character is caught
        for wrong in codes.VOUCHER_ALPHABET:
            if wrong != code[index]:
                assert not codes.is_well_formed(code[:index] + wrong + code[index + 1 :])
    swapped = [code[:i] + code[i + 1] + code[i] + code[i + 2 :] for i in range(15) if code[i] != code[i + 1]]
    assert not any(codes.is_well_formed(s) for s in swapped)
    assert codes.normalize_code(" " + codes.format_code(code).lower() + " ") == code


@pytest.fixture
def paris(program):
    return program_services.location_create(program=program, code="paris-01", name="Paris", actor=SYSTEM)


@pytest.fixture
def voucher(member, make_reward, earn, paris):
    earn(member, 1000)
    reward = make_reward(voucher_min_spend=Decimal("20"), voucher_skus=["COF-1", "COF-2"], locations=[paris])
    result = services.reward_redeem(member=member, reward=reward, actor=SYSTEM)
    return Voucher.objects.get(redemption=result.redemption)


def check_url(voucher, query=""):
    return f"/api/v1/vouchers/{codes.format_code(voucher.code).lower()}{query}"


def test_voucher_api_validate_reports_conditions(rewards_api, voucher, member):
    body = rewards_api.get(check_url(voucher)).json()
    assert body["usable"] is True and body["unchecked"] == ["amount", "location", "skus"]
    assert body["voucher"]["min_spend"] == "20.00" and body["voucher"]["locations"] == ["paris-01"]
    bad = rewards_api.get(check_url(voucher, "?amount=10&location=lyon&sku=TEA&member_id=999999")).json()
    assert bad["usable"] is False
    assert bad["reasons"] == ["other_member", "below_min_spend", "location_not_allowed", "sku_not_in_basket"]
    good = rewards_api.get(
        check_url(voucher, f"?amount=25&location=paris-01&sku=COF-2&member_id={member.pk}")
    )
    assert good.json()["usable"] is True and good.json()["unchecked"] == []
    assert rewards_api.get(check_url(voucher, "?amount=abc")).status_code == 400


def test_voucher_api_unknown_or_mistyped_code_is_404(rewards_api, make_api, voucher, other_program):
    typo = voucher.code[:-1] + ("2" if voucher.code[-1] != "2" else "3")
    assert rewards_api.get(f"/api/v1/vouchers/{typo}").json()["code"] == "voucher_not_found"
    other = make_api(target_program=other_program)
    assert other.get(check_url(voucher)).status_code == 404
    assert make_api(["points:read"]).get(check_url(voucher)).status_code == 403


def test_voucher_api_use_once(rewards_api, voucher):
    url = check_url(voucher).replace("/vouchers/", "/vouchers/") + "/use"
    missing = rewards_api.post(
        url, {"reference": "R-1", "location": "paris-01", "skus": ["COF-1"]}, format="json"
    )
    assert missing.status_code == 400 and missing.json()["errors"][0]["field"] == "amount"
    low = rewards_api.post(
        url, {"reference": "R-1", "amount": "19.99", "location": "paris-01", "skus": ["COF-1"]}, format="json"
    )
    assert low.status_code == 409 and low.json()["reasons"] == ["below_min_spend"]
    body = {"reference": "R-1", "amount": "25.00", "location": "paris-01", "skus": ["COF-1"]}
    used = rewards_api.post(url, body, format="json")
    assert used.status_code == 201, used.content
    assert used.json()["status"] == "used" and used.json()["used_location"] == "paris-01"
    assert rewards_api.post(url, body, format="json").status_code == 200  # same purchase: the first use
    again = rewards_api.post(url, {**body, "reference": "R-2"}, format="json")
    assert again.status_code == 409 and again.json()["reasons"] == ["used"]
    assert Event.objects.filter(type="voucher.used").count() == 1
    cancel = rewards_api.post(url.replace("/use", "/cancel"), {"reason": "x"}, format="json")
    assert cancel.status_code == 409 and cancel.json()["code"] == "voucher_not_cancellable"


def test_voucher_api_cancel_of_bought_voucher_refunds_points(rewards_api, voucher, member):
    from points.models import Account

    response = rewards_api.post(check_url(voucher) + "/cancel", {"reason": "Wrong item"}, format="json")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    assert Account.objects.get(member=member).available == 1000
    assert voucher.redemption.__class__.objects.get(pk=voucher.redemption_id).status == "cancelled"


def test_voucher_use_expired_is_refused(voucher, monkeypatch):
    later = voucher.valid_until + timedelta(seconds=1)
    monkeypatch.setattr(timezone, "now", lambda: later)
    with pytest.raises(services.VoucherNotUsableError) as refused:
        services.voucher_use(voucher=voucher, reference="R", basket=services.BasketInput(), actor=SYSTEM)
    assert refused.value.extra["reasons"][0] == "expired"


def test_voucher_batch_create_campaign_codes(program, paris):
    batch = services.voucher_batch_create(
        program=program,
        name="Spring",
        count=250,
        value_kind="percent",
        percent=Decimal("15"),
        min_spend=Decimal("30"),
        locations=[paris],
        valid_until=timezone.now() + timedelta(days=10),
        actor=SYSTEM,
    )
    vouchers = Voucher.objects.filter(batch=batch)
    assert vouchers.count() == 250 and vouchers.filter(member__isnull=True, status="issued").count() == 250
    assert len(set(vouchers.values_list("code", flat=True))) == 250
    assert all(codes.is_well_formed(code) for code in vouchers.values_list("code", flat=True))
    assert Voucher.locations.through.objects.filter(voucher__batch=batch).count() == 250
    # Each code is announced (voucher.issued, no member), so the event stream knows every
    # voucher before it is used.
    issued = Event.objects.filter(type="voucher.issued").order_by("id")
    assert issued.count() == 250 and not issued.filter(member_id__isnull=False).exists()
    payloads = {event.data["voucher"]["code"]: event.data["voucher"] for event in issued}
    assert set(payloads) == {codes.format_code(code) for code in vouchers.values_list("code", flat=True)}
    first = next(iter(payloads.values()))
    assert (first["batch_id"], first["member_id"], first["redemption_id"]) == (batch.pk, None, None)
    assert (first["value_kind"], first["percent"], first["min_spend"], first["locations"]) == (
        "percent",
        "15.00",
        "30.00",
        ["paris-01"],
    )
    used = vouchers.first()
    services.voucher_use(
        voucher=used,
        reference="R-1",
        basket=services.BasketInput(amount=Decimal("40"), location_code="paris-01"),
        location=paris,
        actor=SYSTEM,
    )
    assert Event.objects.get(type="voucher.used").data["voucher"]["batch_id"] == batch.pk
    with pytest.raises(services.InvalidVoucherBatchError):
        services.voucher_batch_create(program=program, name="x", count=0, value_kind="amount", actor=SYSTEM)
    with pytest.raises(services.InvalidVoucherBatchError):
        services.voucher_batch_create(program=program, name="x", count=5, value_kind="amount", actor=SYSTEM)


def test_vouchers_expire_command_and_task(program, monkeypatch):
    past = timezone.now() - timedelta(minutes=1)
    services.voucher_batch_create(
        program=program,
        name="Old",
        count=3,
        value_kind="amount",
        amount=Decimal("2"),
        valid_until=past,
        actor=SYSTEM,
    )
    services.voucher_batch_create(
        program=program, name="New", count=2, value_kind="amount", amount=Decimal("2"), actor=SYSTEM
    )
    call_command("rewards_expire_vouchers", "--no-progress", "--batch-size", "2")
    assert Voucher.objects.filter(status="expired").count() == 3
    assert Event.objects.filter(type="voucher.expired").count() == 3
    call_command("rewards_expire_vouchers", "--no-progress")  # nothing twice
    assert Event.objects.filter(type="voucher.expired").count() == 3
    Voucher.objects.filter(batch__name="New").update(valid_until=past)
    assert rewards_expire_vouchers() == 2
    assert Voucher.objects.filter(status="expired").count() == 5
