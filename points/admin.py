"""Admin: currencies (with outstanding liability), read-only accounts, transactions and
holds, and the manual adjustment form. Every write goes through the services."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from simple_history.admin import SimpleHistoryAdmin

from members.models import Member
from membership_site.actors import Actor
from membership_site.admin_actions import form_action
from membership_site.admin_readonly import ReadOnlyAdmin, ReadOnlyInline
from membership_site.errors import DomainError
from programs.models import Program

from . import selectors, services
from .earning import admin as _earning_admin  # noqa: F401  (registers purchases, rules, campaigns)
from .earning import qualifying
from .models import Account, Currency, Entry, Hold, Lot, Transaction

ADJUST_PERMISSION = "points.adjust_points"


# --- Currencies --------------------------------------------------------------------------


class CurrencyForm(forms.ModelForm):
    class Meta:
        model = Currency
        fields = [
            "program",
            "code",
            *services.CURRENCY_FIELDS,
        ]

    def clean_code(self):
        return self.cleaned_data["code"].upper()

    def clean(self):
        data = super().clean()
        candidate = Currency(
            **{name: data.get(name, getattr(self.instance, name)) for name in self.Meta.fields[2:]}
        )
        try:
            services.currency_check_policy(candidate)
        except DomainError as error:
            self.add_error(
                getattr(error, "field", None) if getattr(error, "field", None) in self.fields else None,
                error.detail,
            )
        if self.instance.pk:
            switching_off = not data.get("allow_negative") and self.instance.allow_negative
            if switching_off and Account.objects.filter(currency=self.instance, available__lt=0).exists():
                self.add_error("allow_negative", "Some member accounts are below zero.")
            if self.instance.is_default and not data.get("is_default"):
                self.add_error("is_default", "Make another currency the default instead.")
        elif Currency.objects.filter(program=data.get("program"), code=data.get("code")).exists():
            self.add_error("code", "A currency with this code already exists in the program.")
        return data

    def validate_unique(self):
        # Checked in clean(); the model's constraints would also refuse a second default,
        # which the service handles by moving the default instead.
        pass


@admin.register(Currency)
class CurrencyAdmin(SimpleHistoryAdmin):
    form = CurrencyForm
    list_display = ["code", "name", "program", "is_default", "expiry_policy", "allow_negative", "is_active"]
    list_filter = ["program", "expiry_policy", "is_active"]
    search_fields = ["code", "name"]
    list_select_related = ["program"]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return ["program", "code", "outstanding_liability", "created_at", "updated_at"]

    @admin.display(description="Outstanding liability")
    def outstanding_liability(self, obj: Currency) -> str:
        liability = selectors.currency_liability(currency=obj)
        return format_html(
            "{} points ({} available, {} pending, {} held) = <strong>{} {}</strong>",
            liability["outstanding"],
            liability["available"],
            liability["pending"],
            liability["held"],
            liability["money_value"],
            liability["money_currency"],
        )

    def save_model(self, request, obj, form, change):
        actor = Actor.for_user(request.user)
        data = dict(form.cleaned_data)
        if change:
            fields = {name: data[name] for name in form.changed_data if name not in ("program", "code")}
            services.currency_update(currency=obj, actor=actor, **fields)
        else:
            created = services.currency_create(
                program=data.pop("program"), code=data.pop("code"), name=data.pop("name"), actor=actor, **data
            )
            obj.pk = created.pk


# --- Accounts ----------------------------------------------------------------------------


class LotInline(ReadOnlyInline):
    model = Lot
    fk_name = "account"
    fields = ["source", "amount", "remaining", "earned_at", "expires_at", "is_pending", "available_at"]
    readonly_fields = fields
    verbose_name_plural = "Lots with points left"

    def get_queryset(self, request):
        return super().get_queryset(request).filter(remaining__gt=0)


class AdjustmentForm(forms.Form):
    amount = forms.IntegerField(help_text="Signed: positive adds points, negative removes them.")
    reason = forms.CharField(max_length=500, widget=forms.TextInput(attrs={"size": 60}))

    def clean_amount(self):
        amount = self.cleaned_data["amount"]
        if amount == 0:
            raise forms.ValidationError("An adjustment cannot be zero.")
        return amount


@admin.register(Account)
class AccountAdmin(ReadOnlyAdmin):
    list_display = [
        "member",
        "currency",
        "available",
        "pending",
        "held",
        "lifetime_earned",
        "last_activity_at",
    ]
    list_filter = ["program", "currency"]
    search_fields = ["=member__number", "member__email", "member__last_name", "=member__cards__number"]
    list_select_related = ["member", "currency"]
    inlines = [LotInline]
    show_full_result_count = False
    actions = [
        form_action(
            name="manual_adjustment",
            description="Manual adjustment",
            form_class=AdjustmentForm,
            permissions=("adjust",),
            apply=lambda account, actor, data: qualifying.points_adjust_qualifying(
                member=account.member,
                currency=Currency.objects.select_related("program").get(pk=account.currency_id),
                amount=data["amount"],
                reason=data["reason"],
                actor=actor,
            ),
        )
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).filter(kind=Account.Kind.MEMBER)

    def has_adjust_permission(self, request) -> bool:
        return request.user.has_perm(ADJUST_PERMISSION)


# --- Transactions ------------------------------------------------------------------------


class EntryInline(ReadOnlyInline):
    model = Entry
    fields = ["account", "bucket", "amount"]
    readonly_fields = fields


class MemberAdjustmentForm(AdjustmentForm):
    program = forms.ModelChoiceField(queryset=Program.objects.all())
    member_number = forms.CharField(max_length=20, help_text="The member number printed on cards.")
    currency = forms.CharField(max_length=20, required=False, help_text="Code; empty: the default currency.")

    field_order = ["program", "member_number", "currency", "amount", "reason"]

    def clean(self):
        data = super().clean()
        program = data.get("program")
        if program is None:
            return data
        member = Member.objects.filter(program=program, number=data.get("member_number", "").strip()).first()
        if member is None:
            self.add_error("member_number", "No member with this number in the program.")
        data["member"] = member
        code = (data.get("currency") or "").strip()
        currency = None
        if code:
            currency = (
                Currency.objects.select_related("program").filter(program=program, code=code.upper()).first()
            )
            if currency is None:
                self.add_error("currency", "No currency with this code in the program.")
        data["currency_obj"] = currency
        return data


@admin.register(Transaction)
class TransactionAdmin(ReadOnlyAdmin):
    list_display = ["id", "kind", "member", "amount", "currency", "reference", "occurred_at", "recorded_at"]
    list_filter = ["kind", "program", "currency", "occurred_at"]
    search_fields = ["=member__number", "member__email", "member__last_name", "=reference", "=id"]
    list_select_related = ["member", "currency"]
    inlines = [EntryInline]
    show_full_result_count = False
    date_hierarchy = "occurred_at"
    change_list_template = "admin/points/transaction/change_list.html"

    def get_urls(self):
        return [
            path(
                "adjust/",
                self.admin_site.admin_view(self.adjustment_view),
                name="points_transaction_adjust",
            ),
            *super().get_urls(),
        ]

    def adjustment_view(self, request):
        """Manual adjustment of one member's points (reason required), through the service."""
        if not request.user.has_perm(ADJUST_PERMISSION):
            raise PermissionDenied
        form = MemberAdjustmentForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                result = qualifying.points_adjust_qualifying(
                    member=data["member"],
                    currency=data["currency_obj"],
                    amount=data["amount"],
                    reason=data["reason"],
                    actor=Actor.for_user(request.user),
                )
            except DomainError as error:
                form.add_error(None, error.detail)
            else:
                self.message_user(
                    request,
                    f"Adjusted {data['member']} by {data['amount']:+d}; "
                    f"available now {result.account.available}.",
                    messages.SUCCESS,
                )
                return redirect(reverse("admin:points_transaction_change", args=[result.transaction.pk]))
        return TemplateResponse(
            request,
            "admin/points/transaction/adjust.html",
            {
                **self.admin_site.each_context(request),
                "title": "Manual adjustment",
                "form": form,
                "opts": self.model._meta,
            },
        )

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "can_adjust": request.user.has_perm(ADJUST_PERMISSION)}
        return super().changelist_view(request, extra_context)


@admin.register(Hold)
class HoldAdmin(ReadOnlyAdmin):
    list_display = ["id", "member", "amount", "captured_amount", "state", "expires_at", "reference"]
    list_filter = ["state", "program"]
    search_fields = ["=member__number", "member__email", "=reference"]
    list_select_related = ["member"]
