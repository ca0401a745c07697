from django.apps import AppConfig


class MembersConfig(AppConfig):
    name = "members"
    verbose_name = "Members"

    def ready(self) -> None:
        from . import events, exports, imports

        events.register()
        # Bulk job kinds (jobs app): imports of members, labels and cards; member exports.
        imports.register()
        exports.register()
