from celery.schedules import crontab

# Expiry runs hourly: lots expire at local midnight, which is a different UTC hour in
# each program's timezone.
SCHEDULE = {
    "points-expire": {"task": "points.expire", "schedule": crontab(minute=5)},
    "points-release-pending": {"task": "points.release_pending", "schedule": crontab(minute="*/10")},
    "points-expire-holds": {"task": "points.expire_holds", "schedule": crontab(minute="*")},
    "points-expiry-warnings": {"task": "points.expiry_warnings", "schedule": crontab(minute=35)},
    "points-verify-ledger": {"task": "points.verify_ledger", "schedule": crontab(hour=3, minute=45)},
    # Hourly, like expiry: a birthday starts at local midnight, a different UTC hour per program.
    "points-birthday-bonuses": {"task": "points.birthday_bonuses", "schedule": crontab(minute=15)},
}
