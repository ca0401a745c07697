"""``load_demo`` prints the URLs of the server ``make run`` starts: its HOST and PORT reach
the command as DEMO_HOST and DEMO_PORT (default http://127.0.0.1:8000), and the
``API key: `` line that .ci/run reads stays as it is."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

ROOT = Path(__file__).resolve().parents[2]


def _load_demo() -> str:
    out = StringIO()
    call_command("load_demo", stdout=out)
    return out.getvalue()


def _api_key(output: str) -> str:
    """As .ci/run reads it: sed -n 's/^API key: //p'."""
    return "".join(line[len("API key: ") :] for line in output.splitlines() if line.startswith("API key: "))


@pytest.mark.django_db
def test_load_demo_prints_the_default_address_without_demo_host(monkeypatch):
    monkeypatch.delenv("DEMO_HOST", raising=False)
    monkeypatch.delenv("DEMO_PORT", raising=False)
    output = _load_demo()
    assert "Admin: http://127.0.0.1:8000/admin/  user: admin" in output
    assert "API docs: http://127.0.0.1:8000/api/docs/" in output
    assert re.fullmatch(r"lk_\S+", _api_key(output))


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("host", "port", "url"),
    [
        ("192.168.1.20", "8080", "http://192.168.1.20:8080"),
        ("localhost", "9000", "http://localhost:9000"),
        ("0.0.0.0", "8001", "http://127.0.0.1:8001"),  # every interface: reached locally
        ("::1", "8002", "http://[::1]:8002"),
        ("", "", "http://127.0.0.1:8000"),  # `make run HOST= PORT=`
    ],
)
def test_load_demo_prints_the_urls_of_demo_host_and_port(monkeypatch, host, port, url):
    monkeypatch.setenv("DEMO_HOST", host)
    monkeypatch.setenv("DEMO_PORT", port)
    output = _load_demo()
    assert f"Admin: {url}/admin/  user: admin" in output
    assert f"API docs: {url}/api/docs/" in output
    if url != "http://127.0.0.1:8000":
        assert "127.0.0.1:8000" not in output
    assert re.fullmatch(r"lk_\S+", _api_key(output))


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_run_passes_host_and_port_to_load_demo_and_runserver(tmp_path):
    """``make run HOST=... PORT=...`` with a stand-in python that records each call's
    arguments and the DEMO_HOST / DEMO_PORT it gets."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.log"
    fake = bin_dir / "python"
    fake.write_text(f'#!/bin/sh\necho "$DEMO_HOST $DEMO_PORT $*" >> {log}\n')
    fake.chmod(0o755)
    stamp = tmp_path / "installed"
    stamp.touch()  # newer than requirements*.txt: no install
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAKE", "DEMO_"))}
    result = subprocess.run(
        ["make", "-s", "run", "HOST=10.1.2.3", "PORT=9123", f"BIN={bin_dir}", f"STAMP={stamp}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert log.read_text().splitlines() == [
        "10.1.2.3 9123 manage.py migrate --noinput",
        "10.1.2.3 9123 manage.py load_demo",
        "10.1.2.3 9123 manage.py runserver 10.1.2.3:9123",
    ]
