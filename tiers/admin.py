"""Admin for program managers: tier definitions and settings (with history, import and
export), members' tiers with the manual assignment action, tier history, qualifying
activity and evaluation runs. Every write goes through ``tiers.services``; the import is
the ``tiers`` job kind (the same code as ``POST /api/v1/imports/tiers``)."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from import_export import resources
from import_export.admin import ExportMixin, ImportMixin
from simple_history.admin import SimpleHistoryAdmin

from jobs.admin_import import JobImportMixin, JobKindResource
from membership_site.actors import Actor
from membership_site.admin_actions import form_action
from membership_site.admin_readonly import ReadOnlyAdmin
from membership_site.errors import DomainError
from programs.models import Program

from . import services
from .imports import TIER_COLUMNS, tier_values
from .models import MemberTier, Tier, TierActivity, TierChange, TierEvaluation, TierSettings


class TierForm(forms.ModelForm):
    class Meta:
        model = Tier
        fields = ["program", "code", *services.TIER_FIELDS]

    def _get_validation_exclusions(self):
        # Setting is_default moves the program's default here (the service clears the old
        # one), so the one-default constraint is the service's to keep, not the form's.
        return {*super()._get_validation_exclusions(), "is_default"}

    def clean(self):
        data = super().clean()
        program = self.instance.program if self.instance.pk else data.get("program")
        if program is None:
            return data
        if self.instance.pk and self.instance.is_default and data.get("is_default") is False:
            self.add_error("is_default", "Make another tier the default instead.")
        values = {name: data.get(name, getattr(self.instance, name)) for name in services.TIER_FIELDS}
        try:
            services.tier_check(program=program, values=values)
        except DomainError as error:
            field = getattr(error, "field", None)
            self.add_error(field if field in self.fields else None, error.detail)
        return data


class TierImportResource(JobKindResource):
    kind = "tiers"


class TierExportResource(resources.ModelResource):
    """The selected or filtered tiers with the columns of the ``tiers`` import, so an
    export can be edited and imported back."""

    class Meta:
        model = Tier
        fields = tuple(column.name for column in TIER_COLUMNS)
        export_order = fields

    def filter_export(self, queryset, **kwargs):
        return queryset.select_related("program")

    def export_resource(self, instance, selected_fields=None, **kwargs):
        # The values the job kind writes (money in the program's decimals, tags joined
        # with "|"), not the raw model fields.
        values = tier_values(instance, instance.program.currency)
        return [values[field.column_name] for field in self.get_export_fields(selected_fields)]


@admin.register(Tier)
class TierAdmin(JobImportMixin, ImportMixin, ExportMixin, SimpleHistoryAdmin):
    form = TierForm
    resource_classes = [TierImportResource]
    list_display = [
        "program",
        "rank",
        "code",
        "name",
        "is_default",
        "window_kind",
        "qualify_spend",
        "qualify_points",
        "qualify_visits",
        "grace_months",
        "earn_multiplier",
        "discount_percent",
    ]
    list_display_links = ["code", "name"]
    list_filter = ["program", "window_kind", "is_default"]
    list_select_related = ["program"]
    search_fields = ["code", "name"]
    ordering = ["program", "rank"]
    fieldsets = [
        (None, {"fields": ["program", "code", "name", "rank", "is_default"]}),
        (
            "Qualification",
            {
                "fields": [
                    "qualify_mode",
                    ("qualify_spend", "qualify_points", "qualify_visits"),
                    ("window_kind", "window_months"),
                ]
            },
        ),
        (
            "Retention and downgrade",
            {
                "fields": [
                    ("retain_spend", "retain_points", "retain_visits"),
                    "grace_months",
                    "downgrade_policy",
                ]
            },
        ),
        (
            "Benefits",
            {"fields": ["earn_multiplier", "discount_percent", "perks", "rewards_eligible", "reward_tags"]},
        ),
    ]

    def get_readonly_fields(self, request, obj=None):
        return ["program", "code"] if obj else []

    def program_queryset(self, request):
        return Program.objects.order_by("code")

    def get_export_resource_classes(self, request):
        # The import is a job kind; the export writes the same columns from the tiers.
        return [TierExportResource]

    def has_import_permission(self, request):
        return request.user.has_perms(["tiers.add_tier", "tiers.change_tier"])

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and not (obj and obj.is_default)

    def save_model(self, request, obj, form, change):
        actor = Actor.for_user(request.user)
        if change:
            services.tier_update(
                tier=obj,
                actor=actor,
                **{
                    name: form.cleaned_data[name]
                    for name in form.changed_data
                    if name in services.TIER_FIELDS
                },
            )
        else:
            data = {
                name: form.cleaned_data[name] for name in services.TIER_FIELDS if name in form.cleaned_data
            }
            created = services.tier_create(
                program=form.cleaned_data["program"], code=form.cleaned_data["code"], actor=actor, **data
            )
            obj.pk = created.pk

    def delete_model(self, request, obj):
        services.tier_delete(tier=obj, actor=Actor.for_user(request.user))

    def delete_queryset(self, request, queryset):
        for tier in queryset:
            self.delete_model(request, tier)


@admin.register(TierSettings)
class TierSettingsAdmin(SimpleHistoryAdmin):
    list_display = ["program", "adjustments_qualify", "updated_at"]
    fields = ["program", "adjustments_qualify"]

    def get_readonly_fields(self, request, obj=None):
        return ["program"] if obj else []

    def save_model(self, request, obj, form, change):
        saved = services.tier_settings_update(
            program=obj.program,
            actor=Actor.for_user(request.user),
            adjustments_qualify=form.cleaned_data["adjustments_qualify"],
        )
        obj.pk = saved.pk

    def has_delete_permission(self, request, obj=None):
        return False


class TierAssignForm(forms.Form):
    tier = forms.ModelChoiceField(
        queryset=Tier.objects.select_related("program").order_by("program__code", "rank"),
        help_text="A tier of the member's program.",
    )
    reason = forms.CharField(max_length=500, widget=forms.TextInput(attrs={"size": 60}))
    locked_until = forms.DateField(
        required=False, help_text="Optional: not moved down before this day (YYYY-MM-DD)."
    )
    lifetime = forms.BooleanField(required=False, help_text="Never moved below this tier.")


def _assign(state: MemberTier, actor: Actor, data: dict) -> None:
    services.member_tier_assign(
        member=state.member,
        tier=data["tier"],
        reason=data["reason"],
        locked_until=data.get("locked_until"),
        lifetime=bool(data.get("lifetime")),
        actor=actor,
    )


class InGraceFilter(admin.SimpleListFilter):
    title = "grace"
    parameter_name = "in_grace"

    def lookups(self, request, model_admin):
        return [("yes", "In grace"), ("no", "Not in grace")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(grace_until__isnull=False)
        if self.value() == "no":
            return queryset.filter(grace_until__isnull=True)
        return queryset


@admin.register(MemberTier)
class MemberTierAdmin(admin.ModelAdmin):
    list_display = ["member", "program", "tier", "since", "grace_until", "locked_until", "lifetime_tier"]
    list_filter = ["program", "tier", InGraceFilter]
    list_select_related = ["member", "program", "tier", "lifetime_tier"]
    search_fields = ["=member__number", "=member__email", "member__last_name"]
    show_full_result_count = False
    fields = [
        "member",
        "program",
        "tier",
        "since",
        "grace_until",
        "locked_until",
        "lifetime_tier",
        "changed_on",
        "recent_history",
        "activity",
    ]
    readonly_fields = fields
    actions = [
        form_action(
            name="assign_tier",
            description="Assign a tier by hand",
            form_class=TierAssignForm,
            apply=_assign,
            permissions=("assign_tier",),
        )
    ]

    def has_add_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_assign_tier_permission(self, request) -> bool:
        return request.user.has_perm("tiers.assign_tier")

    @admin.display(description="Latest changes")
    def recent_history(self, obj: MemberTier):
        changes = TierChange.objects.filter(member_id=obj.member_id).select_related("from_tier", "to_tier")[
            :10
        ]
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{} → {}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    change.at.strftime("%Y-%m-%d %H:%M"),
                    change.get_reason_display(),
                    change.from_tier.code if change.from_tier else "-",
                    change.to_tier.code,
                    change.grace_until or "",
                    change.note,
                )
                for change in changes
            ),
        )
        url = reverse("admin:tiers_tierchange_changelist") + f"?member__id__exact={obj.member_id}"
        return format_html('<table>{}</table><a href="{}">All changes</a>', rows, url)

    @admin.display(description="Qualifying activity")
    def activity(self, obj: MemberTier):
        url = reverse("admin:tiers_tieractivity_changelist") + f"?member__id__exact={obj.member_id}"
        return format_html('<a href="{}">Activity of this member</a>', url)


@admin.register(TierChange)
class TierChangeAdmin(ReadOnlyAdmin):
    list_display = ["at", "member", "reason", "from_tier", "to_tier", "grace_until", "note", "actor_user"]
    list_filter = ["reason", "program"]
    list_select_related = ["member", "from_tier", "to_tier", "actor_user"]
    search_fields = ["=member__number"]
    show_full_result_count = False


@admin.register(TierActivity)
class TierActivityAdmin(ReadOnlyAdmin):
    list_display = [
        "occurred_at",
        "occurred_on",
        "member",
        "source",
        "reference",
        "spend",
        "points",
        "visits",
    ]
    list_filter = ["source", "program"]
    list_select_related = ["member"]
    search_fields = ["=reference", "=member__number"]
    show_full_result_count = False


@admin.register(TierEvaluation)
class TierEvaluationAdmin(ReadOnlyAdmin):
    list_display = [
        "started_at",
        "program",
        "as_of",
        "status",
        "members",
        "assigned",
        "upgrades",
        "downgrades",
        "grace_started",
        "grace_ended",
        "skipped",
        "finished_at",
    ]
    list_filter = ["status", "program"]
