from django.apps import AppConfig


class TiersConfig(AppConfig):
    name = "tiers"
    verbose_name = "Tiers"

    def ready(self) -> None:
        from members import hooks as member_hooks

        from . import events, selectors, services

        events.register()
        member_hooks.members_created.register(services.members_assign_default)
        member_hooks.profile_sections.register(selectors.profile_section)
        member_hooks.export_sections.register(selectors.export_section)
        member_hooks.member_erased.register(services.member_tier_erase)
        # Bulk job kinds (jobs app): tier_assignments and tiers (definitions) imports, tiers export.
        from . import imports

        imports.register()
