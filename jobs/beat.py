from celery.schedules import crontab

SCHEDULE = {
    "jobs-requeue-stale": {"task": "jobs.requeue_stale", "schedule": 60.0, "options": {"queue": "jobs"}},
    "jobs-purge": {"task": "jobs.purge", "schedule": crontab(minute=41), "options": {"queue": "jobs"}},
}
