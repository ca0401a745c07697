"""The point_adjustments import: through points_adjust, row by row, with stable error codes;
dry run, all-or-nothing, re-imports and the ledger's own check."""

from __future__ import annotations

import io
import threading

import pytest
from django.core.management import call_command
from django.db import connection

from jobs import engine
from jobs.models import Job
from members import services as member_services
from points import services as points_services
from points.errors import InsufficientPointsError
from points.models import Account, Transaction
from tests.db_support import wait_for_lock_waiter
from tests.jobs.conftest import csv_bytes, outcomes, report
from tiers import services as tier_services
from tiers.models import MemberTier, TierActivity
from webhooks.models import Event


@pytest.fixture
def ana(make_member):
    return make_member(number="1000001", email="ana@example.com", first_name="Ana")


@pytest.fixture
def bob(make_member):
    return make_member(number="1000002", email="bob@example.com", first_name="Bob")


@pytest.fixture
def stamps(program, system_actor):
    return points_services.currency_create(program=program, code="STAMPS", name="Stamps", actor=system_actor)


def _balance(member, code: str = "PTS") -> int:
    account = Account.objects.filter(member=member, currency__code=code).first()
    return account.available if account else 0


def _adjustments():
    return Transaction.objects.filter(kind=Transaction.Kind.ADJUST)


def _verify_ledger() -> None:
    call_command("points_verify_ledger", "--no-progress", stdout=io.StringIO(), stderr=io.StringIO())


GOOD = [
    {"number": "1000001", "amount": "100", "reason": "Welcome", "reference": "adj-1"},
    {"number": "1000002", "currency": "stamps", "amount": "3", "reason": "Card", "reference": "adj-2"},
    {
        "number": "1000001",
        "amount": "-40",
        "reason": "Correction",
        "reference": "adj-3",
        "description": "Oops",
    },
]


def test_point_adjustments_import_good_rows_go_through_the_service(import_and_run, ana, bob, stamps):
    job = import_and_run("point_adjustments", csv_bytes(GOOD))

    assert job.status == Job.Status.SUCCEEDED
    assert outcomes(job) == [(1, "created", ""), (2, "created", ""), (3, "created", "")]
    assert (_balance(ana), _balance(bob, "STAMPS")) == (60, 3)
    by_reference = {txn.reference: txn for txn in _adjustments()}
    assert [(line["object_id"], line["object_ref"]) for line in report(job)] == [
        (by_reference[reference].pk, reference) for reference in ("adj-1", "adj-2", "adj-3")
    ]
    correction = by_reference["adj-3"]
    assert (correction.signed_amount, correction.reason, correction.description) == (
        -40,
        "Correction",
        "Oops",
    )
    assert correction.metadata == {"import_job": job.pk, "import_row": 3}
    assert correction.actor_user_id is None and correction.actor_integration_id is None
    events = Event.objects.filter(type="points.adjusted", member_id=ana.pk).order_by("id")
    assert [event.data["transaction"]["signed_amount"] for event in events] == [100, -40]
    assert events[1].data["reason"] == "Correction"
    _verify_ledger()


def test_point_adjustments_import_bad_rows_have_stable_codes_and_good_rows_go_on(
    import_and_run, program, ana, bob, make_member, system_actor
):
    cy = make_member(number="1000003", email="cy@example.com")
    member_services.member_status_action(member=cy, action="terminate", reason="Left", actor=system_actor)
    rows = [
        {"number": "1000001", "amount": "50", "reason": "Ok", "reference": "r1"},
        {"number": "9999999", "amount": "5", "reason": "Who?", "reference": "r2"},
        {"number": "1000001", "currency": "MILES", "amount": "5", "reason": "Which?", "reference": "r3"},
        {"number": "1000002", "amount": "-5", "reason": "Too much", "reference": "r4"},
        {"number": "1000002", "amount": "ten", "reason": "Typo", "reference": "r5"},
        {"number": "1000002", "amount": "0", "reason": "Nothing", "reference": "r6"},
        {"number": "1000002", "amount": "5", "reason": "", "reference": "r7"},
        {"number": "1000002", "amount": "5", "reason": "No reference", "reference": ""},
        {"number": "1000001", "amount": "7", "reason": "Twice", "reference": "r1"},
        {"number": "1000003", "amount": "5", "reason": "Gone", "reference": "r10"},
        {"number": "12ab", "amount": "5", "reason": "Bad number", "reference": "r11"},
        {"number": "", "amount": "5", "reason": "No member", "reference": "r12"},
        {"number": "1000002", "amount": "25", "reason": "Ok", "reference": "r13"},
    ]
    job = import_and_run("point_adjustments", csv_bytes(rows))

    assert job.status == Job.Status.PARTIALLY_SUCCEEDED
    assert job.counts == {"created": 2, "updated": 0, "unchanged": 0, "failed": 11}
    assert outcomes(job) == [
        (1, "created", ""),
        (2, "failed", "unknown_member"),
        (3, "failed", "unknown_currency"),
        (4, "failed", "would_go_negative"),
        (5, "failed", "bad_format"),
        (6, "failed", "bad_format"),
        (7, "failed", "missing_field"),
        (8, "failed", "missing_field"),
        (9, "failed", "duplicate_in_file"),
        (10, "failed", "member_terminated"),
        (11, "failed", "bad_format"),
        (12, "failed", "missing_field"),
        (13, "created", ""),
    ]
    fields = {line["row"]: line["error_fields"] for line in report(job)}
    assert (fields[3], fields[5], fields[7], fields[8], fields[11]) == (
        "currency",
        "amount",
        "reason",
        "reference",
        "number",
    )
    assert (_balance(ana), _balance(bob)) == (50, 25)
    assert _adjustments().count() == 2
    _verify_ledger()


def test_point_adjustments_import_reimporting_the_file_adds_nothing(import_and_run, ana, bob, stamps):
    import_and_run("point_adjustments", csv_bytes(GOOD))
    events = Event.objects.count()

    again = import_and_run("point_adjustments", csv_bytes(GOOD))

    assert again.status == Job.Status.SUCCEEDED
    assert again.counts == {"created": 0, "updated": 0, "unchanged": 3, "failed": 0}
    assert [line["error_codes"] for line in report(again)] == ["duplicate_reference"] * 3
    by_reference = dict(_adjustments().values_list("reference", "pk"))
    assert [line["object_id"] for line in report(again)] == [by_reference[row["reference"]] for row in GOOD]
    assert _adjustments().count() == 3
    assert (_balance(ana), _balance(bob, "STAMPS")) == (60, 3)
    assert Event.objects.filter(type="points.adjusted").count() == 3
    assert Event.objects.count() == events + 1  # only the second job's job.finished


def test_point_adjustments_import_records_qualifying_activity_like_the_api(
    import_and_run, program, ana, bob, stamps, system_actor
):
    """Each created adjustment in the default currency is tiers activity of source
    ``adjustment`` (as ``POST /members/{id}/points/adjust``); other currencies and
    re-imports add none; with ``adjustments_qualify`` the import upgrades the member."""
    bronze = tier_services.tier_create(
        program=program, code="bronze", name="Bronze", rank=10, is_default=True, actor=system_actor
    )
    tier_services.tier_create(
        program=program, code="silver", name="Silver", rank=20, qualify_points=50, actor=system_actor
    )
    tier_services.tier_settings_update(program=program, adjustments_qualify=True, actor=system_actor)
    assert bronze.is_default

    job = import_and_run("point_adjustments", csv_bytes(GOOD))
    import_and_run("point_adjustments", csv_bytes(GOOD))

    assert job.status == Job.Status.SUCCEEDED
    by_reference = dict(_adjustments().values_list("reference", "pk"))
    assert sorted(TierActivity.objects.values_list("member_id", "source", "reference", "points")) == sorted(
        [
            (ana.pk, "adjustment", f"adjust:{by_reference['adj-1']}", 100),
            (ana.pk, "adjustment", f"adjust:{by_reference['adj-3']}", -40),
        ]
    )
    assert MemberTier.objects.select_related("tier").get(member=ana).tier.code == "silver"
    assert Event.objects.filter(type="tier.changed", member_id=ana.pk).count() == 1
    assert MemberTier.objects.select_related("tier").get(member=bob).tier.code == "bronze"  # stamps only
    _verify_ledger()


def test_point_adjustments_import_reference_used_by_another_operation_fails(import_and_run, ana, bob):
    import_and_run("point_adjustments", csv_bytes(GOOD[:1]))
    rows = [
        {"number": "1000002", "amount": "100", "reason": "Welcome", "reference": "adj-1"},  # other member
        {"number": "1000001", "amount": "99", "reason": "Welcome", "reference": "adj-1x"},
    ]
    job = import_and_run("point_adjustments", csv_bytes(rows))
    assert outcomes(job) == [(1, "failed", "duplicate_reference"), (2, "created", "")]
    assert (_balance(ana), _balance(bob)) == (199, 0)


def test_point_adjustments_import_keeps_file_order_for_one_member_within_a_chunk(
    import_and_run, settings, ana, bob
):
    """Rows are applied by member id inside a chunk (lock order), but one member's rows
    keep the file's order: a credit then a debit of the same member both go through."""
    settings.JOBS_CHUNK_SIZE = 10
    rows = [
        {"number": "1000002", "amount": "10", "reason": "A", "reference": "o1"},
        {"number": "1000001", "amount": "50", "reason": "B", "reference": "o2"},
        {"number": "1000002", "amount": "-10", "reason": "C", "reference": "o3"},
        {"number": "1000001", "amount": "-50", "reason": "D", "reference": "o4"},
    ]
    job = import_and_run("point_adjustments", csv_bytes(rows))
    assert [outcome for _row, outcome, _codes in outcomes(job)] == ["created"] * 4
    assert (_balance(ana), _balance(bob)) == (0, 0)


def test_point_adjustments_import_dry_run_changes_nothing(import_and_run, ana, bob, stamps):
    events = Event.objects.count()
    job = import_and_run("point_adjustments", csv_bytes(GOOD), dry_run=True)

    assert job.status == Job.Status.SUCCEEDED
    assert outcomes(job) == [(1, "created", ""), (2, "created", ""), (3, "created", "")]
    assert not _adjustments().exists()
    assert (_balance(ana), _balance(bob, "STAMPS")) == (0, 0)
    assert Event.objects.count() == events + 1  # job.finished only


def test_point_adjustments_import_all_or_nothing_rolls_back(import_and_run, ana, bob, stamps):
    rows = [*GOOD, {"number": "1000002", "amount": "-1000", "reason": "Too much", "reference": "adj-9"}]
    failed = import_and_run("point_adjustments", csv_bytes(rows), mode="all_or_nothing")

    assert failed.status == Job.Status.FAILED
    assert outcomes(failed) == [
        (1, "not_applied", ""),
        (2, "not_applied", ""),
        (3, "not_applied", ""),
        (4, "failed", "would_go_negative"),
    ]
    assert not _adjustments().exists()

    applied = import_and_run("point_adjustments", csv_bytes(GOOD), mode="all_or_nothing")
    assert applied.status == Job.Status.SUCCEEDED
    assert _adjustments().count() == 3
    _verify_ledger()


def test_point_adjustments_import_matches_by_email_and_json(import_and_run, ana, program):
    rows = b'[{"Email": "ANA@example.com", "Amount": 20, "Reason": "Json", "Reference": "j-1"}]'
    job = import_and_run("point_adjustments", rows, match="email")
    assert outcomes(job) == [(1, "created", "")]
    assert _balance(ana) == 20


def test_point_adjustments_import_negative_currency_allows_debits_below_zero(
    import_and_run, ana, program, system_actor
):
    points_services.currency_create(
        program=program, code="CREDIT", name="Credit", allow_negative=True, actor=system_actor
    )
    rows = [
        {"number": "1000001", "currency": "CREDIT", "amount": "-30", "reason": "Advance", "reference": "n1"}
    ]
    job = import_and_run("point_adjustments", csv_bytes(rows))
    assert outcomes(job) == [(1, "created", "")]
    assert _balance(ana, "CREDIT") == -30


def test_point_adjustments_import_inactive_currency_fails(import_and_run, ana, stamps, system_actor):
    points_services.currency_update(currency=stamps, is_active=False, actor=system_actor)
    rows = [{"number": "1000001", "currency": "STAMPS", "amount": "3", "reason": "Card", "reference": "s1"}]
    job = import_and_run("point_adjustments", csv_bytes(rows))
    assert outcomes(job) == [(1, "failed", "currency_inactive")]
    assert not _adjustments().exists()


@pytest.mark.django_db(transaction=True)
def test_point_adjustments_import_two_jobs_on_the_same_members_at_once(
    broker_without_worker, start_import, make_member, settings
):
    """Two imports touching the same members in opposite file orders, run by two workers
    at the same time (real threads, own connections): accounts are locked in id order at
    the start of each chunk and counters by member, so neither deadlocks nor loses a
    point."""
    settings.JOBS_CHUNK_SIZE = 20
    members = [make_member(number=str(2_000_000 + n)) for n in range(20)]
    forward = [
        {"number": member.number, "amount": "10", "reason": "A", "reference": f"a-{member.number}"}
        for member in members
    ]
    backward = [
        {"number": member.number, "amount": "5", "reason": "B", "reference": f"b-{member.number}"}
        for member in reversed(members)
    ]
    jobs = [start_import("point_adjustments", csv_bytes(rows)) for rows in (forward, backward)]
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def runner(job_id: int) -> None:
        try:
            barrier.wait()
            engine.run(job_id)
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=runner, args=(job.pk,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert not errors
    assert [Job.objects.get(pk=job.pk).status for job in jobs] == [Job.Status.SUCCEEDED] * 2
    assert [_balance(member) for member in members] == [15] * 20
    assert _adjustments().count() == 40
    _verify_ledger()


def _ledger_picture(program) -> dict:
    """What the ledger, the tiers and the events hold for ``program``'s members, by member
    number, without ids or clock times (two programs fed the same rows compare equal)."""
    from points.models import Lot

    picture = {}
    for member in program.members.order_by("number"):
        accounts = Account.objects.filter(member=member).select_related("currency").order_by("currency__code")
        events = Event.objects.filter(member_id=member.pk).order_by("member_sequence")
        state = MemberTier.objects.filter(member=member).select_related("tier").first()
        picture[member.number] = {
            "accounts": [
                (a.currency.code, a.available, a.pending, a.held, a.lifetime_earned, a.last_activity_at)
                for a in accounts
            ],
            "lots": sorted(
                (
                    lot.account.currency.code,
                    lot.amount,
                    lot.remaining,
                    lot.expires_at and lot.expires_at.date(),
                )
                for lot in Lot.objects.filter(account__member=member).select_related("account__currency")
            ),
            "transactions": sorted(
                (txn.reference, txn.currency.code, txn.signed_amount, txn.reason, txn.description)
                for txn in Transaction.objects.filter(member=member, kind="adjust").select_related("currency")
            ),
            "activity": sorted(TierActivity.objects.filter(member=member).values_list("source", "points")),
            "tier": state.tier.code if state else None,
            "adjusted_events": [
                (
                    event.data["currency"],
                    event.data["balance"],
                    event.data["reason"],
                    {k: v for k, v in event.data["transaction"].items() if k not in ("id", "occurred_at")},
                )
                for event in events
                if event.type == "points.adjusted"
            ],
            "final_tier_event": [event.data["to"] for event in events if event.type == "tier.changed"][-1:],
        }
    return picture


def test_point_adjustments_import_writes_credits_together_exactly_as_the_service_would(
    start_import, run_job, make_program, make_member, settings, system_actor
):
    """Members whose rows in a chunk are all credits are written together (one insert of
    transactions per currency, whatever the rows); the ledger, lots, events, qualifying
    activity and tiers end exactly as ``points_adjust_qualifying`` row by row leaves them
    (the reference program). A member with a debit among their rows goes row by row."""
    from django.test.utils import CaptureQueriesContext

    from points.earning import qualifying

    settings.JOBS_CHUNK_SIZE = 20
    rows = [
        {"number": "3000001", "amount": "100", "reason": "Opening", "reference": "c-1"},
        {"number": "3000002", "amount": "70", "reason": "Opening", "reference": "c-2", "description": "Hi"},
        {"number": "3000001", "amount": "90", "reason": "Bonus", "reference": "c-3"},  # crosses Silver
        {"number": "3000003", "currency": "ROLL", "amount": "5", "reason": "Stamp", "reference": "c-4"},
        {"number": "3000002", "currency": "ROLL", "amount": "8", "reason": "Stamp", "reference": "c-5"},
        {"number": "3000004", "amount": "-30", "reason": "Fix", "reference": "c-6"},  # fails alone
        {"number": "3000004", "amount": "50", "reason": "Opening", "reference": "c-7"},
        {"number": "3000005", "amount": "40", "reason": "Opening", "reference": "c-8"},
        {"number": "3000005", "amount": "-15", "reason": "Fix", "reference": "c-9"},
    ]
    programs = [make_program(), make_program()]
    for program in programs:
        points_services.currency_create(
            program=program,
            code="ROLL",
            name="Rolling",
            expiry_policy="rolling_days",
            expiry_period=30,
            actor=system_actor,
        )
        tier_services.tier_create(program=program, code="bronze", name="Bronze", rank=10, actor=system_actor)
        tier_services.tier_create(
            program=program, code="silver", name="Silver", rank=20, qualify_points=150, actor=system_actor
        )
        tier_services.tier_settings_update(program=program, adjustments_qualify=True, actor=system_actor)
        for n in range(1, 6):
            make_member(program, number=str(3_000_000 + n))
    imported, reference = programs

    job = start_import("point_adjustments", csv_bytes(rows), target_program=imported)
    with CaptureQueriesContext(connection) as queries:
        job = run_job(job)
    # By hand, in the order the job applies them: by member, then file order.
    for row in sorted(rows, key=lambda row: (row["number"], rows.index(row))):
        member = reference.members.get(number=row["number"])
        currency = reference.points_currencies.get(code=row.get("currency") or "PTS")
        try:
            qualifying.points_adjust_qualifying(
                member=member,
                amount=int(row["amount"]),
                reason=row["reason"],
                reference=row["reference"],
                description=row.get("description", ""),
                currency=currency,
                actor=system_actor,
            )
        except InsufficientPointsError:
            pass

    assert [outcome for _row, outcome, _codes in outcomes(job)] == ["created"] * 5 + ["failed"] + [
        "created"
    ] * 3
    assert _ledger_picture(imported) == _ledger_picture(reference)
    assert _ledger_picture(imported)["3000001"]["tier"] == "silver"
    inserts = [
        q["sql"] for q in queries.captured_queries if q["sql"].startswith('INSERT INTO "points_transaction"')
    ]
    # Members 1 to 3: one insert per currency (PTS, ROLL); members 4 and 5 row by row (four
    # rows, the failed debit inserting nothing).
    assert len(inserts) == 2 + 3
    _verify_ledger()


@pytest.mark.django_db(transaction=True)
def test_point_adjustments_import_reference_taken_meanwhile_goes_row_by_row(
    broker_without_worker, start_import, make_member, settings, system_actor
):
    """A reference that another request takes after the chunk checked it (committed while
    the chunk's insert waits on it) rolls the batch back; the rows then go one by one, and
    only that row fails, as ``duplicate_reference``."""

    from django.db import transaction

    settings.JOBS_CHUNK_SIZE = 20
    ana, bob, carol = (make_member(number=str(4_000_001 + n)) for n in range(3))
    rows = [
        {"number": ana.number, "amount": "10", "reason": "A", "reference": "race-1"},
        {"number": bob.number, "amount": "20", "reason": "B", "reference": "race-2"},
    ]
    job = start_import("point_adjustments", csv_bytes(rows))
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            engine.run(job.pk)
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    with transaction.atomic():
        points_services.points_adjust(
            member=carol, amount=5, reason="C", reference="race-2", actor=system_actor
        )
        thread = threading.Thread(target=worker)
        thread.start()
        # Commit once the job's insert waits for this transaction's reference.
        wait_for_lock_waiter("the job never waited for the reference")
    thread.join(timeout=60)

    assert not errors
    job = Job.objects.get(pk=job.pk)
    assert outcomes(job) == [(1, "created", ""), (2, "failed", "duplicate_reference")]
    assert (_balance(ana), _balance(bob), _balance(carol)) == (10, 0, 5)
    _verify_ledger()
