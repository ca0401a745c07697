from celery.schedules import crontab
from django.conf import settings

# Daily: voucher validity ends at the end of a day in each program's timezone; a voucher
# past it cannot be used anyway (the use checks the date), the job only records it.
SCHEDULE = {
    "rewards-expire-vouchers": {
        "task": "rewards.expire_vouchers",
        "schedule": crontab(hour=settings.REWARDS_EXPIRE_VOUCHERS_HOUR, minute=20),
    },
}
