"""Bulk jobs (imports and exports), their progress and their per-chunk reports.

Invariants:
- A job belongs to one program, referred to by id (this app imports no domain app).
- An import is cut into chunks of ``chunk_size`` rows (fixed when the job is created, so
  a restarted job cuts the file the same way). A chunk's domain writes, its ``JobChunk``
  row (the report of its rows) and the job's progress commit in one transaction, and
  ``(job, phase, index)`` is unique, so a chunk is applied at most once even when two
  workers run the same job: a restarted job carries on after the last committed chunk.
- Counts and ``processed_rows`` are the sums over the job's chunks of the current phase.
- ``finished_at`` is set exactly when the status is final (succeeded, partially
  succeeded, failed, cancelled); a final job never changes status again.
- Files live under ``JOBS_STORAGE_DIR/<storage_key>/``; the input and the result are
  deleted, and the report rows emptied, by the purge after ``expires_at``.
"""

import secrets

from django.conf import settings
from django.db import models


def new_storage_key() -> str:
    return secrets.token_hex(16)


class Job(models.Model):
    class Operation(models.TextChoices):
        IMPORT = "import", "Import"
        EXPORT = "export", "Export"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        PARTIALLY_SUCCEEDED = "partially_succeeded", "Partially succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    class Mode(models.TextChoices):
        CONTINUE = "continue", "Continue past bad rows"
        ALL_OR_NOTHING = "all_or_nothing", "All or nothing"

    class Phase(models.TextChoices):
        # An all-or-nothing import first validates every row (committed chunk by chunk,
        # writing nothing), then applies them all in one transaction.
        VALIDATE = "validate", "Validating"
        APPLY = "apply", "Applying"

    FINAL_STATUSES = (Status.SUCCEEDED, Status.PARTIALLY_SUCCEEDED, Status.FAILED, Status.CANCELLED)

    program_id = models.BigIntegerField(db_index=True)
    operation = models.CharField(max_length=6, choices=Operation.choices)
    kind = models.CharField(max_length=50)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    phase = models.CharField(max_length=8, choices=Phase.choices, default=Phase.APPLY)
    dry_run = models.BooleanField(default=False)
    mode = models.CharField(max_length=16, choices=Mode.choices, default=Mode.CONTINUE)
    params = models.JSONField(default=dict, blank=True, help_text="The kind's own parameters.")

    started_by_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    started_by_integration = models.ForeignKey(
        "integrations.Integration", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    started_by_label = models.CharField(max_length=200, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(
        null=True, blank=True, help_text="Last sign of life of the worker running it (each chunk)."
    )
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0, help_text="Times a worker started or resumed it.")

    chunk_size = models.PositiveIntegerField()
    total_rows = models.PositiveIntegerField(null=True, blank=True)
    processed_rows = models.PositiveIntegerField(default=0)
    created_count = models.PositiveIntegerField(default=0)
    updated_count = models.PositiveIntegerField(default=0)
    unchanged_count = models.PositiveIntegerField(default=0)
    failed_count = models.PositiveIntegerField(default=0)

    error_code = models.CharField(max_length=50, blank=True, help_text="Why the whole job failed.")
    error_detail = models.TextField(blank=True)

    storage_key = models.CharField(max_length=32, unique=True, default=new_storage_key, editable=False)
    input_name = models.CharField(max_length=255, blank=True, help_text="Uploaded file name.")
    input_format = models.CharField(max_length=4, blank=True)
    input_file = models.CharField(max_length=255, blank=True, help_text="Path under JOBS_STORAGE_DIR.")
    result_format = models.CharField(max_length=4, blank=True)
    result_file = models.CharField(max_length=255, blank=True, help_text="Path under JOBS_STORAGE_DIR.")
    result_rows = models.PositiveIntegerField(null=True, blank=True)
    expires_at = models.DateTimeField(
        null=True, blank=True, help_text="After this, the files and the report are purged."
    )
    purged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["program_id", "-id"], name="job_program_recent"),
            models.Index(fields=["status", "heartbeat_at"], name="job_status_heartbeat"),
            models.Index(fields=["expires_at"], name="job_expires"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(finished_at__isnull=True)
                | models.Q(status__in=["succeeded", "partially_succeeded", "failed", "cancelled"]),
                name="job_finished_only_when_final",
            )
        ]

    def __str__(self) -> str:
        return f"{self.operation} {self.kind} #{self.pk} ({self.status})"

    @property
    def is_final(self) -> bool:
        return self.status in self.FINAL_STATUSES

    @property
    def percent(self) -> int | None:
        if not self.total_rows:
            return 100 if self.is_final and self.total_rows == 0 else None
        return min(100, self.processed_rows * 100 // self.total_rows)

    @property
    def counts(self) -> dict[str, int]:
        return {
            "created": self.created_count,
            "updated": self.updated_count,
            "unchanged": self.unchanged_count,
            "failed": self.failed_count,
        }


class JobChunk(models.Model):
    """One committed chunk of an import: the claim that it was processed, and the report
    of its rows (``report``: ``[row, outcome, [[code, field, message], ...], object_id,
    object_ref]`` per row, kept compact because a job can have millions of rows)."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="chunks")
    phase = models.CharField(max_length=8, choices=Job.Phase.choices)
    index = models.PositiveIntegerField()
    first_row = models.PositiveIntegerField()
    last_row = models.PositiveIntegerField()
    created_count = models.PositiveIntegerField(default=0)
    updated_count = models.PositiveIntegerField(default=0)
    unchanged_count = models.PositiveIntegerField(default=0)
    failed_count = models.PositiveIntegerField(default=0)
    report = models.JSONField(default=list)
    committed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["job_id", "phase", "index"]
        constraints = [
            models.UniqueConstraint(fields=["job", "phase", "index"], name="job_chunk_once"),
        ]

    def __str__(self) -> str:
        return f"job {self.job_id} {self.phase} chunk {self.index} (rows {self.first_row}-{self.last_row})"
