"""django-import-export resources for the admin.

Imports are the job kinds of ``members.imports`` (the same code as the API); exports of
members write the columns of the ``members`` export kind.
"""

from __future__ import annotations

from import_export import fields, resources

from jobs.admin_import import JobKindResource

from .models import Member


class MemberImportResource(JobKindResource):
    kind = "members"


class MemberLabelImportResource(JobKindResource):
    kind = "labels"


class MemberCardImportResource(JobKindResource):
    kind = "cards"


class MemberExportResource(resources.ModelResource):
    """The admin's "Export" of the selected or filtered members (small sets; for the whole
    program use an export job: POST /api/v1/exports/members)."""

    labels = fields.Field(column_name="labels")

    class Meta:
        model = Member
        fields = (
            "id",
            "number",
            "status",
            "email",
            "phone",
            "first_name",
            "last_name",
            "birth_date",
            "language",
            "address_line1",
            "address_line2",
            "city",
            "postal_code",
            "region",
            "country",
            "external_ref",
            "labels",
            "joined_at",
            "created_at",
            "updated_at",
        )
        export_order = fields

    def dehydrate_labels(self, member: Member) -> str:
        return "|".join(sorted(label.code for label in member.labels.all()))

    def filter_export(self, queryset, **kwargs):
        return queryset.prefetch_related("labels")
