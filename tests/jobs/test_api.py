"""The jobs API: imports, exports, jobs, reports, files, and every error path."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from jobs import services
from jobs.models import Job
from members.models import Member
from tests.jobs.conftest import csv_bytes

MEMBERS = [
    {"number": "1000001", "email": "ana@example.com", "first_name": "Ana"},
    {"number": "1000002", "email": "bad-email", "first_name": "Bob"},
    {"number": "1000003", "email": "cy@example.com", "first_name": "Cy"},
]


def upload(data: bytes, name: str = "members.csv") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="text/csv")


def post_import(client, data: bytes, kind: str = "members", query: str = "", **form):
    return client.post(
        f"/api/v1/imports/{kind}{'?' + query if query else ''}",
        {"file": upload(data), **form},
        format="multipart",
    )


def csv_body(response) -> list[dict]:
    text = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(text)))


@pytest.fixture
def run_on_commit(django_capture_on_commit_callbacks):
    """Celery is eager in tests: committing runs the dispatched job in-process."""

    def _go(call):
        with django_capture_on_commit_callbacks(execute=True):
            return call()

    return _go


def test_import_api_multipart_upload_answers_202_and_the_job_runs(api, program, run_on_commit):
    response = run_on_commit(lambda: post_import(api, csv_bytes(MEMBERS), query="match=number"))

    assert response.status_code == 202, response.content
    body = response.json()
    assert response["Location"] == f"/api/v1/jobs/{body['id']}"
    assert (body["operation"], body["kind"], body["status"], body["mode"]) == (
        "import",
        "members",
        "queued",
        "continue",
    )
    assert body["started_by"] == {
        "type": "integration",
        "id": api.integration.pk,
        "label": f"integration:{api.integration.pk}",
    }
    assert body["params"] == {"match": "number", "action": "upsert"}

    job = api.get(body["report_url"].replace("/report", "")).json()
    assert job["status"] == "partially_succeeded"
    assert job["progress"] == {"total": 3, "processed": 3, "percent": 100}
    assert job["counts"] == {"created": 2, "updated": 0, "unchanged": 0, "failed": 1}
    report = api.get(body["report_url"])
    assert report.status_code == 200
    assert report["Content-Type"].startswith("text/csv")
    lines = csv_body(report)
    assert [(line["row"], line["outcome"], line["error_codes"]) for line in lines] == [
        ("1", "created", ""),
        ("2", "failed", "bad_format"),
        ("3", "created", ""),
    ]
    assert Member.objects.filter(program=program).count() == 2


def test_import_api_json_array_body_and_form_params(api, program, run_on_commit):
    rows = [{"email": "ana@example.com", "first_name": "Ana"}]
    response = run_on_commit(lambda: api.post("/api/v1/imports/members?match=email", rows, format="json"))
    assert response.status_code == 202, response.content
    assert Job.objects.get(pk=response.json()["id"]).status == Job.Status.SUCCEEDED

    dry = post_import(api, csv_bytes(MEMBERS), dry_run="true", mode="all_or_nothing")
    assert dry.status_code == 202, dry.content
    assert (dry.json()["dry_run"], dry.json()["mode"]) == (True, "all_or_nothing")


@pytest.mark.parametrize(
    ("query", "field", "code"),
    [
        ("mode=sometimes", "mode", "invalid_choice"),
        ("match=phone", "match", "invalid_choice"),
        ("dry_run=perhaps", "dry_run", "invalid"),
        ("colour=red", "colour", "unknown_field"),
    ],
)
def test_import_api_bad_params_answer_400_and_create_nothing(api, query, field, code):
    response = post_import(api, csv_bytes(MEMBERS), query=query)
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert {"field": field, "code": code} in [
        {"field": e["field"], "code": e["code"]} for e in response.json()["errors"]
    ]
    assert not Job.objects.exists()


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"number,colour\n1000001,red\n", "unknown_column"),
        (b"email\nana@example.com\n", "missing_column"),
        ("number,first_name\n1000001,Jos\xe9\n".encode("latin-1"), "bad_encoding"),
        (b"\n\n", "empty_file"),
        (b'[{"number": 1', "malformed_file"),
        (b"[1, 2]", "malformed_file"),
    ],
)
def test_import_api_unreadable_files_answer_400(api, data, code, settings, tmp_path):
    response = post_import(api, data)
    assert response.status_code == 400, response.content
    assert response.json()["code"] == code
    assert response.json()["errors"][0]["field"] == "file"
    assert not Job.objects.exists()
    assert not any((tmp_path / "jobs").glob("*/input.*"))  # the upload is not kept


def test_import_api_body_errors(api):
    missing_file = api.post("/api/v1/imports/members", {"dry_run": "true"}, format="multipart")
    assert missing_file.status_code == 400
    assert missing_file.json()["errors"][0]["field"] == "file"
    empty_file = post_import(api, b"")
    assert empty_file.status_code == 400
    assert empty_file.json()["errors"][0]["field"] == "file"
    an_object = api.post("/api/v1/imports/members", {"email": "a@example.com"}, format="json")
    assert an_object.status_code == 400
    assert an_object.json()["code"] == "validation_error"
    not_json = api.post("/api/v1/imports/members", b"{", content_type="application/json")
    assert not_json.status_code == 400
    assert not_json.json()["code"] == "malformed_body"


def test_import_api_unknown_kind_is_404(api):
    response = post_import(api, csv_bytes(MEMBERS), kind="unicorns")
    assert response.status_code == 404
    assert response.json()["code"] == "unknown_job_kind"
    assert api.get("/api/v1/imports/unicorns/template").json()["code"] == "unknown_job_kind"
    assert api.post("/api/v1/exports/unicorns", {}, format="json").status_code == 404


def test_import_api_needs_credentials_and_both_scopes(make_api, client):
    data = csv_bytes(MEMBERS)
    anonymous = client.post("/api/v1/imports/members", {"file": upload(data)})
    assert anonymous.status_code == 401
    no_jobs = post_import(make_api(["members:write"]), data)
    assert no_jobs.status_code == 403
    assert no_jobs.json()["code"] == "insufficient_scope"
    no_members = post_import(make_api(["jobs:write"]), data)
    assert no_members.status_code == 403
    assert no_members.json()["code"] == "insufficient_scope"
    assert "members:write" in no_members.json()["detail"]
    assert not Job.objects.exists()
    assert post_import(make_api(["jobs:write", "members:write"]), data).status_code == 202


def test_import_api_upload_limit_is_413(api, settings):
    settings.API_MAX_UPLOAD_BYTES = 100
    response = post_import(api, csv_bytes(MEMBERS * 10))
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"


def test_import_api_idempotency_key_replays_multipart(api):
    data = csv_bytes(MEMBERS)
    first = api.post(
        "/api/v1/imports/members", {"file": upload(data)}, format="multipart", HTTP_IDEMPOTENCY_KEY="imp-1"
    )
    again = api.post(
        "/api/v1/imports/members", {"file": upload(data)}, format="multipart", HTTP_IDEMPOTENCY_KEY="imp-1"
    )
    other = api.post(
        "/api/v1/imports/members",
        {"file": upload(csv_bytes(MEMBERS[:1]))},
        format="multipart",
        HTTP_IDEMPOTENCY_KEY="imp-1",
    )
    assert first.status_code == again.status_code == 202
    assert again["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert other.status_code == 422
    assert Job.objects.count() == 1


def test_import_api_template_and_description(api):
    template = api.get("/api/v1/imports/members/template", HTTP_ACCEPT="text/csv")
    assert template.status_code == 200
    header, example = list(csv.reader(io.StringIO(b"".join(template.streaming_content).decode())))
    assert header[:3] == ["number", "email", "phone"]
    assert example[1] == "ana@example.com"
    describe = api.get("/api/v1/imports/labels/describe").json()
    assert describe["scope"] == "members:write"
    assert {"name": "label", "required": True} in [
        {"name": c["name"], "required": c["required"]} for c in describe["columns"]
    ]
    assert "unknown_label" in [item["code"] for item in describe["error_codes"]]
    assert {param["name"] for param in describe["params"]} == {"dry_run", "mode", "match"}


def test_jobs_api_list_filters_and_other_programs(api, make_api, other_program, start_import, system_actor):
    mine = start_import("members", csv_bytes(MEMBERS))
    export = services.export_job_create(
        program_id=api.program.pk, kind="members", params={}, actor=system_actor
    )
    theirs = start_import("members", csv_bytes(MEMBERS), target_program=other_program)

    listed = api.get("/api/v1/jobs")
    assert listed.status_code == 200
    assert [job["id"] for job in listed.json()["results"]] == [export.pk, mine.pk]
    imports = api.get("/api/v1/jobs?operation=import").json()["results"]
    assert [job["id"] for job in imports] == [mine.pk]
    assert api.get("/api/v1/jobs?status=nope").status_code == 400
    assert api.get(f"/api/v1/jobs/{theirs.pk}").status_code == 404
    assert api.get(f"/api/v1/jobs/{theirs.pk}/report").status_code == 404
    assert api.post(f"/api/v1/jobs/{theirs.pk}/cancel").status_code == 404
    assert make_api(["members:read"]).get("/api/v1/jobs").status_code == 403


def test_jobs_api_cancel(api, start_import):
    job = start_import("members", csv_bytes(MEMBERS))
    response = api.post(f"/api/v1/jobs/{job.pk}/cancel")
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    again = api.post(f"/api/v1/jobs/{job.pk}/cancel")
    assert again.status_code == 409
    assert again.json()["code"] == "job_finished"


def test_jobs_api_cancel_needs_jobs_write(make_api, start_import):
    job = start_import("members", csv_bytes(MEMBERS))
    assert make_api(["jobs:read"]).post(f"/api/v1/jobs/{job.pk}/cancel").status_code == 403


def test_jobs_api_report_after_purge_is_410(api, start_import, run_job):
    job = run_job(start_import("members", csv_bytes(MEMBERS)))
    Job.objects.filter(pk=job.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert services.jobs_purge() == 1
    response = api.get(f"/api/v1/jobs/{job.pk}/report")
    assert response.status_code == 410
    assert response.json()["code"] == "job_file_expired"


def test_export_api_members_csv_and_json(api, program, make_member, run_on_commit):
    ana = make_member(number="1000001", email="ana@example.com", first_name="Ana")
    make_member(number="1000002", email="bob@example.com")
    response = run_on_commit(lambda: api.post("/api/v1/exports/members", {"format": "csv"}, format="json"))
    assert response.status_code == 202, response.content
    job = api.get(response["Location"]).json()
    assert job["status"] == "succeeded"
    assert job["result"]["rows"] == 2
    assert job["report_url"] is None
    file = api.get(job["result"]["url"])
    assert file.status_code == 200
    rows = list(csv.DictReader(io.StringIO(b"".join(file.streaming_content).decode())))
    assert [row["number"] for row in rows] == ["1000001", "1000002"]
    assert rows[0]["email"] == "ana@example.com"

    since = (ana.updated_at + timedelta(microseconds=1)).isoformat()
    response = run_on_commit(
        lambda: api.post("/api/v1/exports/members", {"format": "json", "updated_since": since}, format="json")
    )
    file = api.get(api.get(response["Location"]).json()["result"]["url"])
    data = json.loads(b"".join(file.streaming_content))
    assert [row["number"] for row in data] == ["1000002"]


def test_export_api_errors(api, make_api, start_import, system_actor):
    assert api.post("/api/v1/exports/members", {"format": "xml"}, format="json").status_code == 400
    assert api.post("/api/v1/exports/members", {"since": "x"}, format="json").json()["errors"][0]["code"] == (
        "unknown_field"
    )
    assert api.post("/api/v1/exports/members", [1], format="json").status_code == 400
    assert make_api(["jobs:write"]).post("/api/v1/exports/members", {}, format="json").status_code == 403
    queued = services.export_job_create(
        program_id=api.program.pk, kind="members", params={}, actor=system_actor
    )
    not_ready = api.get(f"/api/v1/jobs/{queued.pk}/file")
    assert not_ready.status_code == 409
    assert not_ready.json()["code"] == "job_not_finished"
    assert make_api(["jobs:read"]).get(f"/api/v1/jobs/{queued.pk}/file").status_code == 403
    an_import = start_import("members", csv_bytes(MEMBERS))
    assert api.get(f"/api/v1/jobs/{an_import.pk}/file").json()["code"] == "job_file_missing"
    assert api.get(f"/api/v1/jobs/{queued.pk}/report").json()["code"] == "job_file_missing"


def test_export_api_file_deleted_from_disk_is_404(api, make_member, run_on_commit):
    from jobs import files

    make_member(number="1000001")
    response = run_on_commit(lambda: api.post("/api/v1/exports/members", {}, format="json"))
    job = Job.objects.get(pk=response.json()["id"])
    files.path_of(job.result_file).unlink()
    missing = api.get(f"/api/v1/jobs/{job.pk}/file")
    assert missing.status_code == 404
    assert missing.json()["code"] == "job_file_missing"
