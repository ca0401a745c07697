"""Admin for program managers: the catalog (with history, import and export), redemptions
and vouchers (cancel), shipments (mark shipped), campaign voucher batches (generate, CSV
of the codes), pay-with-points rules and member-pricing exceptions. Every write goes
through the services."""

from __future__ import annotations

import csv

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html
from import_export.admin import ExportMixin, ImportMixin
from simple_history.admin import SimpleHistoryAdmin

from jobs.admin_import import JobImportMixin
from membership_site.actors import Actor
from membership_site.admin_actions import ReasonForm, form_action
from membership_site.admin_readonly import ReadOnlyAdmin
from membership_site.errors import DomainError
from points.models import Currency
from programs.currencies import money_quantum
from programs.models import Location, Program

from . import codes, payments, services
from .events import PERCENT_QUANTUM
from .models import (
    PayWithPointsRule,
    PricingException,
    Redemption,
    Reward,
    RewardCost,
    Shipment,
    Voucher,
    VoucherBatch,
)
from .resources import RewardExportResource, RewardImportResource

CANCEL_PERMISSION = "rewards.cancel_redemption"
_RELATIONS = ("eligible_tiers", "eligible_labels", "locations")


def _add_domain_error(form: forms.BaseForm, error: DomainError) -> None:
    field = getattr(error, "field", None)
    form.add_error(field if field in form.fields else None, error.detail)


# --- Catalog -----------------------------------------------------------------------------------


class RewardForm(forms.ModelForm):
    image_url = forms.URLField(max_length=500, required=False, assume_scheme="https")

    class Meta:
        model = Reward
        fields = ["program", "code", *services.REWARD_FIELDS, *_RELATIONS]

    def clean_tier_tags(self):
        # An emptied JSON box means no tags (the column is a list, never null).
        return self.cleaned_data.get("tier_tags") or []

    def clean_voucher_skus(self):
        return self.cleaned_data.get("voucher_skus") or []

    def clean(self):
        data = super().clean()
        program = self.instance.program if self.instance.pk else data.get("program")
        if program is None:
            return data
        for name in (*_RELATIONS, "target_currency"):
            value = data.get(name)
            items = list(value) if name in _RELATIONS and value is not None else [value] if value else []
            if any(item.program_id != program.pk for item in items):
                self.add_error(name, "Choose only items of the reward's program.")
        values = {name: data.get(name, getattr(self.instance, name)) for name in services.REWARD_FIELDS}
        try:
            services.reward_check(reward=Reward(program=program, **values), costs=None)
        except DomainError as error:
            _add_domain_error(self, error)
        return data


class RewardCostFormSet(forms.BaseInlineFormSet):
    def clean(self):
        super().clean()
        program_id = self.instance.program_id
        for form in self.forms:
            currency = form.cleaned_data.get("currency")
            if currency is not None and program_id and currency.program_id != program_id:
                form.add_error("currency", "A currency of the reward's program.")


class RewardCostInline(admin.TabularInline):
    model = RewardCost
    formset = RewardCostFormSet
    extra = 0
    min_num = 1
    validate_min = True


class _ProgramImportMixin(JobImportMixin):
    def program_queryset(self, request):
        return Program.objects.order_by("code")

    def has_import_permission(self, request):
        return request.user.has_perms(["rewards.add_reward", "rewards.change_reward"])


@admin.register(Reward)
class RewardAdmin(_ProgramImportMixin, ImportMixin, ExportMixin, SimpleHistoryAdmin):
    form = RewardForm
    resource_classes = [RewardImportResource]
    export_resource_classes = [RewardExportResource]
    inlines = [RewardCostInline]
    list_display = ["code", "name", "kind", "program", "stock", "is_active", "valid_from", "valid_until"]
    list_filter = ["program", "kind", "is_active"]
    list_select_related = ["program"]
    search_fields = ["code", "name", "sku"]
    filter_horizontal = list(_RELATIONS)
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "program",
                    "code",
                    "name",
                    "description",
                    "image_url",
                    "kind",
                    "sort_order",
                    "is_active",
                ]
            },
        ),
        (
            "Availability",
            {
                "fields": [
                    "stock",
                    "limit_total",
                    "limit_per_period",
                    "limit_period",
                    "valid_from",
                    "valid_until",
                ]
            },
        ),
        ("Who and where", {"fields": [*_RELATIONS[:2], "tier_tags", *_RELATIONS[2:]]}),
        (
            "Vouchers",
            {
                "fields": [
                    "voucher_amount",
                    "voucher_percent",
                    "sku",
                    "voucher_min_spend",
                    "voucher_skus",
                    "voucher_valid_days",
                ]
            },
        ),
        ("Points conversion", {"fields": ["target_currency", "target_points"]}),
    ]

    def get_readonly_fields(self, request, obj=None):
        return ["program", "code"] if obj else []

    def save_model(self, request, obj, form, change):
        """Written with its costs and relations by ``save_related`` (one service call)."""

    def save_related(self, request, form, formsets, change):
        data = form.cleaned_data
        costs = {}
        for formset in formsets:
            for row in formset.cleaned_data:
                if row and not row.get("DELETE"):
                    costs[row["currency"]] = row["points"]
            # The service wrote the costs; the admin's change message reads these.
            formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        relations = {name: list(data[name]) for name in _RELATIONS}
        fields = {name: data[name] for name in services.REWARD_FIELDS if name in data}
        actor = Actor.for_user(request.user)
        if change:
            changed = {name: fields[name] for name in form.changed_data if name in fields}
            services.reward_update(reward=form.instance, actor=actor, costs=costs, **relations, **changed)
        else:
            created = services.reward_create(
                program=data["program"], code=data["code"], actor=actor, costs=costs, **relations, **fields
            )
            form.instance.pk = created.pk


# --- Redemptions, vouchers, shipments ---------------------------------------------------------------


def _cancel_redemption(redemption: Redemption, actor: Actor, data: dict) -> None:
    services.redemption_cancel(redemption=redemption, reason=data["reason"], actor=actor)


@admin.register(Redemption)
class RedemptionAdmin(ReadOnlyAdmin):
    list_display = ["id", "redeemed_at", "member", "reward", "points", "currency", "status", "reference"]
    list_filter = ["status", "program", "reward__kind"]
    list_select_related = ["member", "reward", "currency"]
    search_fields = ["=reference", "=member__number", "reward__code"]
    show_full_result_count = False
    actions = [
        form_action(
            name="cancel_redemption",
            description="Cancel (points back, stock returned)",
            apply=_cancel_redemption,
            permissions=("cancel_redemption",),
        )
    ]

    def has_cancel_redemption_permission(self, request) -> bool:
        return request.user.has_perm(CANCEL_PERMISSION)


def _cancel_voucher(voucher: Voucher, actor: Actor, data: dict) -> None:
    services.voucher_cancel(voucher=voucher, reason=data["reason"], actor=actor)


@admin.register(Voucher)
class VoucherAdmin(ReadOnlyAdmin):
    list_display = [
        "shown_code",
        "status",
        "value_kind",
        "amount",
        "percent",
        "sku",
        "member",
        "valid_until",
        "batch",
    ]
    list_filter = ["status", "value_kind", "program", "batch"]
    list_select_related = ["member", "batch"]
    search_fields = ["=code", "=member__number", "=used_reference"]
    show_full_result_count = False
    actions = [
        form_action(
            name="cancel_voucher",
            description="Cancel (a bought voucher: with its redemption)",
            apply=_cancel_voucher,
            form_class=ReasonForm,
            permissions=("cancel_redemption",),
        )
    ]

    @admin.display(description="Code", ordering="code")
    def shown_code(self, voucher: Voucher) -> str:
        return codes.format_code(voucher.code)

    def get_search_results(self, request, queryset, search_term):
        # Staff type codes as printed (with dashes, any case).
        return super().get_search_results(request, queryset, codes.normalize_code(search_term) or search_term)

    def has_cancel_redemption_permission(self, request) -> bool:
        return request.user.has_perm(CANCEL_PERMISSION)


class TrackingForm(forms.Form):
    tracking = forms.CharField(max_length=200, required=False)


@admin.register(Shipment)
class ShipmentAdmin(ReadOnlyAdmin):
    list_display = ["redemption", "name", "city", "country", "status", "tracking", "shipped_at"]
    list_filter = ["status"]
    list_select_related = ["redemption"]
    search_fields = ["=redemption__member__number", "=tracking"]
    actions = [
        form_action(
            name="mark_shipped",
            description="Mark shipped",
            form_class=TrackingForm,
            apply=lambda shipment, actor, data: services.shipment_mark_shipped(
                shipment=shipment, tracking=data["tracking"], actor=actor
            ),
            permissions=("ship",),
        )
    ]

    def has_ship_permission(self, request) -> bool:
        return request.user.has_perm("rewards.change_shipment")


def _csv_decimal(value, quantum) -> str:
    return "" if value is None else str(value.quantize(quantum))


# --- Campaign voucher batches ----------------------------------------------------------------------


class VoucherBatchForm(forms.ModelForm):
    value_kind = forms.ChoiceField(choices=Voucher.Value.choices)
    amount = forms.DecimalField(max_digits=12, decimal_places=3, required=False)
    percent = forms.DecimalField(max_digits=5, decimal_places=2, required=False)
    sku = forms.CharField(max_length=64, required=False, help_text="Free item vouchers: the SKU given.")
    min_spend = forms.DecimalField(max_digits=12, decimal_places=3, required=False)
    skus = forms.CharField(
        required=False, help_text="The basket must hold one of these SKUs (comma-separated)."
    )
    locations = forms.ModelMultipleChoiceField(
        queryset=Location.objects.select_related("program").order_by("program", "code"), required=False
    )
    valid_until = forms.DateTimeField(required=False)

    class Meta:
        model = VoucherBatch
        fields = ["program", "name", "count"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["count"].help_text = f"1 to {services.MAX_BATCH} codes."

    def clean(self):
        data = super().clean()
        program = data.get("program")
        if program is None:
            return data
        if any(location.program_id != program.pk for location in data.get("locations") or []):
            self.add_error("locations", "Choose locations of the batch's program.")
        try:
            services.voucher_batch_check(
                program=program,
                count=data.get("count") or 0,
                value_kind=data.get("value_kind") or "",
                amount=data.get("amount"),
                percent=data.get("percent"),
                sku=data.get("sku") or "",
                min_spend=data.get("min_spend"),
            )
        except DomainError as error:
            _add_domain_error(self, error)
        return data


@admin.register(VoucherBatch)
class VoucherBatchAdmin(admin.ModelAdmin):
    form = VoucherBatchForm
    list_display = ["name", "program", "count", "created_at", "actor_user", "codes_link"]
    list_filter = ["program"]
    readonly_fields = ["program", "name", "count", "created_at", "actor_user", "codes_link"]

    def get_fields(self, request, obj=None):
        if obj is not None:
            return self.readonly_fields
        return [
            "program",
            "name",
            "count",
            "value_kind",
            "amount",
            "percent",
            "sku",
            "min_spend",
            "skus",
            "locations",
            "valid_until",
        ]

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj is not None else []

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="Codes")
    def codes_link(self, batch: VoucherBatch):
        url = reverse("admin:rewards_voucherbatch_codes", args=[batch.pk])
        return format_html('<a href="{}">Download the codes (CSV)</a>', url)

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        batch = services.voucher_batch_create(
            program=data["program"],
            name=data["name"],
            count=data["count"],
            value_kind=data["value_kind"],
            amount=data.get("amount"),
            percent=data.get("percent"),
            sku=data.get("sku") or "",
            min_spend=data.get("min_spend"),
            skus=[sku.strip() for sku in (data.get("skus") or "").split(",") if sku.strip()],
            locations=list(data.get("locations") or []),
            valid_until=data.get("valid_until"),
            actor=Actor.for_user(request.user),
        )
        obj.pk = batch.pk

    def get_urls(self):
        return [
            path(
                "<int:batch_id>/codes.csv",
                self.admin_site.admin_view(self.codes_csv),
                name="rewards_voucherbatch_codes",
            ),
            *super().get_urls(),
        ]

    def codes_csv(self, request, batch_id: int):
        if not self.has_view_permission(request):
            raise PermissionDenied
        batch = get_object_or_404(VoucherBatch.objects.select_related("program"), pk=batch_id)
        quantum = money_quantum(batch.program.currency)  # money with the currency's minor units

        class Echo:
            def write(self, value):
                return value

        writer = csv.writer(Echo())
        vouchers = (
            Voucher.objects.filter(batch=batch)
            .order_by("id")
            .values_list(
                "code", "value_kind", "amount", "percent", "sku", "min_spend", "valid_until", "status"
            )
        )

        def rows():
            yield writer.writerow(
                ["code", "value_kind", "amount", "percent", "sku", "min_spend", "valid_until", "status"]
            )
            for code, value_kind, amount, percent, sku, min_spend, valid_until, status in vouchers.iterator(
                chunk_size=2000
            ):
                yield writer.writerow(
                    [
                        codes.format_code(code),
                        value_kind,
                        _csv_decimal(amount, quantum),
                        _csv_decimal(percent, PERCENT_QUANTUM),
                        sku,
                        _csv_decimal(min_spend, quantum),
                        "" if valid_until is None else valid_until.isoformat(),
                        status,
                    ]
                )

        response = StreamingHttpResponse(rows(), content_type="text/csv")
        response["Content-Disposition"] = f'attachment; filename="vouchers-{batch.pk}.csv"'
        return response


# --- Pay with points and pricing -----------------------------------------------------------------


class PayWithPointsRuleForm(forms.ModelForm):
    class Meta:
        model = PayWithPointsRule
        fields = ["currency", *payments.PAY_RULE_FIELDS]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "currency" in self.fields:  # read-only (so absent) on an existing rule
            self.fields["currency"].queryset = Currency.objects.select_related("program").order_by(
                "program", "code"
            )


@admin.register(PayWithPointsRule)
class PayWithPointsRuleAdmin(SimpleHistoryAdmin):
    form = PayWithPointsRuleForm
    list_display = [
        "currency",
        "program",
        "is_active",
        "minimum_points",
        "step",
        "max_share_percent",
        "minimum_bill",
    ]
    list_filter = ["program", "is_active"]
    list_select_related = ["currency", "program"]

    def get_readonly_fields(self, request, obj=None):
        return ["currency"] if obj else []

    def save_model(self, request, obj, form, change):
        currency = obj.currency if change else form.cleaned_data["currency"]
        fields = {name: form.cleaned_data[name] for name in payments.PAY_RULE_FIELDS}
        saved = payments.pay_rule_save(currency=currency, actor=Actor.for_user(request.user), **fields)
        obj.pk = saved.pk


class PricingExceptionForm(forms.ModelForm):
    class Meta:
        model = PricingException
        fields = ["program", "tier", "sku", "category", "percent", "excluded"]

    def clean(self):
        data = super().clean()
        program, tier = data.get("program"), data.get("tier")
        if program and tier and tier.program_id != program.pk:
            self.add_error("tier", "A tier of the program.")
        if bool(data.get("sku")) == bool(data.get("category")):
            self.add_error("sku", "Give a SKU or a category, not both.")
        if not data.get("excluded") and data.get("percent") is None:
            self.add_error("percent", "Give a percent, or exclude.")
        return data


@admin.register(PricingException)
class PricingExceptionAdmin(SimpleHistoryAdmin):
    form = PricingExceptionForm
    list_display = ["tier", "sku", "category", "percent", "excluded", "program"]
    list_filter = ["program", "tier", "excluded"]
    list_select_related = ["tier", "program"]
    search_fields = ["sku", "category"]

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        saved = payments.pricing_exception_save(
            program=data["program"],
            tier=data["tier"],
            sku=data.get("sku") or "",
            category=data.get("category") or "",
            percent=data.get("percent"),
            excluded=bool(data.get("excluded")),
            exception=obj if change else None,
            actor=Actor.for_user(request.user),
        )
        obj.pk = saved.pk
