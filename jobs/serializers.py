"""API representations of jobs and job kinds."""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from membership_site.api.serializers import StrictSerializer

from .models import Job
from .registry import ROW_ERROR_CODES


class ProgressSerializer(serializers.Serializer):
    total = serializers.IntegerField(allow_null=True, help_text="Rows in the file (imports) or to write.")
    processed = serializers.IntegerField()
    percent = serializers.IntegerField(allow_null=True)


class CountsSerializer(serializers.Serializer):
    created = serializers.IntegerField()
    updated = serializers.IntegerField()
    unchanged = serializers.IntegerField()
    failed = serializers.IntegerField()


class StartedBySerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=["user", "integration", "system"])
    id = serializers.IntegerField(allow_null=True)
    label = serializers.CharField()


class JobErrorSerializer(serializers.Serializer):
    code = serializers.CharField()
    detail = serializers.CharField()


class JobResultSerializer(serializers.Serializer):
    format = serializers.CharField()
    rows = serializers.IntegerField(allow_null=True)
    url = serializers.CharField()


class JobSerializer(serializers.ModelSerializer):
    progress = serializers.SerializerMethodField()
    counts = serializers.SerializerMethodField()
    started_by = serializers.SerializerMethodField()
    error = serializers.SerializerMethodField()
    input_name = serializers.CharField()
    report_url = serializers.SerializerMethodField()
    result = serializers.SerializerMethodField()

    class Meta:
        model = Job
        fields = [
            "id",
            "operation",
            "kind",
            "status",
            "phase",
            "dry_run",
            "mode",
            "params",
            "started_by",
            "created_at",
            "started_at",
            "finished_at",
            "cancel_requested_at",
            "progress",
            "counts",
            "error",
            "input_name",
            "report_url",
            "result",
            "expires_at",
        ]
        read_only_fields = fields

    @extend_schema_field(ProgressSerializer)
    def get_progress(self, job: Job) -> dict:
        return {"total": job.total_rows, "processed": job.processed_rows, "percent": job.percent}

    @extend_schema_field(CountsSerializer)
    def get_counts(self, job: Job) -> dict:
        return job.counts

    @extend_schema_field(StartedBySerializer)
    def get_started_by(self, job: Job) -> dict:
        if job.started_by_integration_id:
            return {"type": "integration", "id": job.started_by_integration_id, "label": job.started_by_label}
        if job.started_by_user_id:
            return {"type": "user", "id": job.started_by_user_id, "label": job.started_by_label}
        return {"type": "system", "id": None, "label": job.started_by_label or "system"}

    @extend_schema_field(JobErrorSerializer(allow_null=True))
    def get_error(self, job: Job) -> dict | None:
        return {"code": job.error_code, "detail": job.error_detail} if job.error_code else None

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_report_url(self, job: Job) -> str | None:
        if job.operation != Job.Operation.IMPORT:
            return None
        return reverse("v1:job-report", kwargs={"job_id": job.pk})

    @extend_schema_field(JobResultSerializer(allow_null=True))
    def get_result(self, job: Job) -> dict | None:
        if not job.result_file:
            return None
        return {
            "format": job.result_format,
            "rows": job.result_rows,
            "url": reverse("v1:job-file", kwargs={"job_id": job.pk}),
        }


class ImportUploadSerializer(StrictSerializer):
    """A multipart upload; the parameters may also be given in the query string."""

    file = serializers.FileField(help_text="CSV (UTF-8, ',' or ';') or JSON (an array of objects).")
    dry_run = serializers.BooleanField(required=False)
    mode = serializers.ChoiceField(choices=Job.Mode.choices, required=False)
    match = serializers.CharField(
        required=False,
        help_text="Kinds that find members (members, labels, cards, point_adjustments, "
        "tier_assignments): number, email, external_ref.",
    )
    action = serializers.CharField(required=False, help_text="members: create, update or upsert.")


class ColumnSerializer(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField()
    required = serializers.BooleanField()
    example = serializers.CharField()


class ParamSerializer(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField()
    choices = serializers.ListField(child=serializers.CharField(), allow_null=True)
    default = serializers.CharField(allow_null=True)


class ErrorCodeSerializer(serializers.Serializer):
    code = serializers.CharField()
    description = serializers.CharField()


class KindSerializer(serializers.Serializer):
    """What a kind expects: columns, parameters, row error codes, the scope needed."""

    name = serializers.CharField()
    operation = serializers.CharField()
    description = serializers.CharField()
    scope = serializers.CharField(help_text="Needed on top of jobs:write to start it.")
    columns = ColumnSerializer(many=True)
    params = ParamSerializer(many=True)
    error_codes = ErrorCodeSerializer(many=True, required=False)


def kind_document(kind, params_serializer) -> dict:
    params = []
    for name, field in params_serializer().fields.items():
        default = field.default
        params.append(
            {
                "name": name,
                "description": str(field.help_text or ""),
                "choices": [str(choice) for choice in field.choices] if hasattr(field, "choices") else None,
                "default": None if default is serializers.empty else str(default),
            }
        )
    document = {
        "name": kind.name,
        "operation": kind.operation,
        "description": kind.description,
        "scope": kind.scope,
        "columns": [
            {"name": c.name, "description": c.description, "required": c.required, "example": c.example}
            for c in kind.columns
        ],
        "params": params,
    }
    if kind.operation == "import":
        document["error_codes"] = [
            {"code": code, "description": ROW_ERROR_CODES.get(code, "")}
            for code in ("missing_field", "bad_format", "duplicate_in_file", *kind.error_codes)
            if code
        ]
        document["error_codes"] = list({item["code"]: item for item in document["error_codes"]}.values())
    return document
