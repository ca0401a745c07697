"""Project wiring: settings, URLs, the Celery app and the API platform."""

from .celery import app as celery_app

__all__ = ["celery_app"]
