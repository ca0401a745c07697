from datetime import date
from pathlib import Path
from typing import Any

from jobs.commands import ExportCommand
from points.models import Transaction
from programs.models import Program


class Command(ExportCommand):
    help = (
        "Export the ledger transactions of a range of days (by occurred_at; --from and --to "
        "are days in the program's time zone, both included) as CSV or JSON, through the same "
        "job as POST /api/v1/exports/transactions, with a progress bar."
    )
    kind = "transactions"

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--from", dest="first", type=date.fromisoformat, required=True, help="YYYY-MM-DD")
        parser.add_argument("--to", dest="last", type=date.fromisoformat, required=True, help="YYYY-MM-DD")
        parser.add_argument("--currency", help="Only this points currency (code).")
        parser.add_argument("--kind", choices=Transaction.Kind.values, help="Only this transaction kind.")

    def export_params(self, options: dict[str, Any]) -> dict[str, Any]:
        params = {"from": options["first"].isoformat(), "to": options["last"].isoformat()}
        for name in ("currency", "kind"):
            if options.get(name):
                params[name] = options[name]
        return params

    def default_output(self, program: Program, params: dict[str, Any], fmt: str) -> Path:
        return Path(f"transactions-{program.code}-{params['from']}-{params['to']}.{fmt}")
