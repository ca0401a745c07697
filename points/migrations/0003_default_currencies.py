"""Programs created before the points app get the default currency (PTS, no expiry) and
its system accounts, as ``program_created`` gives new ones."""

from django.db import migrations

SYSTEM_KINDS = ("issued", "redeemed", "expired", "adjusted")


def forward(apps, schema_editor):
    Program = apps.get_model("programs", "Program")
    Currency = apps.get_model("points", "Currency")
    Account = apps.get_model("points", "Account")
    for program in Program.objects.exclude(points_currencies__isnull=False):
        currency = Currency.objects.create(program=program, code="PTS", name="Points", is_default=True)
        for kind in SYSTEM_KINDS:
            Account.objects.create(
                program=program, currency=currency, kind=kind, member=None, allow_negative=True
            )


class Migration(migrations.Migration):
    dependencies = [("points", "0002_ledger_triggers"), ("programs", "0001_initial")]

    operations = [migrations.RunPython(forward, migrations.RunPython.noop)]
