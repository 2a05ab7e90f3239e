from __future__ import annotations

import itertools
import uuid

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


@pytest.fixture
def api_credentials(db) -> dict[str, str]:
    """Headers that authorise every API operation: today a superuser's DRF token. The one
    place to change when authentication or the API's permissions change."""
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    user = get_user_model().objects.create_superuser(
        username=f"api-root-{uuid.uuid4().hex[:8]}", email="", password=None
    )
    return {"Authorization": f"Token {Token.objects.create(user=user).key}"}


@pytest.fixture
def authorised_api_client(api_credentials):
    """An ``APIClient`` allowed every API operation (``api_credentials``)."""
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=api_credentials["Authorization"])
    return client
