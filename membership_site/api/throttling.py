"""Rate limiting per integration: a fixed-window counter in the cache (Redis in
production), so every worker process shares it."""

from __future__ import annotations

import time

from django.conf import settings
from django.core.cache import cache
from rest_framework.throttling import BaseThrottle

_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_rate(rate: str) -> tuple[int, int]:
    """'600/min' -> (600, 60)."""
    count, period = rate.split("/")
    return int(count), _PERIODS[period[0]]


class IntegrationRateThrottle(BaseThrottle):
    def allow_request(self, request, view) -> bool:
        principal = request.auth
        integration = getattr(principal, "integration", None)
        if integration is None:
            return True
        limit, period = parse_rate(integration.rate_limit or settings.API_THROTTLE_RATE)
        now = time.time()
        window = int(now // period)
        key = f"throttle:{integration.pk}:{period}:{window}"
        cache.add(key, 0, timeout=period + 1)
        try:
            count = cache.incr(key)
        except ValueError:  # expired between add and incr: start the window again
            cache.add(key, 1, timeout=period + 1)
            count = 1
        self._wait = period - (now % period)
        return count <= limit

    def wait(self) -> float:
        return self._wait
