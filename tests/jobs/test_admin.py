"""The admin: django-import-export on members and labels (preview = dry run of the job
kind, confirm = a job), and the jobs pages."""

from __future__ import annotations

import csv
import io

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from jobs.models import Job
from members import services as member_services
from members.models import Member, MemberLabel
from tests.jobs.conftest import csv_bytes, report
from tiers import services as tier_services

ROWS = [
    {"number": "1000001", "email": "ana@example.com", "first_name": "Ana"},
    {"number": "1000002", "email": "not-an-email", "first_name": "Bob"},
    {"number": "1000003", "email": "cy@example.com", "first_name": "Cy", "labels": "nope"},
    {"number": "1000001", "email": "dup@example.com"},
]


@pytest.fixture
def admin_client(client, staff_user):
    client.force_login(staff_user)
    return client


def _preview(client, model: str, data: bytes, program, **options):
    form = {
        "import_file": SimpleUploadedFile("upload.csv", data, content_type="text/csv"),
        "format": "0",
        "resource": "0",
        "program": program.pk,
        "match": "number",
        "action": "upsert",
        "mode": "continue",
        **options,
    }
    return client.post(reverse(f"admin:members_{model}_import"), form)


def _confirm(client, model: str, preview_response, capture):
    confirm = preview_response.context["confirm_form"]
    data = {name: confirm.initial.get(name, field.initial) for name, field in confirm.fields.items()}
    with capture(execute=True):
        return client.post(reverse(f"admin:members_{model}_process_import"), data)


def _comparable(job: Job) -> list[tuple]:
    return [(line["row"], line["outcome"], line["error_codes"], line["object_ref"]) for line in report(job)]


def test_admin_member_import_preview_is_a_dry_run(admin_client, program):
    response = _preview(admin_client, "member", csv_bytes(ROWS), program)

    assert response.status_code == 200
    assert "confirm_form" in response.context  # continue mode: bad rows are reported, not blocking
    lines = response.context["result"].job_preview_rows
    assert [(line["row"], line["outcome"]) for line in lines] == [
        (1, "created"),
        (2, "failed"),
        (3, "failed"),
        (4, "failed"),
    ]
    assert "not a valid e-mail" in lines[1]["errors"]
    assert "(unknown_label)" in lines[2]["errors"]
    assert "(duplicate_in_file)" in lines[3]["errors"]
    assert b"Preview (dry run)" in response.content
    assert not Member.objects.exists()
    assert not Job.objects.exists()


def test_admin_member_import_all_or_nothing_with_bad_rows_cannot_be_confirmed(admin_client, program):
    response = _preview(admin_client, "member", csv_bytes(ROWS), program, mode="all_or_nothing")
    assert response.status_code == 200
    assert "confirm_form" not in response.context
    assert b"nothing would change" in response.content


def test_admin_member_import_bad_header_is_reported(admin_client, program):
    response = _preview(admin_client, "member", b"number;colour\n1000001;red\n", program)
    assert response.status_code == 200
    assert "confirm_form" not in response.context
    assert b"Unknown columns" in response.content


def test_admin_and_api_imports_give_the_same_report(
    admin_client, program, other_program, make_api, django_capture_on_commit_callbacks
):
    data = csv_bytes(ROWS, delimiter=";", bom=True)
    preview = _preview(admin_client, "member", data, program)
    response = _confirm(admin_client, "member", preview, django_capture_on_commit_callbacks)

    admin_job = Job.objects.get(program_id=program.pk)
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:jobs_job_change", args=[admin_job.pk])
    assert admin_job.started_by_label == "user:boss"
    assert admin_job.status == Job.Status.PARTIALLY_SUCCEEDED

    api = make_api(target_program=other_program)
    with django_capture_on_commit_callbacks(execute=True):
        api_response = api.post(
            "/api/v1/imports/members",
            {"file": SimpleUploadedFile("upload.csv", data, content_type="text/csv")},
            format="multipart",
        )
    api_job = Job.objects.get(pk=api_response.json()["id"])
    assert _comparable(admin_job) == _comparable(api_job)
    assert admin_job.counts == api_job.counts


def _setup_labels(program, actor):
    member_services.label_create(program=program, code="vip", name="VIP", actor=actor)
    member_services.member_create(program=program, number="1000001", actor=actor)


def _setup_tiers(program, actor):
    for code, rank in (("bronze", 10), ("silver", 20), ("gold", 30)):
        tier_services.tier_create(
            program=program, code=code, name=code.title(), rank=rank, is_default=code == "bronze", actor=actor
        )


# Every admin import (django-import-export) against the API, one file per kind with good,
# bad and duplicate rows: (admin page, job kind, setup of each program, rows).
ADMIN_KINDS = {
    "members": ("members_member", lambda program, actor: None, ROWS),
    "labels": (
        "members_label",
        _setup_labels,
        [
            {"number": "1000001", "label": "vip"},
            {"number": "1000009", "label": "vip"},
            {"number": "1000001", "label": "nope"},
            {"number": "1000001", "label": "vip", "operation": "remove"},
        ],
    ),
    "tiers": (
        "tiers_tier",
        _setup_tiers,
        [
            {"code": "platinum", "name": "Platinum", "rank": "40"},
            {"code": "gold", "rank": "20"},
            {"code": "silver", "name": "Silver+"},
            {"code": "diamond", "name": "Diamond"},
            {"code": "platinum", "name": "Again", "rank": "50"},
        ],
    ),
    "rewards": (
        "rewards_reward",
        lambda program, actor: None,
        [
            {
                "code": "coffee-5",
                "name": "5 EUR off",
                "kind": "amount_voucher",
                "costs": "PTS:500",
                "voucher_amount": "5.00",
            },
            {
                "code": "bad-1",
                "name": "Bad",
                "kind": "amount_voucher",
                "costs": "NOPE:5",
                "voucher_amount": "5",
            },
            {"code": "bad-2", "name": "No amount", "kind": "amount_voucher", "costs": "PTS:5"},
            {
                "code": "coffee-5",
                "name": "Twice",
                "kind": "amount_voucher",
                "costs": "PTS:5",
                "voucher_amount": "1",
            },
        ],
    ),
}


@pytest.mark.parametrize("kind", sorted(ADMIN_KINDS))
def test_admin_and_api_give_the_same_report_for_every_admin_import(
    kind, admin_client, program, other_program, make_api, system_actor, django_capture_on_commit_callbacks
):
    """Members, labels, tiers and the rewards catalog: the admin's preview (a dry run of the
    job kind) shows the outcomes the job then reports, the confirmed admin import is a job of
    the same kind, and the API gives that job the same report for the same file."""
    page, setup, rows = ADMIN_KINDS[kind]
    for each in (program, other_program):
        setup(each, system_actor)
    data = csv_bytes(rows, delimiter=";", bom=True)
    form = {
        "import_file": SimpleUploadedFile("upload.csv", data, content_type="text/csv"),
        "format": "0",
        "resource": "0",
        "program": program.pk,
        "match": "number",
        "action": "upsert",
        "mode": "continue",
    }
    preview = admin_client.post(reverse(f"admin:{page}_import"), form)
    assert preview.status_code == 200
    shown = [(line["row"], line["outcome"]) for line in preview.context["result"].job_preview_rows]
    confirm = preview.context["confirm_form"]
    fields = {name: confirm.initial.get(name, field.initial) for name, field in confirm.fields.items()}
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(reverse(f"admin:{page}_process_import"), fields)
    admin_job = Job.objects.get(program_id=program.pk, kind=kind)
    assert response.status_code == 302
    assert admin_job.started_by_label == "user:boss"

    api = make_api(target_program=other_program)
    with django_capture_on_commit_callbacks(execute=True):
        api_response = api.post(
            f"/api/v1/imports/{kind}",
            {"file": SimpleUploadedFile("upload.csv", data, content_type="text/csv")},
            format="multipart",
        )
    assert api_response.status_code == 202, api_response.content
    api_job = Job.objects.get(pk=api_response.json()["id"])

    assert admin_job.status == api_job.status == Job.Status.PARTIALLY_SUCCEEDED
    assert _comparable(admin_job) == _comparable(api_job)
    assert admin_job.counts == api_job.counts
    assert {outcome for _row, outcome in shown} >= {"failed"}
    assert shown == [(line[0], line[1]) for line in _comparable(admin_job)]


def test_admin_label_import_runs_the_labels_kind(
    admin_client, program, make_member, system_actor, django_capture_on_commit_callbacks
):
    member_services.label_create(program=program, code="vip", name="VIP", actor=system_actor)
    ana = make_member(number="1000001")
    data = csv_bytes([{"number": "1000001", "label": "vip"}, {"number": "1000009", "label": "vip"}])
    preview = _preview(admin_client, "label", data, program)
    assert [line["outcome"] for line in preview.context["result"].job_preview_rows] == ["created", "failed"]

    _confirm(admin_client, "label", preview, django_capture_on_commit_callbacks)

    job = Job.objects.get(kind="labels")
    assert job.counts == {"created": 1, "updated": 0, "unchanged": 0, "failed": 1}
    assert MemberLabel.objects.get().member_id == ana.pk


def test_admin_import_needs_member_permissions(client, program, db):
    user = get_user_model().objects.create_user("viewer", password="pw-not-used-1234", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_member"))
    client.force_login(user)
    assert client.get(reverse("admin:members_member_import")).status_code == 403
    user.user_permissions.add(*Permission.objects.filter(codename__in=["add_member", "change_member"]))
    client.force_login(get_user_model().objects.get(pk=user.pk))
    assert client.get(reverse("admin:members_member_import")).status_code == 200


def test_admin_jobs_pages_report_download_and_cancel(admin_client, program, start_import, run_job):
    done = run_job(start_import("members", csv_bytes(ROWS)))
    queued = start_import("members", csv_bytes(ROWS[:1]))

    listing = admin_client.get(reverse("admin:jobs_job_changelist"))
    assert listing.status_code == 200
    assert b"partially_succeeded" in listing.content or b"Partially succeeded" in listing.content
    detail = admin_client.get(reverse("admin:jobs_job_change", args=[done.pk]))
    assert detail.status_code == 200
    assert b"4 / 4 (100%)" in detail.content
    assert reverse("admin:jobs_job_report", args=[done.pk]).encode() in detail.content

    download = admin_client.get(reverse("admin:jobs_job_report", args=[done.pk]))
    lines = list(csv.DictReader(io.StringIO(b"".join(download.streaming_content).decode())))
    assert [line["outcome"] for line in lines] == ["created", "failed", "failed", "failed"]
    assert admin_client.get(reverse("admin:jobs_job_file", args=[done.pk])).status_code == 404

    response = admin_client.post(
        reverse("admin:jobs_job_changelist"),
        {"action": "cancel", "_selected_action": [queued.pk, done.pk]},
        follow=True,
    )
    assert response.status_code == 200
    queued.refresh_from_db()
    assert queued.status == Job.Status.CANCELLED
    assert b"already partially_succeeded" in response.content


def test_admin_import_page_links_the_kinds_templates(admin_client):
    for page_name, kinds in (
        ("members_member", ("members", "cards")),
        ("members_label", ("labels",)),
        ("tiers_tier", ("tiers",)),
        ("rewards_reward", ("rewards",)),
    ):
        page = admin_client.get(reverse(f"admin:{page_name}_import"))
        assert page.status_code == 200
        assert b"if any row fails, nothing is written" in page.content  # the options' help
        for kind in kinds:
            assert reverse("admin:jobs_job_template", args=[kind]).encode() in page.content, page_name
            template = admin_client.get(reverse("admin:jobs_job_template", args=[kind]))
            assert template.status_code == 200 and template["Content-Type"].startswith("text/csv")
    template = admin_client.get(reverse("admin:jobs_job_template", args=["members"]))
    assert template["Content-Type"].startswith("text/csv")
    assert template.content.decode().splitlines()[0].startswith("number,email,phone,")
    assert admin_client.get(reverse("admin:jobs_job_template", args=["nope"])).status_code == 404


def test_admin_member_changelist_offers_import_and_export(admin_client, make_member):
    make_member(number="1000001", email="ana@example.com")
    page = admin_client.get(reverse("admin:members_member_changelist"))
    assert page.status_code == 200
    assert reverse("admin:members_member_import").encode() in page.content
    assert reverse("admin:members_member_export").encode() in page.content
    from members.resources import MemberExportResource

    fields = {f"memberexportresource_{name}": "on" for name in MemberExportResource._meta.fields}
    export = admin_client.post(
        reverse("admin:members_member_export"), {"format": "0", "resource": "0", **fields}
    )
    assert export.status_code == 200
    assert export["Content-Type"].startswith("text/csv")
    assert b"1000001" in export.content
    assert b"ana@example.com" in export.content
