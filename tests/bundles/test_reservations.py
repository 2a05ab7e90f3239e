"""Reserving a bundle through the API holds its leaf components, all or none."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from inventory.models import Reservation
from nventory import permissions
from tests import factories
from tests.bundles.helpers import figures, make_bundle

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(db) -> APIClient:
    return factories.api_client(factories.make_user(roles=[permissions.ORDER_CLIENT]))


@pytest.fixture
def kit(location):
    a, b = factories.make_sku(code="KIT-A"), factories.make_sku(code="KIT-B")
    factories.stock(a, location, 5)
    factories.stock(b, location, 3)
    inner = make_bundle((a, 2), code="PAIR-A")
    return a, b, make_bundle((inner, 1), (b, 1), code="KIT")


def reserve(api, location, quantity, key):
    return api.post(
        "/api/v1/reservations/",
        {"sku": "KIT", "location": location.code, "quantity": quantity, "idempotency_key": key},
        format="json",
    )


def test_a_bundle_reservation_holds_its_components_and_confirming_commits_them(api, location, kit):
    a, b, _ = kit
    answer = reserve(api, location, 2, "kit-1")
    assert answer.status_code == 201, answer.content
    assert figures(a, location) == (5, 0, 4)  # 2 kits x PAIR-A (2 A)
    assert figures(b, location) == (3, 0, 2)
    reservation_id = answer.json()["id"]
    assert reserve(api, location, 2, "kit-1").json()["id"] == reservation_id  # replay

    confirmed = api.post(
        f"/api/v1/reservations/{reservation_id}/confirm/", {"idempotency_key": "c-1"}
    )
    assert confirmed.status_code == 200, confirmed.content
    assert figures(a, location) == (5, 4, 0)
    assert figures(b, location) == (3, 2, 0)


def test_a_bundle_reservation_short_of_any_component_is_refused_whole(api, location, kit):
    a, b, _ = kit
    answer = reserve(api, location, 3, "kit-2")  # 6 A of 5
    assert answer.status_code == 409
    assert figures(a, location) == (5, 0, 0)
    assert figures(b, location) == (3, 0, 0)
    assert not Reservation.objects.exists()


def test_releasing_a_bundle_reservation_gives_back_exactly_its_components(api, location, kit):
    a, b, _ = kit
    reservation_id = reserve(api, location, 1, "kit-3").json()["id"]
    released = api.post(
        f"/api/v1/reservations/{reservation_id}/release/", {"idempotency_key": "r-1"}
    )
    assert released.status_code == 200, released.content
    assert figures(a, location) == (5, 0, 0)
    assert figures(b, location) == (3, 0, 0)
