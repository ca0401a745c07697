"""Fills the acting integration into django-simple-history records."""

from simple_history.signals import pre_create_historical_record

from .actors import current_actor


def _stamp_integration(sender, history_instance, **kwargs) -> None:
    actor = current_actor()
    if actor is None:
        return
    if hasattr(history_instance, "history_integration_id") and actor.integration_id:
        history_instance.history_integration_id = actor.integration_id
    if actor.user_id and not history_instance.history_user_id:
        history_instance.history_user_id = actor.user_id


def connect() -> None:
    pre_create_historical_record.connect(_stamp_integration, dispatch_uid="audit_actor")
