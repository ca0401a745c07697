"""django-import-export in the admin, running the job kinds (one code path with the API).

A domain admin adds ``JobImportMixin`` (before ``ImportMixin``) and lists resources
deriving from ``JobKindResource``, one per import kind. The admin's two steps become:

1. Upload and preview: the file is read by the jobs reader (BOM, ``,``/``;``, JSON), its
   columns are checked, and the first ``JOBS_ADMIN_PREVIEW_ROWS`` rows are run through
   the kind as a dry run, in the request. The table shows each row's outcome and errors.
2. Confirm: a job is created from the same bytes (``jobs.services.import_job_create``,
   as the API does) and runs in a worker; the admin goes to the job's page, which shows
   its progress and its report.
"""

from __future__ import annotations

import io
from typing import Any

import tablib
from django import forms
from django.conf import settings
from django.contrib import messages
from django.http import HttpResponseRedirect
from django.urls import reverse
from import_export import resources
from import_export.formats.base_formats import Format
from import_export.forms import ConfirmImportForm, ImportForm
from import_export.results import Error, Result, RowResult
from rest_framework.exceptions import ValidationError

from membership_site.actors import Actor
from membership_site.errors import DomainError

from . import engine, files, services
from .models import Job
from .registry import ImportRow

_IMPORT_TYPES = {
    "created": RowResult.IMPORT_TYPE_NEW,
    "updated": RowResult.IMPORT_TYPE_UPDATE,
    "unchanged": RowResult.IMPORT_TYPE_SKIP,
    "failed": RowResult.IMPORT_TYPE_ERROR,
}


class CsvOrJsonFormat(Format):
    """The upload as the jobs reader sees it; the raw bytes ride along for the job."""

    def __init__(self, encoding=None):
        self.encoding = encoding  # the reader decodes (UTF-8, with or without BOM) itself

    def get_title(self):
        return "CSV or JSON (UTF-8; ',' or ';')"

    def create_dataset(self, in_stream):
        data = in_stream if isinstance(in_stream, bytes) else in_stream.encode()
        reader = files.RowReader(io.BytesIO(data), files.detect_format(data[:4096]))
        dataset = tablib.Dataset(headers=list(reader.header().columns))
        for row in reader.rows():
            if isinstance(row, ImportRow):
                dataset.append([row.data.get(column, "") for column in dataset.headers])
            if dataset.height >= 1:
                break  # the rows are read again by the preview; the dataset only says "not empty"
        dataset.job_source = data
        return dataset

    def is_binary(self):
        return True

    def get_read_mode(self):
        return "rb"

    def get_extension(self):
        return "csv"

    def get_content_type(self):
        return "text/csv"

    def can_import(self):
        return True

    def can_export(self):
        return False


_MODE_CHOICES = Job.Mode.choices
_MATCH_CHOICES = [("number", "Member number"), ("email", "E-mail"), ("external_ref", "External reference")]
_ACTION_CHOICES = [("upsert", "Create or update"), ("create", "Create only"), ("update", "Update only")]


class JobImportForm(ImportForm):
    def __init__(self, *args, program_queryset, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["program"] = forms.ModelChoiceField(
            queryset=program_queryset, help_text="The program the file's rows belong to."
        )
        self.fields["match"] = forms.ChoiceField(
            choices=_MATCH_CHOICES,
            initial="number",
            help_text="The column that finds existing members (members, cards and labels "
            "imports; other kinds ignore it). It must be filled on every row that updates.",
        )
        self.fields["action"] = forms.ChoiceField(
            choices=_ACTION_CHOICES,
            initial="upsert",
            help_text="Members imports only: create (rows must be new), update (rows must "
            "match a member) or both.",
        )
        self.fields["mode"] = forms.ChoiceField(
            choices=_MODE_CHOICES,
            initial=Job.Mode.CONTINUE,
            help_text="Continue: bad rows are reported and the good ones imported. All or "
            "nothing: if any row fails, nothing is written.",
        )


class JobConfirmImportForm(ConfirmImportForm):
    def __init__(self, *args, program_queryset, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["program"] = forms.ModelChoiceField(queryset=program_queryset, widget=forms.HiddenInput())
        for name, choices in (
            ("match", _MATCH_CHOICES),
            ("action", _ACTION_CHOICES),
            ("mode", _MODE_CHOICES),
        ):
            self.fields[name] = forms.ChoiceField(choices=choices, widget=forms.HiddenInput())


class JobKindResource(resources.Resource):
    """A resource whose import is a job kind. ``kind`` names it."""

    kind: str = ""

    def __init__(self, **kwargs):
        super().__init__()

    @classmethod
    def import_kind(cls):
        return services.import_kind_get(cls.kind)

    @classmethod
    def get_display_name(cls):
        return cls.import_kind().description

    def get_user_visible_fields(self):
        return [resources.Field(column_name=column.name) for column in self.import_kind().columns]

    def kind_params(self, form_data: dict[str, Any]) -> dict[str, Any]:
        own = self.import_kind().params
        names = set(own().fields) if own else set()
        data = {name: form_data[name] for name in names if form_data.get(name)}
        data["mode"] = form_data.get("mode") or Job.Mode.CONTINUE
        return data

    def import_data(self, dataset, dry_run=False, raise_errors=False, **kwargs):
        """The preview: a dry run of the first rows, in the request."""
        form_data = kwargs.get("form_data") or {}
        kind = self.import_kind()
        result = Result()
        result.diff_headers = list(dataset.headers or [])
        result.job_columns = result.diff_headers
        result.job_preview_rows = []
        result.job_preview_total = 0
        try:
            params = services.validate_import_params(kind, self.kind_params(form_data))
            services.check_columns(kind, dataset.headers or [], params)
        except (ValidationError, DomainError) as error:
            result.append_base_error(Error(ImportRejected(_readable(error))))
            return result
        reader = files.RowReader(
            io.BytesIO(dataset.job_source), files.detect_format(dataset.job_source[:4096])
        )
        params = {key: value for key, value in params.items() if key not in ("dry_run", "mode")}
        user = kwargs.get("user")
        shown, total = engine.preview(
            kind=kind,
            program_id=form_data["program"].pk,
            reader=reader,
            params=params,
            actor=Actor.for_user(user) if user else Actor.system("admin"),
            limit=settings.JOBS_ADMIN_PREVIEW_ROWS,
        )
        result.job_preview_total = total
        failed = 0
        for row, outcome in shown:
            values = row.data if isinstance(row, ImportRow) else {}
            row_result = RowResult()
            row_result.import_type = _IMPORT_TYPES[outcome.outcome]
            row_result.diff = [values.get(column, "") for column in result.diff_headers]
            result.append_row_result(row_result)
            result.increment_row_result_total(row_result)
            result.job_preview_rows.append(
                {
                    "row": outcome.row,
                    "outcome": outcome.outcome,
                    "errors": "; ".join(
                        f"{error.field + ': ' if error.field else ''}{error.message} ({error.code})"
                        for error in outcome.errors
                    ),
                    "values": row_result.diff,
                }
            )
            failed += outcome.outcome == "failed"
        if failed and form_data.get("mode") == Job.Mode.ALL_OR_NOTHING:
            result.append_base_error(
                Error(
                    ImportRejected(
                        f"{failed} row(s) fail: all or nothing: nothing would change. Fix the file first."
                    )
                )
            )
        return result


class ImportRejected(Exception):
    """Why the preview refuses a file (shown to the user, without a traceback)."""


def _readable(error: Exception) -> str:
    if isinstance(error, ValidationError):
        return "; ".join(
            f"{field}: {' '.join(map(str, messages))}" for field, messages in error.detail.items()
        )
    return getattr(error, "detail", str(error))


class JobImportMixin:
    """Put before ``import_export.admin.ImportMixin`` in a ModelAdmin's bases, and give
    ``program_queryset`` (this app imports no domain app, so the admin passes programs)."""

    import_form_class = JobImportForm
    confirm_form_class = JobConfirmImportForm
    import_template_name = "admin/jobs/import.html"
    import_formats = [CsvOrJsonFormat]

    def program_queryset(self, request):
        raise NotImplementedError

    def get_import_context_data(self, **kwargs):
        context = super().get_import_context_data(**kwargs)
        context["job_templates"] = [
            (f"{resource.kind}-template.csv", reverse("admin:jobs_job_template", args=[resource.kind]))
            for resource in self.resource_classes
        ]
        return context

    def get_import_form_kwargs(self, request):
        return {**super().get_import_form_kwargs(request), "program_queryset": self.program_queryset(request)}

    def get_confirm_form_kwargs(self, request, import_form=None):
        return {
            **super().get_confirm_form_kwargs(request, import_form),
            "program_queryset": self.program_queryset(request),
        }

    def get_import_data_kwargs(self, **kwargs):
        form = kwargs.get("form")
        return {"form_data": form.cleaned_data if form is not None else {}}

    def get_confirm_form_initial(self, request, import_form):
        initial = super().get_confirm_form_initial(request, import_form)
        if import_form is not None:
            for name in ("match", "action", "mode"):
                initial[name] = import_form.cleaned_data.get(name)
            initial["program"] = import_form.cleaned_data["program"].pk
        return initial

    def process_dataset(self, dataset, form, request, **kwargs):
        """Confirmed: start the job from the uploaded bytes (as the API does)."""
        resource = self.choose_import_resource_class(form, request)()
        kind = resource.import_kind()
        params = services.validate_import_params(kind, resource.kind_params(form.cleaned_data))
        return services.import_job_create(
            program_id=form.cleaned_data["program"].pk,
            kind=kind.name,
            chunks=[dataset.job_source],
            filename=form.cleaned_data.get("original_file_name") or "",
            params=params,
            actor=Actor.for_user(request.user),
        )

    def process_result(self, result, request):
        job = result
        messages.success(
            request,
            f"Import job #{job.pk} started; this page shows its progress and, when done, its report.",
        )
        return HttpResponseRedirect(reverse("admin:jobs_job_change", args=[job.pk]))

    def process_import(self, request, **kwargs):
        try:
            return super().process_import(request, **kwargs)
        except (DomainError, ValidationError) as error:
            messages.error(request, _readable(error))
            info = (self.model._meta.app_label, self.model._meta.model_name)
            return HttpResponseRedirect(reverse("admin:{}_{}_import".format(*info)))
