"""Admin of earning: settings, earning rules and campaigns (with history, points issued, the
budget used and a "last 30 days" preview), and read-only purchases, refunds, bonuses and
referrals with the ledger transactions they produced. Every write goes through
``points.earning.config``."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.db.models import Sum
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html
from simple_history.admin import SimpleHistoryAdmin

from membership_site.actors import Actor
from membership_site.admin_readonly import ReadOnlyAdmin, ReadOnlyInline
from membership_site.errors import DomainError

from ..models import (
    BonusAward,
    Campaign,
    EarningRule,
    EarningSettings,
    PointsAward,
    Purchase,
    PurchaseEarning,
    PurchaseLine,
    Referral,
    Refund,
    RefundEarning,
    RefundLine,
)
from . import config, preview

WEEKDAYS = [(1, "Mon"), (2, "Tue"), (3, "Wed"), (4, "Thu"), (5, "Fri"), (6, "Sat"), (7, "Sun")]


def _transaction_link(txn_id: int | None) -> str:
    if not txn_id:
        return "-"
    return format_html(
        '<a href="{}">#{}</a>', reverse("admin:points_transaction_change", args=[txn_id]), txn_id
    )


# --- Settings ----------------------------------------------------------------------------


class EarningSettingsForm(forms.ModelForm):
    profile_completion_fields = forms.MultipleChoiceField(
        choices=[(name, name) for name in config.COMPLETION_FIELDS],
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )

    class Meta:
        model = EarningSettings
        fields = ["program", *config.SETTINGS_FIELDS]

    def clean(self):
        data = super().clean()
        candidate = EarningSettings(
            program=data.get("program") or self.instance.program,
            **{name: data.get(name, getattr(self.instance, name)) for name in config.SETTINGS_FIELDS},
        )
        try:
            config.earning_settings_check(candidate)
        except DomainError as error:
            field = error.field if error.field in self.fields else None
            self.add_error(field, error.detail)
        return data


@admin.register(EarningSettings)
class EarningSettingsAdmin(SimpleHistoryAdmin):
    form = EarningSettingsForm
    list_display = [
        "program",
        "return_window_days",
        "enrolment_bonus",
        "birthday_bonus",
        "birthday_mode",
        "referral_referrer_bonus",
        "referral_referee_bonus",
        "profile_completion_bonus",
    ]
    list_select_related = ["program"]

    def get_readonly_fields(self, request, obj=None):
        return ["program"] if obj else []

    def save_model(self, request, obj, form, change):
        fields = {
            name: form.cleaned_data[name] for name in config.SETTINGS_FIELDS if name in form.cleaned_data
        }
        saved = config.earning_settings_update(
            program=obj.program, actor=Actor.for_user(request.user), **fields
        )
        obj.pk = saved.pk


# --- Rules and campaigns -----------------------------------------------------------------


class CodeListField(forms.CharField):
    """A list of codes typed as "a, b, c"."""

    def prepare_value(self, value):
        if isinstance(value, list):
            return ", ".join(str(item) for item in value)
        return value

    def to_python(self, value):
        text = super().to_python(value) or ""
        return [item.strip() for item in text.replace("\n", ",").split(",") if item.strip()]


CAP_HELP = {
    "max_points_per_purchase": "Most points it gives one purchase (empty: no cap).",
    "max_points_per_member_day": "Most points it gives one member in a day, days in the program's time zone "
    "(empty: no cap). Refunds do not give points back to the cap.",
    "max_points_per_member_month": "Most points it gives one member in a calendar month, in the program's "
    "time zone (empty: no cap). Refunds do not give points back to the cap.",
}


class _RuleForm(forms.ModelForm):
    weekdays = forms.TypedMultipleChoiceField(
        choices=WEEKDAYS, coerce=int, required=False, widget=forms.CheckboxSelectMultiple
    )
    locations = CodeListField(required=False, help_text="Location codes, comma-separated.")
    skus = CodeListField(required=False, help_text="Comma-separated.")
    categories = CodeListField(required=False, help_text="Comma-separated.")
    tiers = CodeListField(required=False, help_text="Tier codes, comma-separated.")
    labels = CodeListField(required=False, help_text="Label codes, comma-separated (any one).")
    service_fields: tuple[str, ...] = config.RULE_FIELDS

    def clean(self):
        data = super().clean()
        program = self.instance.program if self.instance.pk else data.get("program")
        if program is None:
            return data
        values = {name: data.get(name, getattr(self.instance, name, None)) for name in self.service_fields}
        values["_campaign"] = self._meta.model is Campaign
        try:
            checked = config.rule_check(program=program, values=values)
        except DomainError as error:
            field = error.field if error.field in self.fields else None
            self.add_error(field, error.detail)
            return data
        data.update({name: checked[name] for name in self.service_fields if name in data})
        return data


class EarningRuleForm(_RuleForm):
    class Meta:
        model = EarningRule
        fields = ["program", "code", *config.RULE_FIELDS]
        help_texts = CAP_HELP


class CampaignForm(_RuleForm):
    service_fields = config.CAMPAIGN_FIELDS

    def clean(self):
        data = super().clean()
        budget = data.get("budget_points")
        if self.instance.pk and budget is not None:
            used = config.campaign_budget_used(self.instance)
            if budget < used:
                self.add_error("budget_points", f"The campaign already issued {used} points.")
        return data

    class Meta:
        model = Campaign
        fields = ["program", "code", *config.CAMPAIGN_FIELDS]
        help_texts = {
            **CAP_HELP,
            "budget_points": "Total points the campaign may issue (empty: no budget). Refunds do not "
            "give points back to the budget.",
        }


_RULE_FIELDSETS = [
    (None, {"fields": ["program", "code", "name", "description", "is_active", "priority", "currency"]}),
    ("Effect", {"fields": ["effect", "scope", "value", "stacking"]}),
    (
        "Conditions (program time; empty = no condition)",
        {
            "fields": [
                ("starts_on", "ends_on"),
                ("hours_from", "hours_to"),
                "weekdays",
                "locations",
                "skus",
                "categories",
                "min_spend",
                "tiers",
                "labels",
                "first_purchase_only",
            ]
        },
    ),
    (
        "Caps",
        {"fields": ["max_points_per_purchase", "max_points_per_member_day", "max_points_per_member_month"]},
    ),
]


@admin.action(description="Preview: run against the last 30 days of purchases", permissions=["view"])
def preview_last_30_days(modeladmin, request, queryset):
    previews = [preview.rule_preview(rule=obj) for obj in queryset.select_related("program", "currency")]
    return TemplateResponse(
        request,
        "admin/points/earning_preview.html",
        {
            **modeladmin.admin_site.each_context(request),
            "title": "Preview: the last 30 days of purchases",
            "previews": previews,
            "opts": modeladmin.model._meta,
        },
    )


class _RuleAdmin(SimpleHistoryAdmin):
    list_display_links = ["code", "name"]
    list_filter = ["program", "is_active", "effect", "stacking"]
    list_select_related = ["program", "currency"]
    search_fields = ["code", "name"]
    ordering = ["program", "-priority", "code"]
    actions = [preview_last_30_days]
    create = None
    update = None

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(issued=Sum("awards__points"))

    @admin.display(description="Points issued", ordering="issued")
    def points_issued(self, obj) -> int:
        return getattr(obj, "issued", None) or 0

    def get_readonly_fields(self, request, obj=None):
        return ["program", "code", "points_issued"] if obj else []

    def save_model(self, request, obj, form, change):
        actor = Actor.for_user(request.user)
        data = form.cleaned_data
        if change:
            changes = {name: data[name] for name in form.changed_data if name in form.service_fields}
            self.update(obj, actor, changes)
        else:
            fields = {name: data[name] for name in form.service_fields if name in data}
            for given in ("name", "value"):
                fields.pop(given, None)
            created = self.create(
                program=data["program"],
                code=data["code"],
                name=data["name"],
                value=data["value"],
                actor=actor,
                **fields,
            )
            obj.pk = created.pk


@admin.register(EarningRule)
class EarningRuleAdmin(_RuleAdmin):
    form = EarningRuleForm
    list_display = ["program", "code", "name", "effect", "value", "priority", "is_active", "points_issued"]
    fieldsets = _RULE_FIELDSETS

    @staticmethod
    def create(**kwargs):
        return config.earning_rule_create(**kwargs)

    @staticmethod
    def update(obj, actor, changes):
        return config.earning_rule_update(rule=obj, actor=actor, **changes)


@admin.register(Campaign)
class CampaignAdmin(_RuleAdmin):
    form = CampaignForm
    list_display = [
        "program",
        "code",
        "name",
        "effect",
        "value",
        "stacking",
        "priority",
        "starts_on",
        "ends_on",
        "is_active",
        "points_issued",
        "budget",
    ]
    fieldsets = [*_RULE_FIELDSETS, ("Budget", {"fields": ["budget_points", "budget_used"]})]

    @admin.display(description="Budget used")
    def budget(self, obj: Campaign) -> str:
        if obj.budget_points is None:
            return "-"
        return f"{obj.budget_used} / {obj.budget_points}"

    def get_readonly_fields(self, request, obj=None):
        return [*super().get_readonly_fields(request, obj), "budget_used"]

    @staticmethod
    def create(**kwargs):
        return config.campaign_create(**kwargs)

    @staticmethod
    def update(obj, actor, changes):
        return config.campaign_update(campaign=obj, actor=actor, **changes)


# --- Purchases and refunds ---------------------------------------------------------------


class PurchaseLineInline(ReadOnlyInline):
    model = PurchaseLine
    fields = [
        "number",
        "sku",
        "category",
        "quantity",
        "unit_price",
        "line_total",
        "discount",
        "amount",
        "gift_card",
        "excluded",
        "refunded_quantity",
    ]
    readonly_fields = fields


class PurchaseEarningInline(ReadOnlyInline):
    model = PurchaseEarning
    fields = ["currency", "points", "ledger_transaction", "reversed", "shortfall"]
    readonly_fields = fields
    verbose_name_plural = "Points earned (ledger transactions)"

    @admin.display(description="Transaction")
    def ledger_transaction(self, obj) -> str:
        return _transaction_link(obj.transaction_id)


class PointsAwardInline(ReadOnlyInline):
    model = PointsAward
    fields = ["source", "code", "name", "effect", "lines", "base", "value", "exact", "points", "capped_by"]
    readonly_fields = fields
    verbose_name_plural = "Breakdown"


class RefundInline(ReadOnlyInline):
    model = Refund
    fields = ["reference", "occurred_at", "amount", "base", "completes_purchase", "reason"]
    readonly_fields = fields
    show_change_link = True


@admin.register(Purchase)
class PurchaseAdmin(ReadOnlyAdmin):
    list_display = [
        "reference",
        "member",
        "location",
        "occurred_at",
        "recorded_at",
        "total",
        "points",
        "refunded_amount",
        "fully_refunded",
    ]
    list_filter = ["program", "fully_refunded", "first_purchase", "occurred_at"]
    search_fields = ["=reference", "=member__number", "member__email"]
    list_select_related = ["member", "location"]
    date_hierarchy = "occurred_at"
    show_full_result_count = False
    inlines = [PurchaseLineInline, PurchaseEarningInline, PointsAwardInline, RefundInline]


class RefundLineInline(ReadOnlyInline):
    model = RefundLine
    fields = ["line", "quantity", "amount"]
    readonly_fields = fields


class RefundEarningInline(ReadOnlyInline):
    model = RefundEarning
    fields = ["currency", "points", "reversed", "shortfall", "from_pending", "ledger_transaction"]
    readonly_fields = fields
    verbose_name_plural = "Points taken back (ledger transactions)"

    @admin.display(description="Transaction")
    def ledger_transaction(self, obj) -> str:
        return _transaction_link(obj.transaction_id)


@admin.register(Refund)
class RefundAdmin(ReadOnlyAdmin):
    list_display = [
        "reference",
        "purchase",
        "member",
        "occurred_at",
        "amount",
        "completes_purchase",
        "shortfall",
    ]
    list_filter = ["program", "completes_purchase"]
    search_fields = ["=reference", "=purchase__reference", "=member__number"]
    list_select_related = ["purchase", "member"]
    show_full_result_count = False
    inlines = [RefundLineInline, RefundEarningInline]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(total_shortfall=Sum("earnings__shortfall"))

    @admin.display(description="Shortfall (points)", ordering="total_shortfall")
    def shortfall(self, obj) -> int:
        return obj.total_shortfall or 0


@admin.register(BonusAward)
class BonusAwardAdmin(ReadOnlyAdmin):
    list_display = ["member", "kind", "key", "points", "currency", "ledger_transaction", "awarded_at"]
    list_filter = ["program", "kind"]
    search_fields = ["=member__number"]
    list_select_related = ["member", "currency"]

    @admin.display(description="Transaction")
    def ledger_transaction(self, obj) -> str:
        return _transaction_link(obj.transaction_id)


@admin.register(Referral)
class ReferralAdmin(ReadOnlyAdmin):
    list_display = ["referrer", "referee", "code", "status", "created_at", "completed_at"]
    list_filter = ["program", "status"]
    search_fields = ["=referrer__number", "=referee__number", "=code"]
    list_select_related = ["referrer", "referee"]
