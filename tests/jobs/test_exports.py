"""The points exports (transactions, balances, liability) as jobs, their files, and the API
paths of the new import and export kinds (scopes, parameters, errors)."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from jobs import files
from jobs import services as job_services
from jobs.models import Job
from points import services as points_services
from points.models import Account, Transaction
from tests.jobs.conftest import csv_bytes


def _export(program, actor, run_job, export: str, **params) -> Job:
    export_kind = job_services.export_kind_get(export)
    validated = job_services.validate_export_params(export_kind, params, program_id=program.pk)
    job = run_job(
        job_services.export_job_create(program_id=program.pk, kind=export, params=validated, actor=actor)
    )
    assert job.status == Job.Status.SUCCEEDED, (job.error_code, job.error_detail)
    return job


def _csv_rows(job: Job) -> list[dict]:
    return list(csv.DictReader(io.StringIO(files.path_of(job.result_file).read_text())))


def _json_rows(job: Job) -> list[dict]:
    return json.loads(files.path_of(job.result_file).read_text())


@pytest.fixture
def ledger(program, make_member, system_actor):
    """Two members, two currencies, transactions around the Paris midnight of 1-2 March 2025
    (23:00 UTC in winter)."""
    stamps = points_services.currency_create(
        program=program,
        code="STAMPS",
        name="Stamps",
        value_points=3,
        value_amount=Decimal("1.00"),
        actor=system_actor,
    )
    ana = make_member(number="1000001", email="ana@example.com")
    bob = make_member(number="1000002", email="bob@example.com")

    def at(text: str) -> datetime:
        return datetime.fromisoformat(text).replace(tzinfo=UTC)

    earn = points_services.points_earn
    txns = {
        "feb28": earn(member=ana, amount=100, actor=system_actor, occurred_at=at("2025-02-28T12:00:00")),
        "mar1_late": earn(
            member=ana, amount=200, actor=system_actor, occurred_at=at("2025-03-01T22:59:00"), reference="r-1"
        ),
        "mar2_early": earn(member=bob, amount=300, actor=system_actor, occurred_at=at("2025-03-01T23:00:00")),
        "mar2_stamps": earn(
            member=bob, amount=11, currency=stamps, actor=system_actor, occurred_at=at("2025-03-02T10:00:00")
        ),
        "mar3": earn(member=ana, amount=50, actor=system_actor, occurred_at=at("2025-03-03T09:00:00")),
    }
    points_services.points_redeem(member=ana, amount=30, actor=system_actor, reference="order-9")
    points_services.hold_create(member=bob, amount=40, actor=system_actor)
    return {
        "ana": ana,
        "bob": bob,
        "stamps": stamps,
        **{name: result.transaction for name, result in txns.items()},
    }


def test_transactions_export_takes_program_days(program, ledger, system_actor, run_job):
    job = _export(
        program, system_actor, run_job, "transactions", **{"from": "2025-03-01", "to": "2025-03-02"}
    )
    rows = _csv_rows(job)
    assert [int(row["id"]) for row in rows] == [
        ledger[name].pk for name in ("mar1_late", "mar2_early", "mar2_stamps")
    ]
    first = rows[0]
    assert (
        first["kind"],
        first["currency"],
        first["member_number"],
        first["amount"],
        first["signed_amount"],
    ) == (
        "earn",
        "PTS",
        "1000001",
        "200",
        "200",
    )
    assert (first["reference"], first["occurred_at"], first["actor"]) == (
        "r-1",
        "2025-03-01T22:59:00+00:00",
        "",
    )
    assert job.result_rows == job.total_rows == 3

    one_day = _export(
        program, system_actor, run_job, "transactions", **{"from": "2025-03-02", "to": "2025-03-02"}
    )
    assert [int(row["id"]) for row in _csv_rows(one_day)] == [
        ledger["mar2_early"].pk,
        ledger["mar2_stamps"].pk,
    ]


def test_transactions_export_filters_and_json(program, ledger, system_actor, run_job):
    today = datetime.now(UTC).date().isoformat()
    stamps = _export(
        program,
        system_actor,
        run_job,
        "transactions",
        **{"from": "2025-01-01", "to": today, "currency": "stamps"},
    )
    assert [row["id"] for row in _csv_rows(stamps)] == [str(ledger["mar2_stamps"].pk)]

    redeems = _export(
        program,
        system_actor,
        run_job,
        "transactions",
        **{"from": "2025-01-01", "to": today, "kind": "redeem", "format": "json"},
    )
    [redeem] = _json_rows(redeems)
    assert (redeem["kind"], redeem["amount"], redeem["signed_amount"], redeem["reference"]) == (
        "redeem",
        30,
        -30,
        "order-9",
    )
    assert redeem["member_id"] == ledger["ana"].pk


def test_balances_export_and_liability_add_up(program, ledger, system_actor, run_job):
    balances = _csv_rows(_export(program, system_actor, run_job, "balances"))
    assert [
        (row["member_number"], row["currency"], row["available"], row["pending"], row["held"])
        for row in balances
    ] == [
        ("1000001", "PTS", "320", "0", "0"),
        ("1000002", "PTS", "260", "0", "40"),
        ("1000002", "STAMPS", "11", "0", "0"),
    ]
    only_stamps = _csv_rows(_export(program, system_actor, run_job, "balances", currency="STAMPS"))
    assert [row["member_number"] for row in only_stamps] == ["1000002"]

    liability = {
        row["currency"]: row
        for row in _json_rows(_export(program, system_actor, run_job, "liability", format="json"))
    }
    assert set(liability) == {"PTS", "STAMPS"}
    for code, row in liability.items():
        mine = [b for b in balances if b["currency"] == code]
        assert row["outstanding"] == sum(
            int(b["available"]) + int(b["pending"]) + int(b["held"]) for b in mine
        )
        assert row["accounts"] == len(mine)
    assert (
        liability["PTS"]["outstanding"],
        liability["PTS"]["money_value"],
        liability["PTS"]["money_currency"],
    ) == (
        620,
        "6.20",
        "EUR",
    )
    # 11 stamps at 3 for 1.00 EUR: 3.666... rounded half-up to the cent.
    assert (liability["STAMPS"]["outstanding"], liability["STAMPS"]["money_value"]) == (11, "3.67")


def test_liability_export_lists_currencies_nobody_holds(program, system_actor, run_job):
    rows = _csv_rows(_export(program, system_actor, run_job, "liability"))
    assert [(row["currency"], row["outstanding"], row["money_value"]) for row in rows] == [
        ("PTS", "0", "0.00")
    ]


# --- API -------------------------------------------------------------------------------------


@pytest.fixture
def run_on_commit(django_capture_on_commit_callbacks):
    def _go(call):
        with django_capture_on_commit_callbacks(execute=True):
            return call()

    return _go


def _errors(response) -> set[tuple[str, str]]:
    return {(error["field"], error["code"]) for error in response.json()["errors"]}


def test_export_api_transactions_end_to_end(api, ledger, run_on_commit):
    response = run_on_commit(
        lambda: api.post(
            "/api/v1/exports/transactions", {"from": "2025-03-02", "to": "2025-03-02"}, format="json"
        )
    )
    assert response.status_code == 202, response.content
    assert response.json()["params"] == {"from": "2025-03-02", "to": "2025-03-02"}
    job = api.get(response["Location"]).json()
    assert (job["status"], job["result"]["rows"]) == ("succeeded", 2)
    file = api.get(job["result"]["url"])
    rows = list(csv.DictReader(io.StringIO(b"".join(file.streaming_content).decode())))
    assert [row["member_number"] for row in rows] == ["1000002", "1000002"]


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({}, {("from", "required"), ("to", "required")}),
        ({"from": "2025-03-02", "to": "2025-03-01"}, {("to", "invalid")}),
        ({"from": "2025-03-32", "to": "2025-04-01"}, {("from", "invalid")}),
        ({"from": "2025-03-01", "to": "9999-12-31"}, {("to", "invalid")}),  # the job failed on it
        ({"from": "2025-03-01", "to": "2025-03-02", "currency": "MILES"}, {("currency", "unknown_currency")}),
        ({"from": "2025-03-01", "to": "2025-03-02", "kind": "gift"}, {("kind", "invalid_choice")}),
        ({"from": "2025-03-01", "to": "2025-03-02", "since": "x"}, {("since", "unknown_field")}),
    ],
)
def test_export_api_transactions_bad_parameters_are_400(api, body, errors):
    response = api.post("/api/v1/exports/transactions", body, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "validation_error"
    assert _errors(response) == errors
    assert not Job.objects.exists()


def test_export_api_points_exports_need_points_read(make_api, client, program, run_on_commit):
    body = {"from": "2025-03-01", "to": "2025-03-02"}
    for kind, data in (("transactions", body), ("balances", {}), ("liability", {})):
        anonymous = client.post(f"/api/v1/exports/{kind}", json.dumps(data), content_type="application/json")
        assert anonymous.status_code == 401
        refused = make_api(["jobs:write", "jobs:read"]).post(f"/api/v1/exports/{kind}", data, format="json")
        assert refused.status_code == 403
        assert "points:read" in refused.json()["detail"]
    api = make_api(["jobs:write", "jobs:read", "points:read"])
    response = run_on_commit(lambda: api.post("/api/v1/exports/liability", {}, format="json"))
    assert response.status_code == 202
    file_url = api.get(response["Location"]).json()["result"]["url"]
    assert make_api(["jobs:read"]).get(file_url).status_code == 403
    assert api.get(file_url).status_code == 200


def test_export_api_other_programs_exports_are_404(api, make_api, other_program, system_actor, run_job):
    theirs = run_job(
        job_services.export_job_create(
            program_id=other_program.pk, kind="liability", params={}, actor=system_actor
        )
    )
    assert api.get(f"/api/v1/jobs/{theirs.pk}/file").json()["code"] == "job_not_found"


def test_export_api_describe_lists_the_parameters(api):
    described = api.get("/api/v1/exports/transactions/describe").json()
    assert described["scope"] == "points:read"
    assert {param["name"] for param in described["params"]} == {"format", "currency", "kind", "from", "to"}
    assert "member_number" in [column["name"] for column in described["columns"]]


def _upload(client, kind: str, data: bytes, query: str = "", **headers):
    return client.post(
        f"/api/v1/imports/{kind}{'?' + query if query else ''}",
        {"file": SimpleUploadedFile("upload.csv", data, content_type="text/csv")},
        format="multipart",
        **headers,
    )


ADJUSTMENT = [{"number": "1000001", "amount": "10", "reason": "Goodwill", "reference": "g-1"}]


@pytest.mark.parametrize(
    ("kind", "data", "scope"),
    [
        ("point_adjustments", csv_bytes(ADJUSTMENT), "points:write"),
        (
            "tier_assignments",
            csv_bytes([{"number": "1000001", "tier": "gold", "reason": "x"}]),
            "tiers:write",
        ),
        ("tiers", csv_bytes([{"code": "gold", "name": "Gold", "rank": "30"}]), "config:write"),
    ],
)
def test_import_api_new_kinds_need_their_scope(make_api, client, kind, data, scope):
    assert _upload(client, kind, data).status_code == 401
    refused = _upload(make_api(["jobs:write", "members:write"]), kind, data)
    assert refused.status_code == 403
    assert refused.json()["code"] == "insufficient_scope"
    assert scope in refused.json()["detail"]
    assert not Job.objects.exists()
    assert _upload(make_api(["jobs:write", scope]), kind, data).status_code == 202


def test_import_api_point_adjustments_end_to_end_and_replay(api, make_member, run_on_commit):
    ana = make_member(number="1000001")
    first = run_on_commit(
        lambda: _upload(api, "point_adjustments", csv_bytes(ADJUSTMENT), HTTP_IDEMPOTENCY_KEY="k-1")
    )
    again = _upload(api, "point_adjustments", csv_bytes(ADJUSTMENT), HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == again.status_code == 202
    assert again["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    job = api.get(first["Location"]).json()
    assert (job["status"], job["counts"]["created"]) == ("succeeded", 1)
    assert Account.objects.get(member=ana).available == 10
    assert Job.objects.count() == 1


@pytest.mark.parametrize(
    ("kind", "data", "code"),
    [
        ("point_adjustments", b"number,amount,reason\n1000001,5,x\n", "missing_column"),
        ("point_adjustments", b"email,amount,reason,reference\nana@example.com,5,x,r\n", "missing_column"),
        ("point_adjustments", b"number,amount,reason,reference,colour\n", "unknown_column"),
        ("tier_assignments", b"number,tier\n1000001,gold\n", "missing_column"),
        ("tiers", b"name,rank\nGold,30\n", "missing_column"),
    ],
)
def test_import_api_new_kinds_check_the_header(api, kind, data, code):
    response = _upload(api, kind, data)
    assert response.status_code == 400
    assert response.json()["code"] == code
    assert not Job.objects.exists()


def test_import_api_new_kinds_templates_and_descriptions(api):
    for kind, header in (
        (
            "point_adjustments",
            ["number", "email", "external_ref", "currency", "amount", "reason", "reference", "description"],
        ),
        (
            "tier_assignments",
            ["number", "email", "external_ref", "tier", "reason", "locked_until", "lifetime"],
        ),
    ):
        template = api.get(f"/api/v1/imports/{kind}/template", HTTP_ACCEPT="text/csv")
        assert template.status_code == 200
        lines = list(csv.reader(io.StringIO(b"".join(template.streaming_content).decode())))
        assert lines[0] == header
    described = api.get("/api/v1/imports/point_adjustments/describe").json()
    assert described["scope"] == "points:write"
    codes = [item["code"] for item in described["error_codes"]]
    assert {"would_go_negative", "unknown_currency", "duplicate_reference", "unknown_member"} <= set(codes)
    assert all(item["description"] for item in described["error_codes"])
    assert {"name": "reference", "required": True} in [
        {"name": c["name"], "required": c["required"]} for c in described["columns"]
    ]
    tiers = api.get("/api/v1/imports/tiers/describe").json()
    assert (tiers["scope"], tiers["columns"][0]["name"]) == ("config:write", "code")


def test_members_export_streams_pages_to_the_file(program, system_actor, run_job, monkeypatch):
    """Exports stream: members are read a page at a time (one query per page, not one
    list of every member) and the file is written and flushed while rows still come, so
    neither the rows nor the file are held in memory."""
    import dataclasses

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from jobs import registry
    from members import bulk
    from members import exports as member_exports

    bulk.members_upsert_many(
        program=program,
        rows=[bulk.MemberInput(profile={"email": f"m{n}@example.com"}) for n in range(25)],
        match="email",
        action="create",
        actor=system_actor,
    )
    monkeypatch.setattr(member_exports, "_STREAM_CHUNK", 10)
    kind = registry.export_kind("members")
    on_disk: list[int] = []  # data lines already in the partial file when each row is read

    def watched_rows(program_id, params):
        partial = next(files.job_dir(job.storage_key).glob("*.part"))
        for row in kind.rows(program_id, params):
            on_disk.append(max(len(partial.read_text().splitlines()) - 1, 0))
            yield row

    monkeypatch.setattr(registry, "export_kind", lambda name: dataclasses.replace(kind, rows=watched_rows))
    job = job_services.export_job_create(program_id=program.pk, kind="members", params={}, actor=system_actor)
    with CaptureQueriesContext(connection) as queries:
        job = run_job(job)

    assert job.status == Job.Status.SUCCEEDED and job.result_rows == 25
    assert len(_csv_rows(job)) == 25
    # JOBS_CHUNK_SIZE is 3 in these tests: the file holds every full chunk before the next row.
    assert on_disk == [index - index % 3 for index in range(25)]
    pages = [
        q for q in queries.captured_queries if 'FROM "members_member"' in q["sql"] and "LIMIT" in q["sql"]
    ]
    assert len(pages) == 4  # 10 + 10 + 5 rows, and the empty page that ends it


def test_transactions_export_widest_range_runs(program, ledger, system_actor, run_job):
    job = _export(
        program, system_actor, run_job, "transactions", **{"from": "0001-01-01", "to": "9999-12-30"}
    )
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert len(_csv_rows(job)) == Transaction.objects.filter(program=program).count() > 0
