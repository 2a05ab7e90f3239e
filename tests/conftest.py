from __future__ import annotations

import itertools

import pytest

from tests import factories


@pytest.fixture(scope="session", autouse=True)
def _empty_cache(django_db_setup: None) -> None:
    """The cache (Redis) outlives a test run while the test database does not: counts kept
    under a channel's id (eBay's daily revisions, rate budgets) must not meet a new channel
    that reuses the id in the next run."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture
def sku(db):
    return factories.make_sku()


@pytest.fixture
def location(db):
    return factories.make_location()


@pytest.fixture
def unique_key():
    counter = itertools.count()
    return lambda prefix="key": f"{prefix}-{next(counter)}"
