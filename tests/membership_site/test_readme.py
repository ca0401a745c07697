"""The README's curl calls work against the demo data, as a new user runs them: the
commands are read from README.md and run with curl against a live server."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from members.models import Member

README = Path(__file__).resolve().parents[2] / "README.md"
DEMO_URL = "http://127.0.0.1:8000"

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")


def _shell_blocks(section: str) -> list[str]:
    text = README.read_text()
    start = text.index(f"## {section}")
    end = text.find("\n## ", start + 1)
    return re.findall(r"```sh\n(.*?)```", text[start:end], flags=re.S)


def _curl_commands(block: str) -> list[str]:
    joined = re.sub(r"\\\n\s*", " ", block)
    commands, pending = [], ""
    for line in joined.splitlines():
        line = (pending + "\n" + line) if pending else line
        try:
            shlex.split(line)  # a quote left open spans lines (a JSON body)
        except ValueError:
            pending = line
            continue
        pending = ""
        if line.strip().startswith("curl "):
            commands.append(line.strip())
    assert pending == ""
    return commands


def _run(command: str, base_url: str, env: dict[str, str]) -> tuple[int, str]:
    command = command.replace(DEMO_URL, base_url)
    result = subprocess.run(
        ["bash", "-c", f"{command} -w '\\n%{{http_code}}'"],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=30,
    )
    body, _, status = result.stdout.rpartition("\n")
    return int(status or 0), body


@pytest.mark.django_db(transaction=True)
def test_readme_curl_calls_work_against_the_demo_data(live_server):
    out = StringIO()
    call_command("load_demo", stdout=out)
    printed = dict(re.findall(r"^(API key|Client ID|Client secret): (\S+)$", out.getvalue(), flags=re.M))
    ana = Member.objects.get(email="ana@example.com")

    [api_block, oauth_block, *_] = _shell_blocks("Calling the API")
    commands = _curl_commands(api_block)
    assert len(commands) >= 6
    env = {"API_KEY": printed["API key"]}
    for command in commands:
        # The README's ids are those of a fresh demo database.
        command = command.replace("/members/1/", f"/members/{ana.pk}/")
        status, body = _run(command, live_server.url, env)
        assert 200 <= status < 300, f"{command}\n-> {status} {body}"

    token_call, bearer_call = _curl_commands(oauth_block)
    status, body = _run(
        token_call,
        live_server.url,
        {"CLIENT_ID": printed["Client ID"], "CLIENT_SECRET": printed["Client secret"]},
    )
    assert status == 200, body
    access_token = re.search(r'"access_token": ?"([^"]+)"', body).group(1)
    status, body = _run(bearer_call, live_server.url, {"ACCESS_TOKEN": access_token})
    assert status == 200, body
