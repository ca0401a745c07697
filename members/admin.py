from django import forms
from django.contrib import admin
from import_export.admin import ImportExportMixin, ImportMixin
from import_export.formats import base_formats
from simple_history.admin import SimpleHistoryAdmin

from jobs.admin_import import JobImportMixin
from membership_site.actors import Actor
from membership_site.admin_actions import form_action
from membership_site.errors import DomainError
from programs.models import Program

from . import services
from .models import Card, Consent, Label, Member, MemberLabel, StatusChange
from .normalize import check_birth_date, normalize_email, normalize_phone
from .resources import (
    MemberCardImportResource,
    MemberExportResource,
    MemberImportResource,
    MemberLabelImportResource,
)


class MemberForm(forms.ModelForm):
    class Meta:
        model = Member
        fields = [
            "program",
            "first_name",
            "last_name",
            "email",
            "phone",
            "birth_date",
            "language",
            "address_line1",
            "address_line2",
            "city",
            "postal_code",
            "region",
            "country",
            "external_ref",
            "preferences",
        ]

    def _program(self):
        return self.instance.program if self.instance.pk else self.cleaned_data.get("program")

    def clean_email(self):
        try:
            return normalize_email(self.cleaned_data["email"])
        except DomainError as error:
            raise forms.ValidationError(error.detail) from None

    def clean_birth_date(self):
        value = self.cleaned_data["birth_date"]
        program = self._program()
        if value is None or program is None:
            return value
        try:
            return check_birth_date(value, program.tz)
        except DomainError as error:
            raise forms.ValidationError(error.detail) from None

    def clean_phone(self):
        program = self._program()
        try:
            return normalize_phone(self.cleaned_data["phone"], program.phone_region if program else "")
        except DomainError as error:
            raise forms.ValidationError(error.detail) from None


class CardInline(admin.TabularInline):
    model = Card
    extra = 0
    fields = ["number", "kind", "status", "issued_at", "status_reason", "replaced_by"]
    readonly_fields = fields
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


class MemberLabelInline(admin.TabularInline):
    model = MemberLabel
    extra = 0
    fields = ["label", "assigned_at"]
    readonly_fields = fields
    can_delete = False
    verbose_name_plural = "Labels (use the actions to assign or remove)"

    def has_add_permission(self, request, obj=None):
        return False


class ConsentInline(admin.TabularInline):
    model = Consent
    extra = 0
    fields = ["purpose", "granted", "changed_at", "source"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


class StatusChangeInline(admin.TabularInline):
    model = StatusChange
    extra = 0
    fields = ["at", "from_status", "to_status", "reason", "actor_user", "actor_integration"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


def _status_action(action: str, description: str):
    return form_action(
        name=action,
        description=description,
        apply=lambda member, actor, data: services.member_status_action(
            member=member, action=action, reason=data["reason"], actor=actor
        ),
    )


class LabelChoiceForm(forms.Form):
    label = forms.ModelChoiceField(queryset=Label.objects.select_related("program"))


class _ProgramImportMixin(JobImportMixin):
    """Imports run as jobs of the members kinds (see jobs.admin_import)."""

    def program_queryset(self, request):
        return Program.objects.order_by("code")

    def has_import_permission(self, request):
        return request.user.has_perms(["members.add_member", "members.change_member"])


@admin.register(Member)
class MemberAdmin(_ProgramImportMixin, ImportExportMixin, SimpleHistoryAdmin):
    form = MemberForm
    resource_classes = [MemberImportResource, MemberCardImportResource]
    export_formats = [base_formats.CSV, base_formats.JSON]
    list_display = ["number", "first_name", "last_name", "email", "phone", "status", "program", "joined_at"]
    list_filter = ["status", "program", "labels", "joined_at"]
    search_fields = [
        "=number",
        "=cards__number",
        "email",
        "phone",
        "first_name",
        "last_name",
        "=external_ref",
    ]
    list_select_related = ["program"]
    readonly_fields = ["number", "status", "status_changed_at", "joined_at", "created_at", "updated_at"]
    inlines = [CardInline, MemberLabelInline, ConsentInline, StatusChangeInline]
    show_full_result_count = False
    actions = [
        _status_action("activate", "Activate (pending → active)"),
        _status_action("suspend", "Suspend"),
        _status_action("reactivate", "Reactivate (suspended → active)"),
        _status_action("terminate", "Terminate (final)"),
        form_action(
            name="erase",
            description="Erase personal data (GDPR, cannot be undone)",
            apply=lambda member, actor, data: services.member_erase(
                member=member, reason=data["reason"], actor=actor
            ),
        ),
        form_action(
            name="assign_label",
            description="Assign a label",
            form_class=LabelChoiceForm,
            apply=lambda member, actor, data: services.label_assign(
                member=member, label_code=data["label"].code, actor=actor
            ),
        ),
        form_action(
            name="remove_label",
            description="Remove a label",
            form_class=LabelChoiceForm,
            apply=lambda member, actor, data: services.label_remove(
                member=member, label_code=data["label"].code, actor=actor
            ),
        ),
        form_action(
            name="issue_card",
            description="Issue a card",
            form_class=type(
                "CardKindForm", (forms.Form,), {"kind": forms.ChoiceField(choices=Card.Kind.choices)}
            ),
            apply=lambda member, actor, data: services.card_issue(
                member=member, kind=data["kind"], actor=actor
            ),
        ),
    ]

    def get_export_resource_classes(self, request):
        # Imports are job kinds; the admin's export writes the member columns.
        return [MemberExportResource]

    def get_readonly_fields(self, request, obj=None):
        return [*self.readonly_fields, "program"] if obj else self.readonly_fields

    def save_model(self, request, obj, form, change):
        actor = Actor.for_user(request.user)
        data = {name: value for name, value in form.cleaned_data.items() if name != "program"}
        if change:
            services.member_update(
                member=obj, actor=actor, **{name: data[name] for name in form.changed_data if name in data}
            )
        else:
            created = services.member_create(program=form.cleaned_data["program"], actor=actor, **data)
            obj.pk = created.pk
            obj.number = created.number


@admin.register(Card)
class CardAdmin(SimpleHistoryAdmin):
    list_display = ["number", "member", "kind", "status", "issued_at", "program"]
    list_filter = ["status", "kind", "program"]
    search_fields = ["=number", "=member__number", "member__email"]
    list_select_related = ["member", "program"]
    readonly_fields = [
        "program",
        "member",
        "number",
        "kind",
        "status",
        "issued_at",
        "status_reason",
        "replaced_by",
    ]
    actions = [
        form_action(
            name="block",
            description="Block",
            apply=lambda card, actor, data: services.card_block(
                card=card, reason=data["reason"], actor=actor
            ),
        ),
        form_action(
            name="replace",
            description="Replace with a new card",
            apply=lambda card, actor, data: services.card_replace(
                card=card, reason=data["reason"], actor=actor
            ),
        ),
    ]

    def has_add_permission(self, request):
        return False  # cards are issued from the member page (action "Issue a card")


@admin.register(Label)
class LabelAdmin(_ProgramImportMixin, ImportMixin, SimpleHistoryAdmin):
    # The import puts labels on members (or takes them off), one row per member and label.
    resource_classes = [MemberLabelImportResource]
    list_display = ["code", "name", "program"]
    list_filter = ["program"]
    search_fields = ["code", "name"]

    def get_readonly_fields(self, request, obj=None):
        return ["program", "code"] if obj else []

    def save_model(self, request, obj, form, change):
        actor = Actor.for_user(request.user)
        if change:
            services.label_update(
                label=obj, actor=actor, **{n: form.cleaned_data[n] for n in form.changed_data}
            )
        else:
            created = services.label_create(actor=actor, **form.cleaned_data)
            obj.pk = created.pk
