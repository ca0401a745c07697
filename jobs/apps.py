from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "jobs"
    verbose_name = "Jobs"

    def ready(self) -> None:
        from webhooks import catalog

        catalog.register(
            "job.finished",
            "An import or export job finished (succeeded, partially succeeded, failed or cancelled).",
            {
                "job": {
                    "id": 12,
                    "operation": "import",
                    "kind": "members",
                    "status": "partially_succeeded",
                    "dry_run": False,
                    "mode": "continue",
                    "total_rows": 1000,
                    "processed_rows": 1000,
                    "counts": {"created": 950, "updated": 40, "unchanged": 7, "failed": 3},
                    "error_code": None,
                    "finished_at": "2025-01-31T10:00:00Z",
                }
            },
            member_scoped=False,
        )
