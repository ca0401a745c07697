"""Shared abstract models and the historical-record base."""

from django.db import models
from simple_history.models import HistoricalRecords


class TimeStampedModel(models.Model):
    created_at = models.DateTimeField(auto_now_add=True, editable=False)
    updated_at = models.DateTimeField(auto_now=True, editable=False)

    class Meta:
        abstract = True


class AuditedHistoricalModel(models.Model):
    """Base for django-simple-history tables: records the integration that acted.

    ``history_user`` records staff users; API calls have no user, so the integration's id
    is stored here (a plain id, so that every app can use this base whatever it imports).
    """

    history_integration_id = models.BigIntegerField(null=True, blank=True, db_index=True)

    class Meta:
        abstract = True


def history_user(request=None, **kwargs):
    """The staff user for a history row: API requests carry an integration, not a user
    (DRF puts its principal on ``request.user``), so only real users count here."""
    user = getattr(request, "user", None)
    if user is not None and getattr(user, "is_authenticated", False) and hasattr(user, "_meta"):
        return user
    return None


def audited_history(**kwargs) -> HistoricalRecords:
    """``HistoricalRecords`` recording the acting staff user and integration."""
    return HistoricalRecords(bases=[AuditedHistoricalModel], get_user=history_user, **kwargs)
