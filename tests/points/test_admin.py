import pytest
from django.contrib.auth.models import Group, User

from membership_site.roles import SUPPORT_AGENT
from points.models import Account, Currency, Transaction


@pytest.fixture
def admin_client_logged(client, db):
    user = User.objects.create_superuser("boss", "boss@example.com", "pw-123456789")
    client.force_login(user)
    return client


@pytest.fixture
def support_client(client, db):
    user = User.objects.create_user("agent", "agent@example.com", "pw-123456789", is_staff=True)
    user.groups.add(Group.objects.get(name=SUPPORT_AGENT))
    client.force_login(user)
    return client


def test_currency_admin_page_shows_outstanding_liability(admin_client_logged, member, pts, earn):
    earn(member, 250)
    page = admin_client_logged.get(f"/admin/points/currency/{pts.pk}/change/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "Outstanding liability" in text
    assert "250 points" in text and "2.50 EUR" in text


def test_currency_admin_create_goes_through_service(admin_client_logged, program):
    response = admin_client_logged.post(
        "/admin/points/currency/add/",
        {
            "program": program.pk,
            "code": "stamps",
            "name": "Stamps",
            "value_points": 10,
            "value_amount": "1.00",
            "expiry_policy": "rolling_days",
            "expiry_period": 90,
            "minimum_redemption": 1,
            "is_active": "on",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    currency = Currency.objects.get(program=program, code="STAMPS")
    assert Account.objects.filter(currency=currency, member__isnull=True).count() == 4
    bad = admin_client_logged.post(
        "/admin/points/currency/add/",
        {
            "program": program.pk,
            "code": "x",
            "name": "X",
            "value_points": 1,
            "value_amount": "1",
            "expiry_policy": "rolling_days",
            "expiry_period": 0,
            "minimum_redemption": 1,
        },
    )
    assert bad.status_code == 200 and not Currency.objects.filter(code="X").exists()


def test_manual_adjustment_form_requires_reason_and_uses_service(support_client, member, program):
    url = "/admin/points/transaction/adjust/"
    assert support_client.get(url).status_code == 200
    missing = support_client.post(url, {"program": program.pk, "member_number": member.number, "amount": 50})
    assert missing.status_code == 200 and not Transaction.objects.exists()
    response = support_client.post(
        url, {"program": program.pk, "member_number": member.number, "amount": 50, "reason": "Lost receipt"}
    )
    assert response.status_code == 302
    txn = Transaction.objects.get(kind="adjust")
    assert (txn.amount, txn.reason, txn.actor_user.username) == (50, "Lost receipt", "agent")
    too_much = support_client.post(
        url, {"program": program.pk, "member_number": member.number, "amount": -80, "reason": "Oops"}
    )
    assert too_much.status_code == 200 and "available" in too_much.content.decode()
    assert Transaction.objects.filter(kind="adjust").count() == 1


def test_manual_adjustment_needs_permission(client, member, db):
    user = User.objects.create_user("viewer", "v@example.com", "pw-123456789", is_staff=True)
    client.force_login(user)
    assert client.get("/admin/points/transaction/adjust/").status_code == 403


def test_ledger_admin_is_read_only(admin_client_logged, member, earn):
    txn = earn(member, 10).transaction
    assert admin_client_logged.get("/admin/points/transaction/add/").status_code == 403
    page = admin_client_logged.get(f"/admin/points/transaction/{txn.pk}/change/")
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    assert admin_client_logged.post(f"/admin/points/transaction/{txn.pk}/delete/").status_code == 403
    listing = admin_client_logged.get("/admin/points/account/", {"q": member.number})
    assert member.number in listing.content.decode()


def test_account_admin_adjustment_action(admin_client_logged, member, earn):
    earn(member, 10)
    account = Account.objects.get(member=member)
    response = admin_client_logged.post(
        "/admin/points/account/",
        {
            "action": "manual_adjustment",
            "_selected_action": [account.pk],
            "apply": "1",
            "amount": 5,
            "reason": "Bonus",
        },
    )
    assert response.status_code == 302
    assert Account.objects.get(pk=account.pk).available == 15
