from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from integrations import services
from integrations.models import Integration
from membership_site.actors import Actor
from membership_site.errors import DomainError
from programs.models import Program


class Command(BaseCommand):
    help = (
        "Create an integration and its first API key (printed once, as 'API key: ...'); with "
        "--oauth also an OAuth2 client ('Client ID:' and 'Client secret:')."
    )

    def add_arguments(self, parser):
        parser.add_argument("--program", required=True, help="Program code")
        parser.add_argument("--name", required=True)
        parser.add_argument(
            "--scopes", required=True, help='Space-separated, e.g. "members:read points:write"'
        )
        parser.add_argument("--kind", default=Integration.Kind.OTHER, choices=Integration.Kind.values)
        parser.add_argument("--oauth", action="store_true", help="Also create an OAuth2 client")

    def handle(self, *args, **options):
        try:
            program = Program.objects.get(code=options["program"])
        except Program.DoesNotExist:
            raise CommandError(f"No program '{options['program']}'.") from None
        actor = Actor.system("command:create_integration")
        try:
            with transaction.atomic():
                integration = services.integration_create(
                    program=program,
                    name=options["name"],
                    kind=options["kind"],
                    scopes=options["scopes"].split(),
                    actor=actor,
                )
                new_key = services.api_key_create(integration=integration, name="initial", actor=actor)
                client = (
                    services.oauth_client_create(integration=integration, actor=actor)
                    if options["oauth"]
                    else None
                )
        except DomainError as error:
            raise CommandError(error.detail) from None
        self.stdout.write(f"Integration: {integration.name} (id {integration.pk}) in {program.code}")
        self.stdout.write(f"Scopes: {' '.join(integration.scopes)}")
        self.stdout.write(f"API key: {new_key.key}")
        if client:
            self.stdout.write(f"Client ID: {client.client_id}")
            self.stdout.write(f"Client secret: {client.client_secret}")
        self.stdout.write(self.style.WARNING("These secrets are shown once; only hashes are stored."))
