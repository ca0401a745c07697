from datetime import UTC, date, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db.models import F
from django.utils import timezone

from points import selectors, services, upkeep
from points.errors import InvalidDurationError
from points.expiry import add_months, end_of_day, lot_expiry, parse_duration
from points.models import Account, ExpiryWarning, Hold, Lot, Transaction
from points.tasks import points_expire_holds
from tests.celery_support import wait_for
from webhooks.models import Event

from .conftest import SYSTEM


def _run(name, *args) -> str:
    out = StringIO()
    call_command(name, *args, "--no-progress", stdout=out, stderr=StringIO())
    return out.getvalue()


@pytest.fixture
def miles(make_currency):
    return make_currency("MILES", expiry_policy="rolling_days", expiry_period=30)


def test_points_expire_command_expires_due_lots_once(member, make_member, miles, earn, ledger_ok):
    now = timezone.now()
    earn(member, 100, currency=miles, occurred_at=now - timedelta(days=40))
    earn(member, 30, currency=miles)
    other = make_member()
    earn(other, 70, currency=miles, occurred_at=now - timedelta(days=35))

    output = _run("points_expire")

    assert "170 points expired" in output
    assert Account.objects.get(member=member, currency=miles).available == 30
    assert Account.objects.get(member=other, currency=miles).available == 0
    assert Event.objects.filter(type="points.expired").count() == 2
    assert "0 points expired" in _run("points_expire")
    assert Transaction.objects.filter(kind="expire").count() == 2
    ledger_ok()


def test_points_expire_interrupted_run_then_rerun_expires_each_lot_once(member, make_member, miles, earn):
    past = timezone.now() - timedelta(days=40)
    members = [member, make_member(), make_member()]
    for each in members:
        earn(each, 10, currency=miles, occurred_at=past)
    due = upkeep.expiry_due_accounts(at=timezone.now())
    # A run that stopped after its first account...
    upkeep.account_expire(account_id=due[0], at=timezone.now(), actor=SYSTEM)
    # ...and the next run finishes the rest without expiring anything twice.
    summary = upkeep.points_expire(actor=SYSTEM)
    assert summary.transactions == 2 and summary.points == 20
    assert Transaction.objects.filter(kind="expire").count() == 3


def test_points_expire_writes_a_batch_of_accounts_in_a_fixed_number_of_queries(make_member, miles, earn):
    """Year-end expiry touches every member at once: a batch of accounts is one transaction
    with a fixed number of statements (locks, lots, transactions, entries and lots, events),
    whatever its size; each account still gets its own expire transaction and event."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    past = timezone.now() - timedelta(days=40)
    counts = []
    for size in (2, 8):
        members = [make_member() for _ in range(size)]
        for n, each in enumerate(members):
            earn(each, 10 + n, currency=miles, occurred_at=past)
            earn(each, 5, currency=miles, occurred_at=past - timedelta(days=1))
        with CaptureQueriesContext(connection) as queries:
            summary = upkeep.points_expire(actor=SYSTEM, batch_size=100)
        counts.append(len(queries.captured_queries))
        assert (summary.accounts, summary.transactions) == (size, size)
        assert all(Account.objects.get(member=each, currency=miles).available == 0 for each in members)
        assert (
            Event.objects.filter(type="points.expired", member_id__in=[m.pk for m in members]).count() == size
        )
    assert counts[0] == counts[1], counts
    assert not upkeep.points_verify_ledger()


def test_points_expire_by_date_uses_last_valid_day_in_program_timezone(member, miles, earn):
    tz = member.program.tz
    today = timezone.now().astimezone(tz).date()
    # Valid to the end of yesterday, and to the end of today.
    earn(member, 5, currency=miles, occurred_at=end_of_day(today - timedelta(days=32), tz))
    earn(member, 7, currency=miles, occurred_at=end_of_day(today - timedelta(days=31), tz))
    summary = upkeep.points_expire(actor=SYSTEM, on_date=today)
    assert summary.points == 5
    summary = upkeep.points_expire(actor=SYSTEM, on_date=today + timedelta(days=30))
    assert summary.points == 0  # never later than now


def test_points_expire_inactivity_policy_expires_all_points(member, make_currency, earn):
    currency = make_currency("SLEEPY", expiry_policy="inactivity", expiry_period=6)
    earn(member, 50, currency=currency, occurred_at=timezone.now() - timedelta(days=200))
    assert upkeep.points_expire(actor=SYSTEM).points == 50
    earn(member, 20, currency=currency)
    assert upkeep.points_expire(actor=SYSTEM).points == 0
    balances = selectors.member_balances(members=[member])[member.pk]
    sleepy = next(b for b in balances if b.currency.code == "SLEEPY")
    assert sleepy.next_expiry_amount == 20 and sleepy.next_expiry_at is not None


def test_points_release_pending_command_activates_due_points(member, earn, monkeypatch, ledger_ok):
    now = timezone.now()
    earn(member, 40, pending_until=now + timedelta(days=14))
    earn(member, 10, pending_until=now + timedelta(days=40))
    monkeypatch.setattr(timezone, "now", lambda: now + timedelta(days=15))
    assert "40 pending points became available in 1 accounts" in _run("points_release_pending")
    account = Account.objects.get(member=member)
    assert (account.available, account.pending) == (40, 10)
    assert Event.objects.filter(type="points.activated").count() == 1
    assert "0 pending points" in _run("points_release_pending")
    ledger_ok()


def test_points_expire_holds_command_releases_expired_holds(member, earn, ledger_ok):
    earn(member, 100)
    expired = services.hold_create(member=member, amount=30, actor=SYSTEM).hold
    kept = services.hold_create(member=member, amount=20, actor=SYSTEM).hold
    Hold.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert "Released 1 expired holds (30 points)" in _run("points_expire_holds")
    expired.refresh_from_db()
    kept.refresh_from_db()
    assert (expired.state, kept.state) == ("expired", "active")
    account = Account.objects.get(member=member)
    assert (account.available, account.held) == (80, 20)
    assert Event.objects.filter(type="hold.released").latest("id").data["hold"]["state"] == "expired"
    ledger_ok()


@pytest.mark.celery_queues("default")
def test_points_expire_holds_task_runs_in_a_real_worker(member, earn, celery_worker):
    earn(member, 100)
    hold = services.hold_create(member=member, amount=30, actor=SYSTEM).hold
    Hold.objects.filter(pk=hold.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    points_expire_holds.delay()
    wait_for(lambda: Hold.objects.get(pk=hold.pk).state == "expired", message=celery_worker.output())
    assert Account.objects.get(member=member).held == 0


def test_points_expiry_warnings_once_per_offset(member, miles, earn, monkeypatch):
    now = timezone.now()
    earn(member, 60, currency=miles, occurred_at=now - timedelta(days=10))  # expires in ~20 days
    assert upkeep.points_expiry_warnings(offsets=[30, 7])["warnings"] == 1
    assert upkeep.points_expiry_warnings(offsets=[30, 7])["warnings"] == 0
    event = Event.objects.get(type="points.expiring")
    assert (event.data["days_before"], event.data["amount"], event.data["currency"]) == (30, 60, "MILES")
    monkeypatch.setattr(timezone, "now", lambda: now + timedelta(days=15))
    assert upkeep.points_expiry_warnings(offsets=[30, 7])["warnings"] == 1
    assert upkeep.points_expiry_warnings(offsets=[30, 7])["warnings"] == 0
    assert sorted(ExpiryWarning.objects.values_list("days_before", flat=True)) == [7, 30]


def test_points_expiry_warnings_late_run_sends_closest_offset_only(member, miles, earn):
    earn(member, 60, currency=miles, occurred_at=timezone.now() - timedelta(days=26))  # ~4 days left
    output = _run("points_expiry_warnings", "--days", "30", "7")
    assert "Sent 1 expiry warnings (60 points)" in output
    assert Event.objects.get(type="points.expiring").data["days_before"] == 7
    assert upkeep.points_expiry_warnings(offsets=[30, 7])["warnings"] == 0


def test_points_verify_ledger_command_reports_differences(member, earn):
    earn(member, 100)
    assert "consistent" in _run("points_verify_ledger")
    Account.objects.filter(member=member).update(available=F("available") + 5)
    Lot.objects.filter(account__member=member).update(remaining=99)
    out = StringIO()
    with pytest.raises(CommandError, match="differences"):
        call_command("points_verify_ledger", "--no-progress", stdout=out, stderr=StringIO())
    report = out.getvalue()
    assert "available is 105, entries say 100" in report
    assert "remaining is 99, entries say 100" in report


def test_expiry_rules_end_of_day_months_and_durations(program, make_currency):
    currency = make_currency("M", expiry_policy="rolling_months", expiry_period=1)
    earned = datetime(2026, 1, 31, 22, 30, tzinfo=UTC)  # 31 Jan 23:30 in Paris
    assert lot_expiry(currency, earned) == datetime(2026, 2, 28, 23, 0, tzinfo=UTC)
    assert add_months(date(2024, 1, 31), 1) == date(2024, 2, 29)
    late = datetime(2026, 1, 31, 23, 30, tzinfo=UTC)  # already 1 Feb in Paris
    assert lot_expiry(currency, late) == datetime(2026, 3, 1, 23, 0, tzinfo=UTC)
    assert parse_duration("90d") == timedelta(days=90)
    assert parse_duration("2w") == timedelta(days=14)
    assert parse_duration("1y") == timedelta(days=365)
    for bad in ("", "0d", "5x", "d", "1.5d", "10000y"):
        with pytest.raises(InvalidDurationError):
            parse_duration(bad)


def test_default_currency_migration_covers_existing_programs(db):
    import importlib

    from django.apps import apps

    from points.models import Currency
    from tests.factories import ProgramFactory

    program = ProgramFactory()  # bypasses program_create, like a program from before the app
    assert not Currency.objects.filter(program=program).exists()
    migration = importlib.import_module("points.migrations.0003_default_currencies")
    migration.forward(apps, None)
    currency = Currency.objects.get(program=program)
    assert (currency.code, currency.is_default) == ("PTS", True)
    assert Account.objects.filter(currency=currency, member__isnull=True).count() == 4


def test_points_expire_inactivity_finds_accounts_after_short_months(member, make_currency, earn):
    currency = make_currency("SHORT", expiry_policy="inactivity", expiry_period=2)
    earn(member, 10, currency=currency, occurred_at=datetime(2026, 1, 1, 11, tzinfo=UTC))
    account = Account.objects.get(member=member, currency=currency)
    # Two months after 1 Jan end with 1 Mar (59 days) in Paris: due on 2 Mar, not before.
    assert upkeep.expiry_due_accounts(at=datetime(2026, 3, 1, 22, 59, tzinfo=UTC)) == []
    assert upkeep.expiry_due_accounts(at=datetime(2026, 3, 1, 23, 0, tzinfo=UTC)) == [account.pk]


def test_points_expire_command_accepts_an_instant(member, miles, earn):
    earn(member, 10, currency=miles, occurred_at=timezone.now() - timedelta(days=40))
    assert "10 points expired" in _run("points_expire", "--at", "2099-01-01T00:00:00")
    with pytest.raises(CommandError):
        _run("points_expire", "--program", "nope")
    with pytest.raises(CommandError, match="batch-size"):
        _run("points_expire", "--batch-size", "0")
