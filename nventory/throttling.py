"""DRF's rate throttles, failing open when the cache (Redis) cannot be reached.

The counters live in the Redis cache. Redis is a convenience here, never the record: with
it down, a stock change through the API must still go through (its pushes are owed in
PostgreSQL and the sweeps find them), not answer 500 because its rate could not be
counted. For as long as Redis is away the API is not rate-limited.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from redis.exceptions import RedisError
from rest_framework.throttling import AnonRateThrottle, UserRateThrottle

if TYPE_CHECKING:
    # Not at run time: rest_framework.views imports the throttle classes named in the
    # settings, these among them.
    from rest_framework.request import Request
    from rest_framework.views import APIView

logger = logging.getLogger(__name__)


class _FailOpen:
    def allow_request(self, request: Request, view: APIView) -> bool:
        try:
            return super().allow_request(request, view)  # type: ignore[misc]
        except RedisError as error:
            logger.warning("API rate not counted (the cache is unreachable): %s", error)
            return True


class FailOpenUserRateThrottle(_FailOpen, UserRateThrottle):
    pass


class FailOpenAnonRateThrottle(_FailOpen, AnonRateThrottle):
    pass
