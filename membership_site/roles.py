"""Staff roles as Django groups, kept in step with the models.

A role grants model permissions per app label. ``sync_groups`` is idempotent: it is run by
the ``membership_site`` data migration and again after every ``migrate`` (so models added
by later migrations are covered). Give a staff user a role by adding them to the group.
"""

from __future__ import annotations

from django.contrib.auth.models import Group, Permission

ALL_ACTIONS = ("add", "change", "delete", "view")

# Apps holding program configuration and member data. Apps added later append themselves.
PROJECT_APPS = (
    "programs",
    "integrations",
    "members",
    "tiers",
    "points",
    "rewards",
    "webhooks",
    "jobs",
)

PROGRAM_MANAGER = "Program manager"
SUPPORT_AGENT = "Support agent"
AUDITOR = "Auditor"

# role -> {app_label: actions}; "view" on every project app is added to each role.
ROLE_GRANTS: dict[str, dict[str, tuple[str, ...]]] = {
    PROGRAM_MANAGER: dict.fromkeys(PROJECT_APPS, ALL_ACTIONS),
    # Support works on members (profiles, cards, labels, status) but changes no
    # configuration and deletes nothing.
    SUPPORT_AGENT: {"members": ("add", "change", "view")},
    AUDITOR: {},
}

# Single permissions beyond the per-app grants (app_label.codename), e.g. custom ones.
ROLE_EXTRA_PERMISSIONS: dict[str, tuple[str, ...]] = {
    PROGRAM_MANAGER: ("points.adjust_points", "tiers.assign_tier", "rewards.cancel_redemption"),
    # Support agents may make manual points adjustments and tier assignments (reason
    # required, audited), and cancel unused reward redemptions and vouchers.
    SUPPORT_AGENT: ("points.adjust_points", "tiers.assign_tier", "rewards.cancel_redemption"),
    AUDITOR: (),
}


def _wanted_permissions(role: str) -> list[Permission]:
    grants = {app: set(actions) for app, actions in ROLE_GRANTS[role].items()}
    for app in PROJECT_APPS:
        grants.setdefault(app, set()).add("view")
    perms = Permission.objects.filter(content_type__app_label__in=list(grants)).select_related("content_type")
    wanted = [p for p in perms if p.codename.split("_", 1)[0] in grants[p.content_type.app_label]]
    for dotted in ROLE_EXTRA_PERMISSIONS.get(role, ()):
        app_label, codename = dotted.split(".", 1)
        wanted.extend(Permission.objects.filter(content_type__app_label=app_label, codename=codename))
    return wanted


def sync_groups() -> None:
    for role in ROLE_GRANTS:
        group, _ = Group.objects.get_or_create(name=role)
        group.permissions.set(_wanted_permissions(role))


def sync_groups_after_migrate(sender, **kwargs) -> None:
    # post_migrate fires once per app; running once, after the last app, is enough.
    from django.apps import apps

    with_models = [c for c in apps.get_app_configs() if c.models_module is not None]
    if with_models and sender.label == with_models[-1].label:
        sync_groups()
