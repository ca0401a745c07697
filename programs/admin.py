from zoneinfo import available_timezones

from django import forms
from django.contrib import admin
from simple_history.admin import SimpleHistoryAdmin

from membership_site.actors import Actor

from . import services
from .models import Location, Program


class LocationInline(admin.TabularInline):
    model = Location
    extra = 0
    fields = ["code", "name", "kind", "is_active"]
    readonly_fields = ["code", "name", "kind", "is_active"]
    show_change_link = True
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


class ProgramForm(forms.ModelForm):
    timezone = forms.ChoiceField(choices=lambda: [(tz, tz) for tz in sorted(available_timezones())])

    class Meta:
        model = Program
        fields = ["code", "name", "timezone", "currency", "phone_region", "status"]


@admin.register(Program)
class ProgramAdmin(SimpleHistoryAdmin):
    form = ProgramForm
    list_display = ["code", "name", "timezone", "currency", "status", "created_at"]
    list_filter = ["status", "currency"]
    search_fields = ["code", "name"]
    inlines = [LocationInline]

    def get_readonly_fields(self, request, obj=None):
        # The code is the program's identity in URLs, files and integrations.
        return ["code", "created_at", "updated_at"] if obj else ["created_at", "updated_at"]

    def save_model(self, request, obj, form, change):
        actor = Actor.for_user(request.user)
        if change:
            services.program_update(
                program=obj, actor=actor, **{name: form.cleaned_data[name] for name in form.changed_data}
            )
        else:
            data = dict(form.cleaned_data)
            status = data.pop("status")
            created = services.program_create(actor=actor, **data)
            if status != created.status:
                services.program_update(program=created, actor=actor, status=status)
            obj.pk = created.pk


@admin.register(Location)
class LocationAdmin(SimpleHistoryAdmin):
    list_display = ["code", "name", "kind", "program", "is_active"]
    list_filter = ["program", "kind", "is_active"]
    search_fields = ["code", "name"]

    def get_readonly_fields(self, request, obj=None):
        return ["program", "code"] if obj else []

    def save_model(self, request, obj, form, change):
        actor = Actor.for_user(request.user)
        if change:
            services.location_update(
                location=obj, actor=actor, **{name: form.cleaned_data[name] for name in form.changed_data}
            )
        else:
            data = {k: v for k, v in form.cleaned_data.items() if k != "is_active"}
            created = services.location_create(actor=actor, **data)
            obj.pk = created.pk
