from celery.schedules import crontab

SCHEDULE = {
    "idempotency-purge": {"task": "integrations.idempotency_purge", "schedule": crontab(minute=17)},
}
