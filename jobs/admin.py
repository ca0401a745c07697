from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html

from membership_site.actors import Actor
from membership_site.errors import DomainError

from . import engine, files, services
from .models import Job


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "what",
        "program_id",
        "status",
        "progress",
        "counts",
        "started_by_label",
        "created_at",
    ]
    list_filter = ["status", "operation", "kind", "dry_run", "mode"]
    search_fields = ["=id", "input_name", "started_by_label"]
    actions = ["cancel"]
    fieldsets = [
        (
            None,
            {"fields": ["operation", "kind", "program_id", "status", "phase", "dry_run", "mode", "params"]},
        ),
        (
            "Progress",
            {
                "fields": [
                    "progress",
                    "created_count",
                    "updated_count",
                    "unchanged_count",
                    "failed_count",
                    "error_code",
                    "error_detail",
                ]
            },
        ),
        ("Files", {"fields": ["input_name", "downloads", "result_rows", "expires_at", "purged_at"]}),
        (
            "Who and when",
            {
                "fields": [
                    "started_by_user",
                    "started_by_integration",
                    "started_by_label",
                    "created_at",
                    "started_at",
                    "heartbeat_at",
                    "cancel_requested_at",
                    "finished_at",
                    "attempts",
                    "chunk_size",
                ]
            },
        ),
    ]

    def get_readonly_fields(self, request, obj=None):
        return [name for fieldset in self.fieldsets for name in fieldset[1]["fields"]]

    def has_add_permission(self, request):
        return False  # jobs are started by imports and exports

    def has_change_permission(self, request, obj=None):
        return False  # read-only; "Cancel" is an action

    @admin.display(description="Progress")
    def progress(self, job: Job) -> str:
        if job.total_rows is None:
            return f"{job.processed_rows} rows"
        return f"{job.processed_rows} / {job.total_rows} ({job.percent}%)"

    @admin.display(description="Job", ordering="kind")
    def what(self, job: Job) -> str:
        return f"{job.get_operation_display()} {job.kind}{' (dry run)' if job.dry_run else ''}"

    @admin.display(description="Counts")
    def counts(self, job: Job) -> str:
        return ", ".join(f"{value} {name}" for name, value in job.counts.items())

    @admin.display(description="Downloads")
    def downloads(self, job: Job) -> str:
        links = []
        if job.operation == Job.Operation.IMPORT and not job.purged_at:
            links.append(
                format_html('<a href="{}">Report (CSV)</a>', reverse("admin:jobs_job_report", args=[job.pk]))
            )
        if job.result_file:
            links.append(
                format_html('<a href="{}">Result file</a>', reverse("admin:jobs_job_file", args=[job.pk]))
            )
        return format_html(" · ".join(["{}"] * len(links)), *links) if links else "—"

    def has_cancel_permission(self, request) -> bool:
        # The pages are read-only for everyone; cancelling is a change.
        return request.user.has_perm("jobs.change_job")

    @admin.action(description="Cancel selected jobs", permissions=["cancel"])
    def cancel(self, request, queryset):
        actor = Actor.for_user(request.user)
        for job in queryset:
            try:
                services.job_cancel(job=job, actor=actor)
                self.message_user(request, f"Job {job.pk}: cancel requested.", messages.SUCCESS)
            except DomainError as error:
                self.message_user(request, f"Job {job.pk}: {error.detail}", messages.ERROR)

    def get_urls(self):
        return [
            path(
                "<int:job_id>/report/", self.admin_site.admin_view(self.report_view), name="jobs_job_report"
            ),
            path("<int:job_id>/file/", self.admin_site.admin_view(self.file_view), name="jobs_job_file"),
            path(
                "template/<slug:kind>/",
                self.admin_site.admin_view(self.template_view),
                name="jobs_job_template",
            ),
            *super().get_urls(),
        ]

    def _job(self, request, job_id: int) -> Job:
        if not self.has_view_permission(request):
            raise PermissionDenied
        return get_object_or_404(Job, pk=job_id)

    def report_view(self, request, job_id: int):
        job = self._job(request, job_id)
        if job.operation != Job.Operation.IMPORT or job.purged_at:
            raise Http404("No report for this job.")

        response = StreamingHttpResponse(engine.report_csv(job), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="job-{job.pk}-report.csv"'
        return response

    def template_view(self, request, kind: str):
        """An import kind's CSV template (linked from the import pages)."""
        try:
            import_kind = services.import_kind_get(kind)
        except DomainError:
            raise Http404("No such import kind.") from None
        response = HttpResponse(
            services.import_template_csv(import_kind), content_type="text/csv; charset=utf-8"
        )
        response["Content-Disposition"] = f'attachment; filename="{kind}-template.csv"'
        return response

    def file_view(self, request, job_id: int):
        job = self._job(request, job_id)
        if not job.result_file or not files.path_of(job.result_file).is_file():
            raise Http404("No file for this job.")
        return FileResponse(
            open(files.path_of(job.result_file), "rb"),
            as_attachment=True,
            filename=f"{job.kind}-export-{job.pk}.{job.result_format}",
        )
