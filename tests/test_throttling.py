"""API rate limits: counted in the Redis cache, answered 429 beyond them, and no error
when the cache cannot be reached (the request goes through, uncounted)."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from redis.exceptions import ConnectionError as RedisConnectionError

from nventory import permissions
from nventory.throttling import FailOpenUserRateThrottle
from tests import factories

pytestmark = pytest.mark.django_db

URL = "/api/v1/locations/"


@pytest.fixture
def api():
    return factories.api_client(
        factories.make_user(username="rate-limited", roles=[permissions.VIEWER])
    )


def test_beyond_its_rate_a_user_is_answered_429_with_retry_after(api, monkeypatch):
    cache.clear()
    monkeypatch.setattr(FailOpenUserRateThrottle, "rate", "2/minute", raising=False)
    answers = [api.get(URL) for _ in range(3)]
    assert [answer.status_code for answer in answers] == [200, 200, 429]
    assert int(answers[2]["Retry-After"]) > 0


def test_with_the_cache_unreachable_the_api_still_answers(api, settings, monkeypatch):
    monkeypatch.setattr(FailOpenUserRateThrottle, "rate", "2/minute", raising=False)
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
        }
    }
    with pytest.raises(RedisConnectionError):
        cache.get("anything")  # the cache really is unreachable
    answers = [api.get(URL) for _ in range(3)]
    assert [answer.status_code for answer in answers] == [200, 200, 200]  # uncounted
