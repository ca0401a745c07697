"""Template tags for the audit history pages of the admin."""

from django import template
from django.apps import apps

register = template.Library()


@register.simple_tag(takes_context=True)
def acting_integration(context, record) -> str:
    """ "Integration: <name> (#id)" for a history row written through the API; one query
    per integration per page."""
    integration_id = getattr(record, "history_integration_id", None)
    if not integration_id:
        return ""
    names = context.render_context.setdefault("acting_integrations", {})
    if integration_id not in names:
        integration = (
            apps.get_model("integrations", "Integration")
            .objects.filter(pk=integration_id)
            .only("name")
            .first()
        )
        label = integration.name if integration is not None else "deleted"
        names[integration_id] = f"Integration: {label} (#{integration_id})"
    return names[integration_id]
