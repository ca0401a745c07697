from typing import Any

from jobs.commands import ImportCommand

from ...bulk import ACTIONS


class Command(ImportCommand):
    help = (
        "Import members from a CSV or JSON file into a program, through the same job as "
        "POST /api/v1/imports/members (same validation, chunks, events and report), run in "
        "this process. Exits 1 when rows failed, 2 when the file could not be imported."
    )
    kind = "members"

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--action", choices=ACTIONS, default="upsert")

    def params(self, options: dict[str, Any]) -> dict[str, Any]:
        return {**super().params(options), "action": options["action"]}
