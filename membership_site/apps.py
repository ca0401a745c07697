from django.apps import AppConfig
from django.db.models.signals import post_migrate


class MembershipSiteConfig(AppConfig):
    name = "membership_site"
    verbose_name = "Platform"

    def ready(self) -> None:
        from . import audit, checks, roles  # noqa: F401 (checks registers itself)

        audit.connect()
        # Roles are kept in step with the models after every migrate, so an app added
        # later gets its permissions into the groups without a hand-written migration.
        post_migrate.connect(roles.sync_groups_after_migrate, dispatch_uid="sync_role_groups")
