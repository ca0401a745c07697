"""Jobs API: start imports and exports, follow jobs, download reports and files.

Starting an import needs ``jobs:write`` and the kind's own scope (``members:write`` for
the member kinds, ``points:write`` for point adjustments, ``tiers:write`` for tier
assignments, ``config:write`` for tier definitions and the catalog); downloading an
export's file needs ``jobs:read`` and the kind's read scope (``members:read``,
``points:read``, ``config:read``), since it holds what that scope protects.
"""

from __future__ import annotations

import json

from django.http import FileResponse, StreamingHttpResponse
from django.urls import reverse
from django_filters import rest_framework as filters
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, status
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response

from membership_site.api.filters import IsoDateTimeFilter
from membership_site.api.parsers import ApiJSONParser
from membership_site.api.views import ApiGenericView, ApiView

from . import engine, files, selectors, services
from .errors import JobFileExpiredError, JobFileMissingError, JobNotFinishedError
from .models import Job
from .serializers import ImportUploadSerializer, JobSerializer, KindSerializer, kind_document

_KIND = OpenApiParameter(
    "kind",
    str,
    OpenApiParameter.PATH,
    description="Imports: members, labels, cards, point_adjustments, tier_assignments, tiers, rewards. "
    "Exports: members, transactions, balances, liability, tiers, rewards.",
)
_JOB_ID = OpenApiParameter("job_id", int, OpenApiParameter.PATH)
_IMPORT_QUERY = [
    OpenApiParameter("dry_run", bool, description="Validate every row and report; change nothing."),
    OpenApiParameter("mode", str, enum=["continue", "all_or_nothing"], description="Default continue."),
    OpenApiParameter(
        "match",
        str,
        description="Kinds that find members (members, labels, cards, point_adjustments, "
        "tier_assignments): number (default), email or external_ref.",
    ),
    OpenApiParameter("action", str, description="members: create, update or upsert (default)."),
]


def _require_scope(request, scope: str) -> None:
    if scope not in request.auth.scopes:
        raise exceptions.PermissionDenied(
            f"This operation needs the scope '{scope}'.", code="insufficient_scope"
        )


class _CsvDownloadMixin:
    def perform_content_negotiation(self, request, force=False):
        # A client asking for text/csv gets the CSV; errors are still problem JSON.
        return super().perform_content_negotiation(request, force=True)


def _accepted(job: Job) -> Response:
    return Response(
        JobSerializer(job).data,
        status=status.HTTP_202_ACCEPTED,
        headers={"Location": reverse("v1:job-detail", kwargs={"job_id": job.pk})},
    )


class ImportKindApi(ApiView):
    scope_area = "jobs"

    @extend_schema(
        summary="Describe an import kind",
        description="Its columns (with which are required), parameters and row error codes.",
        parameters=[_KIND],
        responses=KindSerializer,
    )
    def get(self, request, kind: str):
        import_kind = services.import_kind_get(kind)
        return Response(kind_document(import_kind, services.import_params_serializer(import_kind)))


class ImportTemplateApi(_CsvDownloadMixin, ApiView):
    scope_area = "jobs"

    @extend_schema(
        summary="Download an import template",
        description="A CSV file with the kind's columns and an example row.",
        parameters=[_KIND],
        responses={(200, "text/csv"): OpenApiTypes.STR},
    )
    def get(self, request, kind: str):
        template = services.import_template_csv(services.import_kind_get(kind))
        response = StreamingHttpResponse([template], content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{kind}-template.csv"'
        return response


class ImportCreateApi(ApiView):
    scope_area = "jobs"
    parser_classes = [MultiPartParser, ApiJSONParser]

    @extend_schema(
        summary="Start an import",
        description="Send a CSV or JSON file as multipart `file`, or a JSON array as the body. "
        "Parameters go in the query string (or as multipart fields). The file's header is "
        "checked now (unknown or missing columns: 400); rows are checked by the job. Answers "
        "202 with the job; follow it at `Location`. Also needs the kind's scope "
        "(`members:write` for members, labels and cards; `points:write` for point_adjustments; "
        "`tiers:write` for tier_assignments; `config:write` for tiers and rewards): see "
        "GET /imports/{kind}/describe.",
        parameters=[_KIND, *_IMPORT_QUERY],
        request={
            "multipart/form-data": ImportUploadSerializer,
            "application/json": {"type": "array", "items": {"type": "object"}},
        },
        responses={202: JobSerializer},
    )
    def post(self, request, kind: str):
        import_kind = services.import_kind_get(kind)
        _require_scope(request, import_kind.scope)
        params = request.query_params.dict()
        if request.content_type.startswith("application/json") and not isinstance(request.data, list):
            raise exceptions.ValidationError(
                {"non_field_errors": ["A JSON body is an array of rows (objects)."]}
            )
        if isinstance(request.data, list):
            chunks = [json.dumps(request.data).encode()]
            filename = "body.json"
        else:
            form = {key: request.data.get(key) for key in request.data if key not in request.FILES}
            upload = ImportUploadSerializer(data={**form, **request.FILES.dict()})
            upload.is_valid(raise_exception=True)
            params.update(form)
            file = upload.validated_data["file"]
            chunks = file.chunks()
            filename = file.name
        validated = services.validate_import_params(import_kind, params, program_id=self.program.pk)
        job = services.import_job_create(
            program_id=self.program.pk,
            kind=kind,
            chunks=chunks,
            filename=filename,
            params=validated,
            actor=self.actor,
        )
        return _accepted(job)


class ExportKindApi(ApiView):
    scope_area = "jobs"

    @extend_schema(summary="Describe an export kind", parameters=[_KIND], responses=KindSerializer)
    def get(self, request, kind: str):
        export_kind = services.export_kind_get(kind)
        return Response(kind_document(export_kind, services.export_params_serializer(export_kind)))


class ExportCreateApi(ApiView):
    scope_area = "jobs"

    @extend_schema(
        summary="Start an export",
        description="`format` (csv or json) and the kind's filters, e.g. for members "
        "`updated_since`, `status`, `label`; for transactions `from` and `to` (days in the "
        "program's time zone, both included), `currency`, `kind` (see GET "
        "/exports/{kind}/describe). Answers 202 with the job; when it has succeeded, download "
        "`result.url`. Also needs the kind's read scope (`members:read`; `points:read` for "
        "transactions, balances and liability; `config:read` for tiers and rewards).",
        parameters=[_KIND],
        request={"application/json": {"type": "object", "additionalProperties": True}},
        responses={202: JobSerializer},
    )
    def post(self, request, kind: str):
        export_kind = services.export_kind_get(kind)
        _require_scope(request, export_kind.scope)
        if not isinstance(request.data, dict):
            raise exceptions.ValidationError({"non_field_errors": ["Send a JSON object."]})
        params = services.validate_export_params(export_kind, request.data, program_id=self.program.pk)
        job = services.export_job_create(
            program_id=self.program.pk, kind=kind, params=params, actor=self.actor
        )
        return _accepted(job)


class JobFilter(filters.FilterSet):
    operation = filters.ChoiceFilter(choices=Job.Operation.choices)
    kind = filters.CharFilter()
    status = filters.ChoiceFilter(choices=Job.Status.choices)
    created_after = IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Job
        fields: list[str] = []


class JobListApi(ApiGenericView):
    scope_area = "jobs"
    serializer_class = JobSerializer
    filter_backends = [DjangoFilterBackend]
    filterset_class = JobFilter
    queryset = Job.objects.none()  # for the schema; requests use get_queryset

    def get_queryset(self):
        return selectors.job_list(program_id=self.program.pk)

    @extend_schema(summary="List jobs", responses=JobSerializer(many=True))
    def get(self, request):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(JobSerializer(page, many=True).data)


class JobDetailApi(ApiView):
    scope_area = "jobs"

    @extend_schema(
        summary="Get a job (progress while it runs)", parameters=[_JOB_ID], responses=JobSerializer
    )
    def get(self, request, job_id: int):
        return Response(JobSerializer(selectors.job_get(program_id=self.program.pk, job_id=job_id)).data)


class JobCancelApi(ApiView):
    scope_area = "jobs"

    @extend_schema(
        summary="Cancel a job",
        description="A queued job is cancelled at once; a running one stops before its next "
        "chunk (chunks already committed stay done). A finished job: 409 `job_finished`.",
        parameters=[_JOB_ID],
        request=None,
        responses=JobSerializer,
    )
    def post(self, request, job_id: int):
        job = selectors.job_get(program_id=self.program.pk, job_id=job_id)
        services.job_cancel(job=job, actor=self.actor)
        return Response(JobSerializer(selectors.job_get(program_id=self.program.pk, job_id=job_id)).data)


def _check_not_purged(job: Job) -> None:
    if job.purged_at:
        raise JobFileExpiredError(
            f"Job {job.pk}'s files and report were deleted at {job.purged_at:%Y-%m-%d %H:%M}Z."
        )


class JobReportApi(_CsvDownloadMixin, ApiView):
    scope_area = "jobs"

    @extend_schema(
        summary="Download an import's report",
        description="CSV, one line per row of the file: row, outcome (created, updated, "
        "unchanged, failed, not_applied), error_codes, error_fields and error_messages "
        "(several separated by '|'), object_id, object_ref. Partial while the job runs.",
        parameters=[_JOB_ID],
        responses={(200, "text/csv"): OpenApiTypes.STR},
    )
    def get(self, request, job_id: int):
        job = selectors.job_get(program_id=self.program.pk, job_id=job_id)
        if job.operation != Job.Operation.IMPORT:
            raise JobFileMissingError("Exports have no row report; download their file.")
        _check_not_purged(job)
        response = StreamingHttpResponse(engine.report_csv(job), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="job-{job.pk}-report.csv"'
        return response


class JobFileApi(_CsvDownloadMixin, ApiView):
    scope_area = "jobs"

    @extend_schema(
        summary="Download an export's file",
        description="Available once the export has succeeded, until `expires_at` "
        "(then 410). Also needs the kind's read scope.",
        parameters=[_JOB_ID],
        responses={
            (200, "text/csv"): OpenApiTypes.STR,
            (200, "application/json"): OpenApiResponse(OpenApiTypes.STR, description="A JSON array."),
        },
    )
    def get(self, request, job_id: int):
        job = selectors.job_get(program_id=self.program.pk, job_id=job_id)
        if job.operation != Job.Operation.EXPORT:
            raise JobFileMissingError("Imports have no result file; download their report.")
        kind = services.export_kind_get(job.kind)
        _require_scope(request, kind.scope)
        _check_not_purged(job)
        if not job.is_final:
            raise JobNotFinishedError(
                f"Job {job.pk} is {job.status}; the file is ready when it has succeeded."
            )
        if not job.result_file:
            raise JobFileMissingError(f"Job {job.pk} {job.status} without a file.")
        path = files.path_of(job.result_file)
        if not path.is_file():
            raise JobFileMissingError(f"Job {job.pk}'s file is no longer on the server.")
        content_type = "text/csv; charset=utf-8" if job.result_format == files.CSV else "application/json"
        return FileResponse(
            open(path, "rb"),
            as_attachment=True,
            filename=f"{job.kind}-export-{job.pk}.{job.result_format}",
            content_type=content_type,
        )
