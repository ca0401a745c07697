from django.apps import AppConfig


class PointsConfig(AppConfig):
    name = "points"
    verbose_name = "Points"

    def ready(self) -> None:
        from members import hooks as member_hooks
        from programs import hooks as program_hooks

        from . import events, selectors, services

        events.register()
        program_hooks.program_created.register(services.program_default_currency)
        member_hooks.profile_sections.register(selectors.profile_balances)
        member_hooks.export_sections.register(selectors.export_section)
        # Bulk job kinds (jobs app): the point_adjustments import; transactions, balances, liability exports.
        from . import exports, imports

        imports.register()
        exports.register()
