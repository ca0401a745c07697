"""import_points and export_transactions: the same jobs as the API, run in the command's
process, with a summary and exit codes."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from jobs.models import Job
from points import services as points_services
from points.models import Account, Transaction
from tests.jobs.conftest import csv_bytes

ROWS = [
    {"number": "1000001", "amount": "100", "reason": "Welcome", "reference": "c-1"},
    {"number": "1000002", "amount": "20", "reason": "Welcome", "reference": "c-2"},
]


@pytest.fixture
def members(make_member):
    return [make_member(number="1000001"), make_member(number="1000002")]


def _write(tmp_path: Path, rows: list[dict], name: str = "adjustments.csv", **options) -> Path:
    path = tmp_path / name
    path.write_bytes(csv_bytes(rows, **options))
    return path


def _call(*args) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def _exit_code(*args) -> tuple[int, str]:
    out = io.StringIO()
    with pytest.raises(SystemExit) as exit_info:
        call_command(*args, stdout=out, stderr=io.StringIO())
    return exit_info.value.code, out.getvalue()


def test_import_points_command_imports_and_reimports_with_summaries(tmp_path, program, members):
    path = _write(tmp_path, ROWS, delimiter=";", bom=True)
    out, _err = _call("import_points", str(path), "--program", "acme")
    assert "succeeded: 2 rows, 2 created, 0 updated, 0 unchanged, 0 failed." in out
    assert Account.objects.get(member=members[0]).available == 100
    job = Job.objects.get()
    assert (job.kind, job.started_by_label) == ("point_adjustments", "command:import_points")

    again, _err = _call("import_points", str(path))  # the only program: --program is optional
    assert "succeeded: 2 rows, 0 created, 0 updated, 2 unchanged, 0 failed." in again
    assert Transaction.objects.filter(kind="adjust").count() == 2


def test_import_points_command_exits_1_on_failed_rows_and_writes_the_report(tmp_path, program, members):
    rows = [*ROWS, {"number": "1000002", "amount": "-500", "reason": "Too much", "reference": "c-3"}]
    report_path = tmp_path / "report.csv"
    code, out = _exit_code("import_points", str(_write(tmp_path, rows)), f"--report={report_path}")
    assert code == 1
    assert "partially_succeeded: 3 rows, 2 created, 0 updated, 0 unchanged, 1 failed." in out
    assert "row 3: would_go_negative" in out
    lines = list(csv.DictReader(report_path.open()))
    assert [line["outcome"] for line in lines] == ["created", "created", "failed"]


def test_import_points_command_dry_run_and_all_or_nothing_change_nothing(tmp_path, program, members):
    rows = [*ROWS, {"number": "9999999", "amount": "5", "reason": "Who", "reference": "c-4"}]
    path = _write(tmp_path, rows)
    code, out = _exit_code("import_points", str(path), "--dry-run")
    assert code == 1 and "(dry run: nothing changed)" in out
    code, out = _exit_code("import_points", str(path), "--mode=all_or_nothing")
    assert code == 1 and "failed: 3 rows" in out
    assert not Transaction.objects.filter(kind="adjust").exists()
    out, _err = _call("import_points", str(_write(tmp_path, ROWS, name="ok.csv")), "--dry-run")
    assert "succeeded (dry run: nothing changed): 2 rows, 2 created" in out
    assert not Transaction.objects.filter(kind="adjust").exists()


def test_import_points_command_unreadable_input_exits_2(tmp_path, program, members, other_program):
    no_reference = tmp_path / "bad.csv"
    no_reference.write_text("number,amount,reason\n1000001,5,x\n")
    code, _out = _exit_code("import_points", str(no_reference), "--program=acme")
    assert code == 2
    with pytest.raises(CommandError, match="not exactly one program") as error:
        _call("import_points", str(_write(tmp_path, ROWS)))
    assert error.value.returncode == 2
    with pytest.raises(CommandError, match="No file"):
        _call("import_points", str(tmp_path / "missing.csv"), "--program=acme")
    assert not Job.objects.exists()


@pytest.fixture
def ledger(program, members, system_actor):
    def earn(member, amount, when):
        return points_services.points_earn(
            member=member,
            amount=amount,
            actor=system_actor,
            occurred_at=datetime.fromisoformat(when).replace(tzinfo=UTC),
        ).transaction

    return [
        earn(members[0], 10, "2025-05-31T21:59:00"),  # 23:59 in Paris, 31 May
        earn(members[0], 20, "2025-05-31T22:00:00"),  # 00:00 in Paris, 1 June
        earn(members[1], 30, "2025-06-30T21:59:59"),
        earn(members[1], 40, "2025-06-30T22:00:00"),  # July in Paris
    ]


def test_export_transactions_command_writes_the_days_of_the_program(tmp_path, program, ledger, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out, _err = _call("export_transactions", "--from", "2025-06-01", "--to", "2025-06-30")
    written = tmp_path / "transactions-acme-2025-06-01-2025-06-30.csv"
    assert f"succeeded: 2 rows written to {written.name}" in out
    rows = list(csv.DictReader(written.open()))
    assert [int(row["id"]) for row in rows] == [ledger[1].pk, ledger[2].pk]

    target = tmp_path / "may.json"
    _call(
        "export_transactions",
        "--program=acme",
        "--from=2025-05-01",
        "--to=2025-05-31",
        "--format=json",
        f"--output={target}",
    )
    assert [row["amount"] for row in json.loads(target.read_text())] == [10]
    assert Job.objects.filter(kind="transactions", status="succeeded").count() == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from=2025-06-02", "--to=2025-06-01"], "to:"),
        (["--from=2025-06-01", "--to=2025-06-02", "--currency=MILES"], "currency:"),
        (["--program=nope", "--from=2025-06-01", "--to=2025-06-02"], "No program"),
    ],
)
def test_export_transactions_command_refuses_bad_options(tmp_path, program, args, message):
    with pytest.raises(CommandError, match=message) as error:
        _call("export_transactions", *args, f"--output={tmp_path / 'x.csv'}")
    assert error.value.returncode == 2
    assert not Job.objects.exists()
