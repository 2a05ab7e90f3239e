"""The read APIs of listings, buffer rules and alerts: nested, paged, filtered, guarded."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from channels.models import Alert, ListingSyncState
from tests import factories
from tests.channels.operators import make_operator

pytestmark = pytest.mark.django_db


@pytest.fixture
def reader():
    client = APIClient()
    client.force_authenticate(make_operator())
    return client


@pytest.fixture
def mapped(location):
    channel = factories.make_channel(locations=[location], slug="shop-a", name="Shop A")
    skus = [factories.make_sku(category="Mugs") for _ in range(3)]
    listings = [factories.make_listing(channel=channel, sku=sku) for sku in skus]
    gap = factories.make_listing(channel=channel, sku=None)
    ListingSyncState.objects.create(
        listing=listings[0], last_pushed_quantity=7, expected_channel_quantity=7
    )
    return channel, skus, listings, gap


def test_listings_come_with_their_channel_sku_and_sync_state(reader, mapped) -> None:
    channel, skus, listings, gap = mapped
    answer = reader.get("/api/v1/listings/", {"channel": "shop-a"})
    assert answer.status_code == 200
    body = answer.json()
    assert body["count"] == 4
    first = body["results"][0]
    assert first["id"] == listings[0].pk
    assert first["channel"] == {
        "id": channel.pk,
        "slug": "shop-a",
        "name": "Shop A",
        "platform": "shopify",
        "mode": "shadow",
    }
    assert first["sku"] == {"code": skus[0].code, "name": skus[0].name, "category": "Mugs"}
    assert first["sync_state"]["last_pushed_quantity"] == 7
    assert body["results"][1]["sync_state"] is None
    gaps = reader.get("/api/v1/listings/", {"mapped": "false"}).json()
    assert [row["id"] for row in gaps["results"]] == [gap.pk]
    assert reader.get("/api/v1/listings/", {"sku": skus[2].code}).json()["count"] == 1


def test_listing_pages_take_a_fixed_number_of_queries(reader, mapped, location) -> None:
    channel = mapped[0]
    for _ in range(20):
        factories.make_listing(channel=channel, sku=factories.make_sku())
    reader.get("/api/v1/listings/", {"limit": 1})  # loads the user's permissions once
    with CaptureQueriesContext(connection) as small:
        assert reader.get("/api/v1/listings/", {"limit": 2}).status_code == 200
    with CaptureQueriesContext(connection) as large:
        assert reader.get("/api/v1/listings/", {"limit": 24}).status_code == 200
    assert len(large) == len(small)


def test_a_misspelt_filter_is_refused(reader, mapped) -> None:
    answer = reader.get("/api/v1/listings/", {"chanel": "shop-a"})
    assert answer.status_code == 400
    assert "chanel" in answer.json()


def test_buffer_rules_by_scope(reader, mapped) -> None:
    channel, skus, listings, _gap = mapped
    factories.make_buffer_rule(channel=channel, percent=Decimal(10))
    factories.make_buffer_rule(channel=channel, sku=skus[0], fixed_units=2)
    factories.make_buffer_rule(channel=channel, listing=listings[1], max_cap=5)
    body = reader.get("/api/v1/buffer-rules/").json()
    assert [row["scope"] for row in body["results"]] == ["channel", "sku", "listing"]
    assert body["results"][0]["percent"] == "10.00"
    assert body["results"][1]["sku"] == skus[0].code
    assert body["results"][2]["listing"] == listings[1].pk
    only_sku = reader.get("/api/v1/buffer-rules/", {"scope": "sku"}).json()
    assert [row["fixed_units"] for row in only_sku["results"]] == [2]


def test_alerts_newest_first_and_the_open_ones(reader, mapped) -> None:
    channel = mapped[0]
    now = timezone.now()
    Alert.objects.create(
        kind=Alert.Kind.BREAKER_OPEN,
        key=f"breaker_open:{channel.pk}",
        channel=channel,
        message="old",
        opened_at=now - dt.timedelta(hours=1),
        cleared_at=now,
    )
    Alert.objects.create(kind=Alert.Kind.OVERSELL, key="oversell:1", message="new", opened_at=now)
    body = reader.get("/api/v1/alerts/").json()
    assert [row["message"] for row in body["results"]] == ["new", "old"]
    assert body["results"][1]["channel"]["slug"] == "shop-a"
    opened = reader.get("/api/v1/alerts/", {"open": "true"}).json()
    assert [row["message"] for row in opened["results"]] == ["new"]


def test_reading_needs_the_view_permission(mapped) -> None:
    from django.contrib.auth.models import User

    client = APIClient()
    client.force_authenticate(User.objects.create_user("nobody", password="x-long-password"))
    for path in ("/api/v1/listings/", "/api/v1/buffer-rules/", "/api/v1/alerts/"):
        assert client.get(path).status_code == 403
    assert APIClient().get("/api/v1/listings/").status_code == 401
