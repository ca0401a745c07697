from django.urls import path

from . import api

urlpatterns = [
    path("imports/<slug:kind>", api.ImportCreateApi.as_view(), name="import-create"),
    path("imports/<slug:kind>/describe", api.ImportKindApi.as_view(), name="import-kind"),
    path("imports/<slug:kind>/template", api.ImportTemplateApi.as_view(), name="import-template"),
    path("exports/<slug:kind>", api.ExportCreateApi.as_view(), name="export-create"),
    path("exports/<slug:kind>/describe", api.ExportKindApi.as_view(), name="export-kind"),
    path("jobs", api.JobListApi.as_view(), name="job-list"),
    path("jobs/<int:job_id>", api.JobDetailApi.as_view(), name="job-detail"),
    path("jobs/<int:job_id>/cancel", api.JobCancelApi.as_view(), name="job-cancel"),
    path("jobs/<int:job_id>/report", api.JobReportApi.as_view(), name="job-report"),
    path("jobs/<int:job_id>/file", api.JobFileApi.as_view(), name="job-file"),
]
