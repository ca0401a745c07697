"""Deployment checks (``manage.py check --deploy``) for settings Django does not know about."""

from django.conf import settings
from django.core.checks import Warning, register

PROCESS_LOCAL_CACHES = (
    "django.core.cache.backends.locmem.LocMemCache",
    "django.core.cache.backends.dummy.DummyCache",
)


@register(deploy=True)
def shared_cache(app_configs, **kwargs):
    """Rate limits count in the cache: a per-process cache lets every worker process allow
    the full rate."""
    if settings.CACHES["default"]["BACKEND"] in PROCESS_LOCAL_CACHES:
        return [
            Warning(
                "CACHE_URL is not set: rate limits (API_THROTTLE_RATE) are counted per process.",
                hint="Set CACHE_URL to a Redis database shared by all processes, e.g. redis://host:6379/1.",
                id="membership_site.W001",
            )
        ]
    return []
