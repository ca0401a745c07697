"""Load a demo program; safe to run again (nothing is duplicated)."""

import importlib
import os
import secrets

from django.apps import apps
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from integrations import services as integration_services
from integrations.models import Integration
from integrations.scopes import SCOPES
from members import services as member_services
from members.models import Label, Member
from membership_site.actors import Actor
from programs import services as program_services
from programs.models import Location, Program

DEMO_PROGRAM = "demo"
DEMO_LOCATIONS = [
    ("paris-01", "Paris Opéra", Location.Kind.STORE),
    ("lyon-01", "Lyon Part-Dieu", Location.Kind.STORE),
    ("web", "Web shop", Location.Kind.WEB),
]
DEMO_LABELS = [("vip", "VIP"), ("staff", "Staff"), ("newsletter", "Newsletter readers")]
DEMO_MEMBERS = [
    {
        "first_name": "Ana",
        "last_name": "Lopez",
        "email": "ana@example.com",
        "phone": "+33612345678",
        "card_number": "9000000000000017",
        "labels": ["vip"],
    },
    {
        "first_name": "Ben",
        "last_name": "Martin",
        "email": "ben@example.com",
        "phone": "+33698765432",
        "card_number": "9000000000000025",
        "labels": [],
    },
    {
        "first_name": "Chloé",
        "last_name": "Dubois",
        "email": "chloe@example.com",
        "phone": "+33611223344",
        "card_number": "9000000000000033",
        "labels": ["newsletter"],
    },
    {
        "first_name": "David",
        "last_name": "Bernard",
        "email": "david@example.com",
        "phone": "",
        "card_number": "9000000000000041",
        "labels": ["staff"],
    },
    {
        "first_name": "Emma",
        "last_name": "Petit",
        "email": "emma@example.com",
        "phone": "+33655667788",
        "card_number": "",
        "labels": [],
    },
]
DEMO_INTEGRATION = "Demo till and web shop"
# Where the printed URLs point: `make run HOST=... PORT=...` passes its server address as
# DEMO_HOST and DEMO_PORT. A server listening on every interface is reached locally.
DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", "8000"
_WILDCARD_HOSTS = {"0.0.0.0": "127.0.0.1", "::": "::1", "[::]": "::1"}


def server_url() -> str:
    """The demo server's base URL from DEMO_HOST and DEMO_PORT (default
    http://127.0.0.1:8000)."""
    host = os.environ.get("DEMO_HOST", "").strip() or DEFAULT_HOST
    port = os.environ.get("DEMO_PORT", "").strip() or DEFAULT_PORT
    host = _WILDCARD_HOSTS.get(host, host)
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 address
    return f"http://{host}:{port}"


class Command(BaseCommand):
    help = (
        "Load the demo program (locations, labels, members, an admin user and an integration). "
        "Safe to re-run: existing demo data is kept, and each run prints a fresh API key."
    )

    def handle(self, *args, **options):
        actor = Actor.system("command:load_demo")
        with transaction.atomic():
            program = self._program(actor)
            self._locations(program, actor)
            self._labels(program, actor)
            created_members = self._members(program, actor)
            self._app_demos(program, actor)
            integration, new_integration = self._integration(program, actor)
            key = integration_services.api_key_create(integration=integration, name="load_demo", actor=actor)
            client = (
                integration_services.oauth_client_create(integration=integration, actor=actor)
                if new_integration
                else None
            )
        admin_password = self._admin_user()
        url = server_url()

        self.stdout.write(
            self.style.SUCCESS(f"Demo program '{program.code}' is ready ({created_members} members added).")
        )
        self.stdout.write(
            f"Admin: {url}/admin/  user: admin  "
            + (f"password: {admin_password}" if admin_password else "(existing user; password unchanged)")
        )
        self.stdout.write(f"API key: {key.key}")
        if client:
            self.stdout.write(f"Client ID: {client.client_id}")
            self.stdout.write(f"Client secret: {client.client_secret}")
        self.stdout.write(f"API docs: {url}/api/docs/")

    def _app_demos(self, program, actor) -> None:
        """Each app may add demo data in ``<app>/demo.py``: ``load(program=, actor=)``,
        which must itself be safe to re-run. Apps run lowest first (settings order)."""
        for app_config in apps.get_app_configs():
            try:
                module = importlib.import_module(f"{app_config.name}.demo")
            except ModuleNotFoundError as error:
                if error.name != f"{app_config.name}.demo":
                    raise
                continue
            module.load(program=program, actor=actor)

    def _program(self, actor):
        program = Program.objects.filter(code=DEMO_PROGRAM).first()
        return program or program_services.program_create(
            code=DEMO_PROGRAM,
            name="Demo Coffee Co.",
            timezone="Europe/Paris",
            currency="EUR",
            phone_region="FR",
            actor=actor,
        )

    def _locations(self, program, actor):
        existing = set(program.locations.values_list("code", flat=True))
        for code, name, kind in DEMO_LOCATIONS:
            if code not in existing:
                program_services.location_create(
                    program=program, code=code, name=name, kind=kind, actor=actor
                )

    def _labels(self, program, actor):
        existing = set(Label.objects.filter(program=program).values_list("code", flat=True))
        for code, name in DEMO_LABELS:
            if code not in existing:
                member_services.label_create(program=program, code=code, name=name, actor=actor)

    def _members(self, program, actor) -> int:
        existing = set(Member.objects.filter(program=program).values_list("email", flat=True))
        created = 0
        for data in DEMO_MEMBERS:
            if data["email"] in existing:
                continue
            data = dict(data)
            member_services.member_create(
                program=program,
                actor=actor,
                labels=data.pop("labels"),
                card_number=data.pop("card_number") or None,
                consents=[member_services.ConsentInput(purpose="email", granted=True, source="demo")],
                **data,
            )
            created += 1
        return created

    def _integration(self, program, actor):
        integration = Integration.objects.filter(program=program, name=DEMO_INTEGRATION).first()
        if integration:
            return integration, False
        return (
            integration_services.integration_create(
                program=program,
                name=DEMO_INTEGRATION,
                kind=Integration.Kind.POS,
                scopes=list(SCOPES),
                actor=actor,
            ),
            True,
        )

    def _admin_user(self) -> str | None:
        User = get_user_model()
        if User.objects.filter(username="admin").exists():
            return None
        password = os.environ.get("DEMO_ADMIN_PASSWORD") or secrets.token_urlsafe(9)
        User.objects.create_superuser("admin", "admin@example.com", password)
        return password
