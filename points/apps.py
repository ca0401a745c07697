from django.apps import AppConfig


class PointsConfig(AppConfig):
    name = "points"
    verbose_name = "Points"

    def ready(self) -> None:
        from members import hooks as member_hooks
        from programs import hooks as program_hooks

        from . import events, selectors, services
        from .earning import bonuses
        from .earning import events as earning_events
        from .earning import selectors as earning_selectors

        events.register()
        earning_events.register()
        program_hooks.program_created.register(services.program_default_currency)
        member_hooks.profile_sections.register(selectors.profile_balances)
        member_hooks.export_sections.register(selectors.export_section)
        member_hooks.export_sections.register(earning_selectors.export_section)
        # Event bonuses: enrolment (set-based for imported lists) and profile completion.
        member_hooks.members_created.register(bonuses.members_created_bonuses)
        member_hooks.member_updated.register(bonuses.member_updated_bonus)
        member_hooks.members_updated.register(bonuses.members_updated_bonuses)
        # Bulk job kinds (jobs app): the point_adjustments import; transactions, balances, liability exports.
        from . import exports, imports

        imports.register()
        exports.register()
