from django import forms
from django.contrib import admin, messages
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html
from simple_history.admin import SimpleHistoryAdmin

from membership_site.actors import Actor
from membership_site.admin_readonly import ReadOnlyAdminMixin
from membership_site.errors import DomainError

from . import catalog, services
from .models import Delivery, DeliveryAttempt, Event, WebhookEndpoint
from .urlsafety import check_url


class WebhookEndpointForm(forms.ModelForm):
    url = forms.URLField(
        max_length=2000, assume_scheme="https", help_text="https address receiving the POSTs."
    )
    program_id = forms.IntegerField(min_value=1, label="Program id")
    event_types = forms.MultipleChoiceField(
        choices=(),
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text="None ticked: every event type.",
    )

    class Meta:
        model = WebhookEndpoint
        fields = ["program_id", "url", "description", "event_types", "is_active"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Read when the form is built: apps register their types in AppConfig.ready.
        self.fields["event_types"].choices = [(name, name) for name in catalog.names()]

    def clean(self):
        cleaned = super().clean()
        url = cleaned.get("url")
        try:
            if url and (not self.instance.pk or "url" in self.changed_data):
                check_url(url)
            services.clean_event_types(cleaned.get("event_types") or [])
        except DomainError as error:
            self.add_error(getattr(error, "field", None) or None, error.detail)
        return cleaned


def _secret_page(request, endpoint: WebhookEndpoint, secret: str, title: str):
    return TemplateResponse(
        request,
        "admin/webhooks/secret_shown.html",
        {
            **admin.site.each_context(request),
            "title": title,
            "endpoint": endpoint,
            "secret": secret,
            "back_url": reverse("admin:webhooks_webhookendpoint_change", args=[endpoint.pk]),
        },
    )


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(SimpleHistoryAdmin):
    form = WebhookEndpointForm
    list_display = ["url", "program_id", "is_active", "status_note", "failing_since", "created_at"]
    list_filter = ["is_active", "program_id"]
    search_fields = ["url", "description"]
    readonly_fields = [
        "disabled_at",
        "disabled_reason",
        "failing_since",
        "previous_secret_expires_at",
        "created_at",
        "updated_at",
    ]
    actions = ["rotate_secret", "send_test", "enable", "disable"]

    @admin.display(description="Disabled")
    def status_note(self, obj):
        if obj.is_active:
            return "—"
        return format_html("{} <br><small>{}</small>", obj.disabled_at or "", obj.disabled_reason)

    def get_readonly_fields(self, request, obj=None):
        return [*self.readonly_fields, "program_id"] if obj else self.readonly_fields

    def get_form(self, request, obj=None, **kwargs):
        if obj is not None:
            kwargs["fields"] = ["url", "description", "event_types", "is_active"]
        return super().get_form(request, obj, **kwargs)

    def save_model(self, request, obj, form, change):
        actor = Actor.for_user(request.user)
        data = form.cleaned_data
        if change:
            changes = {
                name: data[name]
                for name in ("url", "description", "event_types", "is_active")
                if name in form.changed_data
            }
            # The form already wrote the values on obj; the service works from the stored row.
            stored = WebhookEndpoint.objects.get(pk=obj.pk)
            services.endpoint_update(endpoint=stored, actor=actor, **changes)
            return
        created = services.endpoint_create(
            program_id=data["program_id"],
            url=data["url"],
            description=data["description"],
            event_types=data["event_types"],
            is_active=data["is_active"],
            actor=actor,
        )
        obj.pk = created.endpoint.pk
        # Kept on the request only for the response below; stored encrypted.
        request._new_webhook_secret = created.secret

    def response_add(self, request, obj, post_url_continue=None):
        secret = getattr(request, "_new_webhook_secret", None)
        if secret is None:
            return super().response_add(request, obj, post_url_continue)
        endpoint = WebhookEndpoint.objects.get(pk=obj.pk)
        return _secret_page(request, endpoint, secret, f"Webhook endpoint {endpoint.url} created")

    def delete_model(self, request, obj):
        services.endpoint_delete(endpoint=obj, actor=Actor.for_user(request.user))

    def delete_queryset(self, request, queryset):
        actor = Actor.for_user(request.user)
        for endpoint in queryset:
            services.endpoint_delete(endpoint=endpoint, actor=actor)

    @admin.action(description="Rotate the secret (new one shown once)", permissions=["change"])
    def rotate_secret(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one endpoint.", messages.ERROR)
            return None
        rotated = services.endpoint_rotate_secret(endpoint=queryset.get(), actor=Actor.for_user(request.user))
        return _secret_page(
            request, rotated.endpoint, rotated.secret, f"New secret for {rotated.endpoint.url}"
        )

    @admin.action(description="Send a test event", permissions=["change"])
    def send_test(self, request, queryset):
        actor = Actor.for_user(request.user)
        for endpoint in queryset:
            try:
                services.endpoint_send_test(endpoint=endpoint, actor=actor)
                self.message_user(request, f"Test event sent to {endpoint.url}.", messages.SUCCESS)
            except DomainError as error:
                self.message_user(request, f"{endpoint.url}: {error.detail}", messages.ERROR)

    def _set_active(self, request, queryset, active: bool):
        actor = Actor.for_user(request.user)
        for endpoint in queryset:
            services.endpoint_update(endpoint=endpoint, actor=actor, is_active=active)
        self.message_user(request, f"{queryset.count()} endpoint(s) updated.", messages.SUCCESS)

    @admin.action(description="Enable (clears the disabled reason)", permissions=["change"])
    def enable(self, request, queryset):
        self._set_active(request, queryset, True)

    @admin.action(description="Disable", permissions=["change"])
    def disable(self, request, queryset):
        self._set_active(request, queryset, False)


class DeliveryAttemptInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = DeliveryAttempt
    extra = 0
    fields = [
        "number",
        "started_at",
        "duration_ms",
        "status_code",
        "succeeded",
        "error",
        "response_excerpt",
        "triggered_by",
    ]
    readonly_fields = fields


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "id",
        "endpoint",
        "event_link",
        "state",
        "attempt_count",
        "last_status_code",
        "last_error",
        "next_attempt_at",
        "created_at",
    ]
    list_filter = ["state", "endpoint__program_id", "endpoint"]
    search_fields = ["=event__event_id", "endpoint__url"]
    list_select_related = ["endpoint", "event"]
    inlines = [DeliveryAttemptInline]
    actions = ["retry_now"]
    show_full_result_count = False
    fields = [
        "endpoint",
        "event",
        "program_id",
        "state",
        "attempt_count",
        "next_attempt_at",
        "last_attempt_at",
        "last_status_code",
        "last_error",
        "created_at",
        "updated_at",
    ]
    readonly_fields = fields

    @admin.display(description="Event")
    def event_link(self, obj):
        url = reverse("admin:webhooks_event_change", args=[obj.event_id])
        return format_html('<a href="{}">{} {}</a>', url, obj.event.event_id, obj.event.type)

    def has_retry_permission(self, request):
        return request.user.has_perm("webhooks.change_delivery")

    @admin.action(description="Resend now", permissions=["retry"])
    def retry_now(self, request, queryset):
        actor = Actor.for_user(request.user)
        done = 0
        for delivery in queryset:
            try:
                services.delivery_retry(delivery=delivery, actor=actor)
                done += 1
            except DomainError as error:
                self.message_user(request, f"Delivery {delivery.pk}: {error.detail}", messages.ERROR)
        if done:
            self.message_user(request, f"{done} delivery(ies) queued to resend.", messages.SUCCESS)


@admin.register(Event)
class EventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "event_id",
        "type",
        "program_id",
        "member_id",
        "member_sequence",
        "occurred_at",
        "recorded_at",
        "dispatched",
    ]
    list_filter = ["type", "program_id"]
    search_fields = ["=event_id", "type", "=member_id"]
    list_select_related = ["dispatch"]
    show_full_result_count = False
    fields = [
        "event_id",
        "type",
        "program_id",
        "member_id",
        "member_sequence",
        "schema_version",
        "occurred_at",
        "recorded_at",
        "txid",
        "data",
        "dispatched",
    ]
    readonly_fields = fields

    @admin.display(description="Dispatched", boolean=True)
    def dispatched(self, obj):
        dispatch = getattr(obj, "dispatch", None)
        return bool(dispatch and dispatch.dispatched_at)
