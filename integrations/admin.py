from django import forms
from django.contrib import admin, messages
from django.template.response import TemplateResponse
from django.urls import reverse
from simple_history.admin import SimpleHistoryAdmin

from membership_site.actors import Actor
from membership_site.errors import DomainError

from . import services
from .models import ApiKey, Integration
from .scopes import SCOPES


class IntegrationForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        choices=sorted(SCOPES.items()), widget=forms.CheckboxSelectMultiple, required=False
    )
    ip_allowlist = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        required=False,
        help_text="One CIDR range per line (e.g. 203.0.113.0/24). Empty: any address.",
    )

    class Meta:
        model = Integration
        fields = ["program", "name", "kind", "scopes", "is_active", "ip_allowlist", "rate_limit"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["ip_allowlist"] = "\n".join(self.instance.ip_allowlist)

    def clean_ip_allowlist(self):
        lines = [line.strip() for line in self.cleaned_data["ip_allowlist"].splitlines() if line.strip()]
        try:
            return services.clean_ip_allowlist(lines)
        except DomainError as error:
            raise forms.ValidationError(error.detail) from None

    def clean_rate_limit(self):
        try:
            return services.clean_rate_limit(self.cleaned_data["rate_limit"])
        except DomainError as error:
            raise forms.ValidationError(error.detail) from None


class ApiKeyInline(admin.TabularInline):
    model = ApiKey
    extra = 0
    fields = ["prefix", "name", "created_at", "expires_at", "revoked_at", "last_used_at"]
    readonly_fields = fields
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


def _secret_page(request, *, title: str, what: str, secrets: list[tuple[str, str]], back_url: str):
    return TemplateResponse(
        request,
        "admin/secret_created.html",
        {
            **admin.site.each_context(request),
            "title": title,
            "what": what,
            "secrets": secrets,
            "back_url": back_url,
        },
    )


@admin.register(Integration)
class IntegrationAdmin(SimpleHistoryAdmin):
    form = IntegrationForm
    list_display = ["name", "program", "kind", "is_active", "oauth_client", "created_at"]
    list_filter = ["program", "kind", "is_active"]
    search_fields = ["name", "program__code"]
    inlines = [ApiKeyInline]
    actions = ["create_api_key", "create_oauth_client"]

    @admin.display(boolean=True, description="OAuth2 client")
    def oauth_client(self, obj):
        return obj.oauth_application_id is not None

    def get_readonly_fields(self, request, obj=None):
        return ["program"] if obj else []

    def save_model(self, request, obj, form, change):
        actor = Actor.for_user(request.user)
        data = dict(form.cleaned_data)
        if change:
            services.integration_update(
                integration=obj, actor=actor, **{name: data[name] for name in form.changed_data}
            )
        else:
            is_active = data.pop("is_active")
            created = services.integration_create(actor=actor, **data)
            if not is_active:
                services.integration_update(integration=created, actor=actor, is_active=False)
            obj.pk = created.pk

    @admin.action(description="Create an API key (shown once)", permissions=["change"])
    def create_api_key(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one integration.", messages.ERROR)
            return None
        integration = queryset.get()
        new = services.api_key_create(
            integration=integration, name="created in admin", actor=Actor.for_user(request.user)
        )
        return _secret_page(
            request,
            title=f"New API key for {integration}",
            what="the API key",
            secrets=[("API key", new.key)],
            back_url=reverse("admin:integrations_integration_change", args=[integration.pk]),
        )

    @admin.action(description="Create an OAuth2 client (secret shown once)", permissions=["change"])
    def create_oauth_client(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one integration.", messages.ERROR)
            return None
        integration = queryset.get()
        try:
            client = services.oauth_client_create(integration=integration, actor=Actor.for_user(request.user))
        except DomainError as error:
            self.message_user(request, error.detail, messages.ERROR)
            return None
        return _secret_page(
            request,
            title=f"New OAuth2 client for {integration}",
            what="the client secret",
            secrets=[("Client ID", client.client_id), ("Client secret", client.client_secret)],
            back_url=reverse("admin:integrations_integration_change", args=[integration.pk]),
        )


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["prefix", "name", "integration", "created_at", "expires_at", "revoked_at", "last_used_at"]
    list_filter = ["integration__program", "revoked_at"]
    search_fields = ["prefix", "name", "integration__name"]
    fields = [
        "integration",
        "name",
        "expires_at",
        "prefix",
        "created_at",
        "created_by",
        "revoked_at",
        "last_used_at",
    ]
    actions = ["revoke"]

    def get_readonly_fields(self, request, obj=None):
        always = ["prefix", "created_at", "created_by", "revoked_at", "last_used_at"]
        return [*always, "integration"] if obj else always

    def save_model(self, request, obj, form, change):
        if change:
            obj.save(update_fields=["name", "expires_at"])
            return
        new = services.api_key_create(
            integration=form.cleaned_data["integration"],
            name=form.cleaned_data["name"],
            expires_at=form.cleaned_data["expires_at"],
            actor=Actor.for_user(request.user),
        )
        obj.pk = new.api_key.pk
        # Kept on the instance only for the response below; never stored.
        request._new_api_key = new.key

    def response_add(self, request, obj, post_url_continue=None):
        key = getattr(request, "_new_api_key", None)
        if key is None:
            return super().response_add(request, obj, post_url_continue)
        return _secret_page(
            request,
            title=f"New API key for {obj.integration}",
            what="the API key",
            secrets=[("API key", key)],
            back_url=reverse("admin:integrations_apikey_changelist"),
        )

    @admin.action(description="Revoke the selected keys", permissions=["change"])
    def revoke(self, request, queryset):
        done = 0
        for api_key in queryset:
            try:
                services.api_key_revoke(api_key=api_key, actor=Actor.for_user(request.user))
                done += 1
            except DomainError as error:
                self.message_user(request, error.detail, messages.WARNING)
        self.message_user(request, f"Revoked {done} key(s).", messages.SUCCESS)
