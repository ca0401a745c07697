from celery.schedules import crontab

SCHEDULE = {
    # Hourly: each program is evaluated once its local day reaches TIERS_EVALUATION_LOCAL_HOUR.
    "tiers-evaluate-due": {"task": "tiers.evaluate_due", "schedule": crontab(minute=5)},
}
