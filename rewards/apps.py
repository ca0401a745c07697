from django.apps import AppConfig


class RewardsConfig(AppConfig):
    name = "rewards"
    verbose_name = "Rewards"

    def ready(self) -> None:
        from members import hooks as member_hooks

        from . import events, imports, selectors, services

        events.register()
        imports.register()
        member_hooks.export_sections.register(selectors.export_section)
        member_hooks.member_erased.register(services.member_rewards_erase)
