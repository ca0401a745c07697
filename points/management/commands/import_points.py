from jobs.commands import ImportCommand


class Command(ImportCommand):
    help = (
        "Import manual points adjustments from a CSV or JSON file (columns: the member's "
        "number, email or external_ref, currency, amount, reason, reference, description), "
        "through the same job as POST /api/v1/imports/point_adjustments, run in this process "
        "with a progress bar and a summary. Re-importing a file changes nothing (references). "
        "Exits 1 when rows failed, 2 when the file could not be imported."
    )
    kind = "point_adjustments"
