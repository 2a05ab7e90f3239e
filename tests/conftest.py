from __future__ import annotations

import itertools
import os

import pytest
from django.conf import settings

from tests import factories

# The suite's channels point at simulators on loopback, in this process and in the
# processes it starts (end-to-end tests): allowed only with this setting.
os.environ["CHANNELS_ALLOW_LOCAL_HOSTS"] = "1"
settings.CHANNELS_ALLOW_LOCAL_HOSTS = True


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
