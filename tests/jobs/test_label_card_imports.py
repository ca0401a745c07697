"""The ``labels`` and ``cards`` import kinds."""

from __future__ import annotations

import pytest

from jobs.models import Job
from members import services as member_services
from members.models import Card, MemberLabel
from tests.jobs.conftest import csv_bytes, outcomes
from webhooks.models import Event


@pytest.fixture
def vip(program, system_actor):
    return member_services.label_create(program=program, code="vip", name="VIP", actor=system_actor)


@pytest.fixture
def ana(make_member):
    return make_member(number="1000001", email="ana@example.com", external_ref="crm-1")


@pytest.fixture
def bob(make_member):
    return make_member(number="1000002", email="bob@example.com")


def test_labels_import_good_rows_assign_and_remove(import_and_run, program, vip, ana, bob, system_actor):
    member_services.label_assign(member=bob, label_code="vip", actor=system_actor)
    data = csv_bytes(
        [
            {"number": "1000001", "label": "vip"},
            {"number": "1000002", "label": "vip", "operation": "remove"},
        ]
    )
    job = import_and_run("labels", data)

    assert job.status == Job.Status.SUCCEEDED
    assert outcomes(job) == [(1, "created", ""), (2, "updated", "")]
    assert list(MemberLabel.objects.values_list("member_id", flat=True)) == [ana.pk]
    assert Event.objects.filter(member_id=ana.pk, type="label.assigned").count() == 1
    assert Event.objects.filter(member_id=bob.pk, type="label.removed").count() == 1

    again = import_and_run("labels", data)
    assert again.counts == {"created": 0, "updated": 0, "unchanged": 2, "failed": 0}


def test_labels_import_bad_rows(import_and_run, program, vip, ana):
    data = csv_bytes(
        [
            {"number": "9999999", "label": "vip"},
            {"number": "1000001", "label": "nope"},
            {"number": "1000001", "label": ""},
            {"number": "1000001", "label": "vip", "operation": "toggle"},
            {"number": "abc", "label": "vip"},
        ]
    )
    job = import_and_run("labels", data)

    assert job.status == Job.Status.FAILED
    assert outcomes(job) == [
        (1, "failed", "unknown_member"),
        (2, "failed", "unknown_label"),
        (3, "failed", "missing_field"),
        (4, "failed", "bad_format"),
        (5, "failed", "bad_format"),
    ]
    assert not MemberLabel.objects.exists()


def test_labels_import_mixed_rows_by_email_with_duplicates(import_and_run, program, vip, ana, bob):
    data = csv_bytes(
        [
            {"email": "ANA@example.com", "label": "vip"},
            {"email": "ana@example.com", "label": "vip"},
            {"email": "nobody@example.com", "label": "vip"},
            {"email": "bob@example.com", "label": "vip"},
        ]
    )
    job = import_and_run("labels", data, match="email")

    assert job.status == Job.Status.PARTIALLY_SUCCEEDED
    assert outcomes(job) == [
        (1, "created", ""),
        (2, "failed", "duplicate_in_file"),
        (3, "failed", "unknown_member"),
        (4, "created", ""),
    ]


def test_labels_import_terminated_member_fails(import_and_run, program, vip, ana, system_actor):
    member_services.member_change_status(
        member=ana, to_status="terminated", reason="left", actor=system_actor
    )
    job = import_and_run(
        "labels", csv_bytes([{"external_ref": "crm-1", "label": "vip"}]), match="external_ref"
    )
    assert outcomes(job) == [(1, "failed", "member_terminated")]


def test_cards_import_good_bad_and_mixed_rows(import_and_run, program, ana, bob):
    data = csv_bytes(
        [
            {"number": "1000001", "card": "9000-0000-0001", "kind": "physical"},
            {"number": "1000002", "card": "9000 0000 0002", "kind": "digital"},
            {"number": "1000002", "card": "9000 0000 0001"},  # same card again in the file
            {"number": "1000002", "card": "9000 0000 0003", "kind": "plastic"},
            {"number": "1000404", "card": "9000 0000 0004"},
            {"number": "1000001", "card": ""},
        ]
    )
    job = import_and_run("cards", data)

    assert job.status == Job.Status.PARTIALLY_SUCCEEDED
    assert outcomes(job) == [
        (1, "created", ""),
        (2, "created", ""),
        (3, "failed", "duplicate_in_file"),
        (4, "failed", "bad_format"),
        (5, "failed", "unknown_member"),
        (6, "failed", "missing_field"),
    ]
    assert dict(Card.objects.values_list("number", "kind")) == {
        "900000000001": "physical",
        "900000000002": "digital",
    }
    assert Event.objects.filter(type="card.issued").count() == 2

    again = import_and_run("cards", csv_bytes([{"number": "1000001", "card": "900000000001"}]))
    assert outcomes(again) == [(1, "unchanged", "")]
    taken = import_and_run("cards", csv_bytes([{"number": "1000002", "card": "900000000001"}]))
    assert outcomes(taken) == [(1, "failed", "card_number_taken")]


def test_cards_import_dry_run_changes_nothing(import_and_run, program, ana):
    job = import_and_run("cards", csv_bytes([{"number": "1000001", "card": "9000 0000 0001"}]), dry_run=True)
    assert outcomes(job) == [(1, "created", "")]
    assert not Card.objects.exists()


def test_cards_import_all_or_nothing_rolls_back(import_and_run, program, ana):
    data = csv_bytes([{"number": "1000001", "card": "9000 0000 0001"}, {"number": "1000404", "card": "1"}])
    job = import_and_run("cards", data, mode="all_or_nothing")
    assert job.status == Job.Status.FAILED
    assert outcomes(job) == [(1, "not_applied", ""), (2, "failed", "unknown_member")]
    assert not Card.objects.exists()
