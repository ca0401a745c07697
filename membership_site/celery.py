"""The Celery application.

Without ``CELERY_BROKER_URL`` the settings switch Celery to eager mode, so tasks run
in-process (the zero-setup ``make run`` default). Periodic tasks come from each installed
app's ``beat.py`` (a ``SCHEDULE`` dict in Celery's beat_schedule format).
"""

import importlib
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "membership_site.settings")

app = Celery("membership_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_finalize.connect
def _collect_beat_schedules(sender, **kwargs) -> None:
    from django.apps import apps

    for app_config in apps.get_app_configs():
        try:
            module = importlib.import_module(f"{app_config.name}.beat")
        except ModuleNotFoundError as error:
            if error.name != f"{app_config.name}.beat":
                raise
            continue
        sender.conf.beat_schedule.update(module.SCHEDULE)
