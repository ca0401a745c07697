"""Settings, health check, API docs, the URL map's invariants, the demo loader."""

import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import DatabaseError
from django.urls import get_resolver
from rest_framework.views import APIView

from integrations.models import Integration
from members.models import Member
from membership_site.api.permissions import required_scope
from membership_site.api.views import ApiDispatchMixin
from programs.models import Location, Program

ROOT = Path(__file__).resolve().parents[2]


def _run_python(code: str, **env_changes) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "DEBUG")}
    env.update(env_changes)
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def test_production_refuses_to_start_without_secret_key():
    result = _run_python(
        "import django, os; os.environ['DJANGO_SETTINGS_MODULE']='membership_site.settings'; django.setup()"
    )
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr


def test_debug_is_off_by_default():
    result = _run_python(
        "import django, os; os.environ['DJANGO_SETTINGS_MODULE']='membership_site.settings'; django.setup();"
        "from django.conf import settings; print(settings.DEBUG)",
        SECRET_KEY="x" * 60,
    )
    assert result.stdout.strip() == "False", result.stderr


def _check_deploy(tmp_path, **env_changes) -> subprocess.CompletedProcess:
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("DEBUG", "SECURE_SSL_REDIRECT", "CACHE_URL")},
        "SECRET_KEY": "k" * 20 + "Q7!x" * 10,
        "ALLOWED_HOSTS": "loyalty.example.com",
        "DATABASE_URL": f"sqlite:///{tmp_path}/deploy.sqlite3",
        "CACHE_URL": "redis://127.0.0.1:6379/1",
        **env_changes,
    }
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env={k: v for k, v in env.items() if v is not None},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_with_production_environment(tmp_path):
    result = _check_deploy(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_warns_when_rate_limits_would_count_per_process(tmp_path):
    result = _check_deploy(tmp_path, CACHE_URL=None)
    assert result.returncode != 0
    assert "membership_site.W001" in result.stdout + result.stderr


@pytest.mark.django_db
def test_healthz_reports_database(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok", "database": "ok"}


@pytest.mark.django_db
def test_healthz_is_503_when_database_fails(client, monkeypatch):
    from django.db.backends.utils import CursorWrapper

    def broken(self, *args, **kwargs):
        raise DatabaseError("connection refused")

    monkeypatch.setattr(CursorWrapper, "execute", broken)
    response = client.get("/healthz")
    assert response.status_code == 503 and response.json()["database"] == "unreachable"


@pytest.mark.django_db
def test_schema_and_docs_are_served_without_a_cdn(client):
    schema = client.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    spec = schema.json()
    assert spec["openapi"].startswith("3.")
    assert "/api/v1/members/lookup" in spec["paths"]
    assert {"ApiKeyAuth", "OAuth2"} <= set(spec["components"]["securitySchemes"])
    post = spec["paths"]["/api/v1/members"]["post"]
    assert any(p["name"] == "Idempotency-Key" for p in post["parameters"])
    assert "application/problem+json" in post["responses"]["409"]["content"]
    for url in ("/api/docs/", "/api/redoc/"):
        page = client.get(url).content.decode()
        assert "cdn." not in page and "unpkg" not in page and "jsdelivr" not in page
        assert "/static/drf_spectacular_sidecar/" in page


def _api_views():
    def walk(patterns, prefix=""):
        for pattern in patterns:
            if hasattr(pattern, "url_patterns"):
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern))
            else:
                yield prefix + str(pattern.pattern), pattern.callback

    for route, callback in walk(get_resolver().url_patterns):
        view_class = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
        if route.startswith("api/v1/") and view_class and issubclass(view_class, APIView):
            yield route, view_class


def test_every_api_view_uses_the_platform_base_and_declares_its_scope():
    from drf_spectacular.views import SpectacularAPIView

    from integrations.api import WhoAmIApi

    views = list(_api_views())
    assert len(views) > 10
    for route, view_class in views:
        if view_class in (SpectacularAPIView,):
            continue
        assert issubclass(view_class, ApiDispatchMixin), f"{route}: {view_class} skips Idempotency-Key"
        if view_class is WhoAmIApi:
            continue
        for method in ("GET", "POST", "PATCH", "PUT", "DELETE"):
            if hasattr(view_class, method.lower()):
                assert required_scope(view_class, method), f"{route} {method} declares no scope"


@pytest.mark.django_db
def test_load_demo_is_safe_to_rerun():
    first, second = StringIO(), StringIO()
    call_command("load_demo", stdout=first)
    counts = (
        Program.objects.count(),
        Location.objects.count(),
        Member.objects.count(),
        Integration.objects.count(),
    )
    call_command("load_demo", stdout=second)
    assert counts == (
        Program.objects.count(),
        Location.objects.count(),
        Member.objects.count(),
        Integration.objects.count(),
    )
    assert counts[2] >= 5
    for out in (first.getvalue(), second.getvalue()):
        assert "API key: lk_" in out
    assert "password:" in first.getvalue() and "password unchanged" in second.getvalue()


def test_without_a_broker_tasks_run_in_process_and_commands_log_no_broker_warning(caplog):
    # Eager mode still builds a producer connection: it must not warn on every `make run`
    # command ("No hostname was supplied").
    import kombu

    from membership_site.celery import app

    assert app.conf.task_always_eager
    caplog.set_level("WARNING")
    with kombu.Connection(app.conf.broker_url) as connection:
        assert connection.info()["transport"] == "memory"
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == []


@pytest.mark.parametrize(
    ("variable", "url", "message"),
    [
        (
            "DATABASE_URL",
            "postgres://postgres@127.0.0.1:1/loyalty",
            "PostgreSQL is unreachable at 127.0.0.1:1",
        ),
        ("REDIS_URL", "redis://127.0.0.1:1/0", "Redis is unreachable at redis://127.0.0.1:1/0"),
    ],
)
def test_make_test_stops_with_a_clear_message_when_a_service_is_down(variable, url, message):
    # `make test` runs scripts/check_services.py before pytest.
    env = {**os.environ, variable: url}
    result = subprocess.run(
        [sys.executable, "scripts/check_services.py"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert message in result.stderr + result.stdout
    assert "Start it" in result.stderr + result.stdout
    up = subprocess.run(
        [sys.executable, "scripts/check_services.py"], cwd=ROOT, capture_output=True, timeout=60
    )
    assert up.returncode == 0, up.stderr


def test_without_database_url_make_run_uses_a_sqlite_file_with_immediate_transactions():
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL")}
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django, os; os.environ['DJANGO_SETTINGS_MODULE']='membership_site.settings';"
            "django.setup(); from django.conf import settings; from membership_site.celery import app;"
            "db = settings.DATABASES['default'];"
            "print(db['ENGINE'], db['NAME'], db['OPTIONS']['transaction_mode'], app.conf.task_always_eager)",
        ],
        cwd=ROOT,
        env={**env, "DEBUG": "true"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.stdout.split() == [
        "django.db.backends.sqlite3",
        str(ROOT / "db.sqlite3"),
        "IMMEDIATE",
        "True",
    ], result.stderr
