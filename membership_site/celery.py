"""The Celery application.

Without ``CELERY_BROKER_URL`` the settings switch Celery to eager mode, so tasks run
in-process (the zero-setup ``make run`` default).
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "membership_site.settings")

app = Celery("membership_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
