from django.apps import AppConfig


def program_by_code_or_only(code: str | None):
    """The program with this code, or without a code the only program there is; None when
    there is no such program (or not exactly one). The jobs command bases use it through
    ``jobs.registry.program_lookup`` (jobs imports no domain app)."""
    from .models import Program

    if code:
        return Program.objects.filter(code=code).first()
    programs = list(Program.objects.order_by("code")[:2])
    return programs[0] if len(programs) == 1 else None


class ProgramsConfig(AppConfig):
    name = "programs"
    verbose_name = "Programs"

    def ready(self) -> None:
        from jobs import registry

        registry.register_program_lookup(program_by_code_or_only)
