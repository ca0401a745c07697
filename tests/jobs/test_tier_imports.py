"""The tier_assignments import (manual assignments through the tiers service) and the tiers
import/export of tier definitions (the API's validation; export, edit, import back),
including the admin's import and export buttons on Tiers."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from jobs import files
from jobs.models import Job
from members import services as member_services
from tests.jobs.conftest import csv_bytes, outcomes, report
from tiers import services as tier_services
from tiers.models import MemberTier, Tier, TierChange
from tiers.rules import local_today
from webhooks.models import Event


@pytest.fixture
def ladder(program, system_actor):
    def make(code, rank, **fields):
        return tier_services.tier_create(
            program=program, code=code, name=code.title(), rank=rank, actor=system_actor, **fields
        )

    return {
        "bronze": make("bronze", 10, is_default=True),
        "silver": make("silver", 20, qualify_spend=Decimal("500"), retain_spend=Decimal("400")),
        "gold": make("gold", 30, qualify_spend=Decimal("1000"), reward_tags=["lounge"]),
    }


@pytest.fixture
def members(ladder, make_member):
    return [make_member(number=f"100000{n}", email=f"m{n}@example.com") for n in (1, 2, 3)]


def _tier_of(member) -> str:
    return MemberTier.objects.select_related("tier").get(member_id=member.pk).tier.code


# --- tier_assignments ------------------------------------------------------------------------


def test_tier_assignments_import_assigns_through_the_service(import_and_run, program, members, ladder):
    locked = (local_today(program) + timedelta(days=30)).isoformat()
    rows = [
        {"number": "1000001", "tier": "gold", "reason": "Status match", "locked_until": locked},
        {"number": "1000002", "tier": "silver", "reason": "VIP", "lifetime": "true"},
    ]
    job = import_and_run("tier_assignments", csv_bytes(rows))

    assert job.status == Job.Status.SUCCEEDED
    assert outcomes(job) == [(1, "updated", ""), (2, "updated", "")]
    assert [(line["object_id"], line["object_ref"]) for line in report(job)] == [
        (members[0].pk, "1000001"),
        (members[1].pk, "1000002"),
    ]
    gold = MemberTier.objects.get(member_id=members[0].pk)
    assert (gold.tier.code, gold.locked_until.isoformat(), gold.lifetime_tier_id) == ("gold", locked, None)
    silver = MemberTier.objects.get(member_id=members[1].pk)
    assert (silver.tier.code, silver.lifetime_tier.code) == ("silver", "silver")
    change = TierChange.objects.get(member_id=members[0].pk)
    assert (change.reason, change.note) == ("manual", "Status match")
    assert Event.objects.filter(type="tier.changed").count() == 2


def test_tier_assignments_import_bad_and_mixed_rows(
    import_and_run, program, members, make_member, system_actor
):
    extra = [make_member(number=f"100001{n}") for n in range(5)]
    member_services.member_status_action(
        member=members[2], action="terminate", reason="Left", actor=system_actor
    )
    yesterday = (local_today(program) - timedelta(days=1)).isoformat()
    rows = [
        {"number": "1000001", "tier": "gold", "reason": "Ok"},
        {"number": "9999999", "tier": "gold", "reason": "Who?"},
        {"number": "1000002", "tier": "platinum", "reason": "Which?"},
        {"number": "1000010", "tier": "gold", "reason": ""},
        {"number": "1000011", "tier": "gold", "reason": "Past", "locked_until": yesterday},
        {"number": "1000012", "tier": "gold", "reason": "Date", "locked_until": "31/12/2026"},
        {"number": "1000013", "tier": "gold", "reason": "Flag", "lifetime": "maybe"},
        {"number": "1000003", "tier": "gold", "reason": "Gone"},
        {"number": "1000001", "tier": "silver", "reason": "Twice: one row per member"},
        {"number": "1000014", "tier": "", "reason": "No tier"},
    ]
    job = import_and_run("tier_assignments", csv_bytes(rows))

    assert job.status == Job.Status.PARTIALLY_SUCCEEDED
    assert outcomes(job) == [
        (1, "updated", ""),
        (2, "failed", "unknown_member"),
        (3, "failed", "unknown_tier"),
        (4, "failed", "missing_field"),
        (5, "failed", "invalid_tier_assignment"),
        (6, "failed", "bad_format"),
        (7, "failed", "bad_format"),
        (8, "failed", "member_terminated"),
        (9, "failed", "duplicate_in_file"),
        (10, "failed", "missing_field"),
    ]
    assert [line["error_fields"] for line in report(job)][3:7] == [
        "reason",
        "locked_until",
        "locked_until",
        "lifetime",
    ]
    assert [_tier_of(member) for member in [*members[:2], *extra]] == ["gold"] + ["bronze"] * 6
    assert TierChange.objects.count() == 1


def test_tier_assignments_import_again_is_unchanged(import_and_run, members):
    rows = [{"number": "1000001", "tier": "gold", "reason": "Match", "lifetime": "yes"}]
    import_and_run("tier_assignments", csv_bytes(rows))
    again = import_and_run("tier_assignments", csv_bytes(rows))
    assert outcomes(again) == [(1, "unchanged", "")]
    assert TierChange.objects.count() == 1
    # Without the lifetime floor it is another assignment.
    rows[0]["lifetime"] = "false"
    assert outcomes(import_and_run("tier_assignments", csv_bytes(rows))) == [(1, "updated", "")]
    assert MemberTier.objects.get(member_id=members[0].pk).lifetime_tier_id is None


def test_tier_assignments_import_dry_run_and_all_or_nothing_change_nothing(import_and_run, members):
    rows = [
        {"number": "1000001", "tier": "gold", "reason": "Ok"},
        {"number": "1000002", "tier": "nope", "reason": "Bad"},
    ]
    dry = import_and_run("tier_assignments", csv_bytes(rows), dry_run=True)
    assert outcomes(dry) == [(1, "updated", ""), (2, "failed", "unknown_tier")]
    failed = import_and_run("tier_assignments", csv_bytes(rows), mode="all_or_nothing")
    assert failed.status == Job.Status.FAILED
    assert outcomes(failed) == [(1, "not_applied", ""), (2, "failed", "unknown_tier")]
    assert [_tier_of(member) for member in members] == ["bronze"] * 3
    assert not TierChange.objects.exists()
    assert not Event.objects.filter(type="tier.changed").exists()


def test_tier_assignments_import_by_external_ref(import_and_run, ladder, make_member):
    member = make_member(external_ref="crm-1")
    job = import_and_run(
        "tier_assignments",
        csv_bytes([{"external_ref": "crm-1", "tier": "silver", "reason": "x"}]),
        match="external_ref",
    )
    assert outcomes(job) == [(1, "updated", "")]
    assert _tier_of(member) == "silver"


# --- tiers (definitions) ---------------------------------------------------------------------


def _export(program, system_actor, run_job, fmt="csv") -> bytes:
    from jobs import services as job_services

    job = job_services.export_job_create(
        program_id=program.pk, kind="tiers", params={"format": fmt}, actor=system_actor
    )
    job = run_job(job)
    assert job.status == Job.Status.SUCCEEDED
    return files.path_of(job.result_file).read_bytes()


def test_tiers_import_creates_updates_and_leaves_equal_tiers_alone(import_and_run, ladder):
    rows = [
        {
            "code": "platinum",
            "name": "Platinum",
            "rank": "40",
            "qualify_spend": "2000.00",
            "reward_tags": "a|b",
        },
        {"code": "gold", "grace_months": "6", "earn_multiplier": "2"},
        {"code": "silver", "qualify_spend": "500.000", "name": "Silver"},
    ]
    job = import_and_run("tiers", csv_bytes(rows))

    assert outcomes(job) == [(1, "created", ""), (2, "updated", ""), (3, "unchanged", "")]
    platinum = Tier.objects.get(code="platinum")
    assert (platinum.rank, platinum.qualify_spend, platinum.reward_tags, platinum.is_default) == (
        40,
        Decimal("2000"),
        ["a", "b"],
        False,
    )
    gold = Tier.objects.get(code="gold")
    assert (gold.grace_months, gold.earn_multiplier, gold.qualify_spend) == (6, Decimal("2"), Decimal("1000"))
    assert report(job)[0]["object_ref"] == "platinum"


def test_tiers_import_bad_rows(import_and_run, ladder):
    rows = [
        {"code": "diamond", "rank": "50"},
        {"code": "ruby", "name": "Ruby", "rank": "20"},
        {"code": "silver", "retain_spend": "600"},
        {"code": "silver", "window_kind": "weekly"},
        {"code": "bronze", "is_default": "false"},
        {"code": "gold", "qualify_spend": "12.345"},
        {"code": "", "name": "No code", "rank": "60"},
        {"code": "opal", "name": "Opal", "rank": "70", "rewards_eligible": "sometimes"},
    ]
    job = import_and_run("tiers", csv_bytes(rows))
    assert outcomes(job) == [
        (1, "failed", "missing_field"),
        (2, "failed", "tier_rank_taken"),
        (3, "failed", "invalid_tier"),
        (4, "failed", "duplicate_in_file"),
        (5, "failed", "default_tier_required"),
        (6, "failed", "invalid_tier"),
        (7, "failed", "missing_field"),
        (8, "failed", "bad_format"),
    ]
    assert [line["error_fields"] for line in report(job)][:3] == ["name", "rank", "retain_spend"]
    assert Tier.objects.count() == 3


def test_tiers_export_then_import_back_is_unchanged(import_and_run, program, ladder, system_actor, run_job):
    exported = _export(program, system_actor, run_job)
    rows = list(csv.DictReader(io.StringIO(exported.decode())))
    assert [row["code"] for row in rows] == ["bronze", "silver", "gold"]
    assert (rows[1]["qualify_spend"], rows[1]["retain_spend"], rows[2]["reward_tags"]) == (
        "500.00",
        "400.00",
        "lounge",
    )
    assert (rows[0]["is_default"], rows[0]["earn_multiplier"], rows[0]["qualify_points"]) == ("true", "1", "")

    again = import_and_run("tiers", exported)
    assert [outcome for _row, outcome, _codes in outcomes(again)] == ["unchanged"] * 3

    rows[2]["perks"] = "Lounge access"
    edited = import_and_run("tiers", csv_bytes(rows))
    assert [outcome for _row, outcome, _codes in outcomes(edited)] == ["unchanged", "unchanged", "updated"]
    assert Tier.objects.get(code="gold").perks == "Lounge access"


def test_tiers_export_json(program, ladder, system_actor, run_job):
    import json

    data = json.loads(_export(program, system_actor, run_job, fmt="json"))
    assert [(row["code"], row["is_default"]) for row in data] == [
        ("bronze", True),
        ("silver", False),
        ("gold", False),
    ]


# --- admin -----------------------------------------------------------------------------------


@pytest.fixture
def admin_client(client, staff_user):
    client.force_login(staff_user)
    return client


def test_admin_tiers_import_previews_then_runs_the_job(
    admin_client, program, ladder, django_capture_on_commit_callbacks
):
    rows = [
        {"code": "platinum", "name": "Platinum", "rank": "40"},
        {"code": "gold", "rank": "20"},
    ]
    preview = admin_client.post(
        reverse("admin:tiers_tier_import"),
        {
            "import_file": SimpleUploadedFile("tiers.csv", csv_bytes(rows), content_type="text/csv"),
            "format": "0",
            "resource": "0",
            "program": program.pk,
            "match": "number",
            "action": "upsert",
            "mode": "continue",
        },
    )
    assert preview.status_code == 200
    lines = preview.context["result"].job_preview_rows
    assert [(line["row"], line["outcome"]) for line in lines] == [(1, "created"), (2, "failed")]
    assert "(tier_rank_taken)" in lines[1]["errors"]
    assert not Tier.objects.filter(code="platinum").exists()

    confirm = preview.context["confirm_form"]
    data = {name: confirm.initial.get(name, field.initial) for name, field in confirm.fields.items()}
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(reverse("admin:tiers_tier_process_import"), data)
    job = Job.objects.get(kind="tiers")
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:jobs_job_change", args=[job.pk])
    assert outcomes(job) == [(1, "created", ""), (2, "failed", "tier_rank_taken")]
    assert Tier.objects.filter(code="platinum", program=program).exists()


def test_admin_tiers_export_writes_the_import_columns(admin_client, program, ladder):
    response = admin_client.post(
        reverse("admin:tiers_tier_export"),
        {
            "format": "0",
            "resource": "0",
            **{f"tierexportresource_{name}": "on" for name in ("code", "qualify_spend", "reward_tags")},
        },
    )
    assert response.status_code == 200, response.content[:500]
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [(row["code"], row["qualify_spend"], row["reward_tags"]) for row in rows] == [
        ("bronze", "", ""),
        ("silver", "500.00", ""),
        ("gold", "1000.00", "lounge"),
    ]


def test_admin_tiers_import_needs_tier_permissions(client, program, ladder):
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user("clerk", password="pw-not-used-1234", is_staff=True)
    client.force_login(user)
    assert client.get(reverse("admin:tiers_tier_import")).status_code == 403
