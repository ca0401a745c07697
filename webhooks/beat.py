from celery.schedules import crontab

SCHEDULE = {
    "webhooks-sweep": {"task": "webhooks.sweep", "schedule": 60.0, "options": {"queue": "webhooks"}},
    "events-purge": {
        "task": "webhooks.events_purge",
        "schedule": crontab(hour=3, minute=23),
        "options": {"queue": "webhooks"},
    },
}
