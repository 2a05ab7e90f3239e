from __future__ import annotations

import itertools

import pytest

from tests import factories


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
