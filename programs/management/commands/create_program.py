from django.core.management.base import BaseCommand, CommandError

from membership_site.actors import Actor
from membership_site.errors import DomainError
from programs import services


class Command(BaseCommand):
    help = "Create a program (brand): create_program CODE --name NAME --timezone TZ --currency ISO"

    def add_arguments(self, parser):
        parser.add_argument("code")
        parser.add_argument("--name", required=True)
        parser.add_argument("--timezone", default="UTC", help="IANA zone, e.g. Europe/Paris")
        parser.add_argument("--currency", default="USD", help="ISO 4217 code, e.g. EUR")
        parser.add_argument("--phone-region", default="", help="ISO 3166 alpha-2 for local phone numbers")

    def handle(self, *args, **options):
        try:
            program = services.program_create(
                code=options["code"],
                name=options["name"],
                timezone=options["timezone"],
                currency=options["currency"],
                phone_region=options["phone_region"],
                actor=Actor.system("command:create_program"),
            )
        except DomainError as error:
            raise CommandError(error.detail) from None
        self.stdout.write(self.style.SUCCESS(f"Created program {program.code} (id {program.pk})."))
