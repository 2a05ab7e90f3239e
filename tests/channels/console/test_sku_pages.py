"""The SKU search and the SKU page: known figures on the page, bounded queries."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from bundles import services as bundle_services
from channels.models import OversellIncident, PushAttempt
from inventory import services as inventory_services
from inventory.models import InventoryEvent, Location, MarketplaceStock
from tests import factories
from tests.channels.operators import make_operator

pytestmark = pytest.mark.django_db


@pytest.fixture
def viewer_client():
    client = Client()
    client.force_login(make_operator())
    return client


@pytest.fixture
def listed_sku(location):
    """A SKU with 40 on hand listed on two channels; one holds back 25 % and 2 units."""
    sku = factories.make_sku(code="MUG-RED", name="Red mug", category="Mugs")
    factories.stock(sku, location, 40)
    shop = factories.make_channel(locations=[location], name="Shop A", slug="shop-a")
    market = factories.make_channel(locations=[location], name="Market B", slug="market-b")
    factories.make_buffer_rule(channel=market, sku=sku, percent=Decimal(25), fixed_units=2)
    listings = [
        factories.make_listing(channel=shop, sku=sku, external_id="A-1"),
        factories.make_listing(channel=market, sku=sku, external_id="B-1"),
    ]
    return sku, (shop, market), listings


def _history(sku, location, listings, count: int) -> None:
    """``count`` ledger events, pushes and incidents more for the SKU."""
    for _ in range(count):
        factories.stock(sku, location, 1)
    now = timezone.now()
    PushAttempt.objects.bulk_create(
        PushAttempt(
            channel_id=listing.channel_id,
            listing=listing,
            target_quantity=n,
            outcome=PushAttempt.Outcome.APPLIED,
            change_at=now,
            sent_at=now,
            latency_ms=float(100 + n),
        )
        for n in range(count)
        for listing in listings
    )
    for n in range(count):
        event = inventory_services.commit_order(
            sku_id=sku.pk,
            location_id=location.pk,
            quantity=1,
            context=factories.context(),
            allow_shortfall=True,
        )
        OversellIncident.objects.create(
            channel_id=listings[0].channel_id,
            sku=sku,
            listing=listings[0],
            order_reference=f"#{n}",
            shortfall=event.shortfall,
            event=event,
        )


def test_sku_search_finds_by_code_and_shows_totals(viewer_client, listed_sku) -> None:
    factories.make_sku(code="PLATE-1", name="Plate")
    page = viewer_client.get("/dashboard/skus/", {"q": "mug"})
    assert page.status_code == 200
    text = page.content.decode()
    assert "MUG-RED" in text and "PLATE-1" not in text
    assert "<td>40</td>" in text
    rows = viewer_client.get("/dashboard/skus/", {"q": "plate"}, HTTP_HX_REQUEST="true")
    assert rows.content.decode().lstrip().startswith('<div id="sku-rows">')
    assert "PLATE-1" in rows.content.decode()


def test_sku_page_shows_each_channels_figure_and_its_arithmetic(
    viewer_client, listed_sku, location
) -> None:
    sku, _channels, listings = listed_sku
    fba = Location.objects.create(
        code="FBA-US", name="Amazon FBA", kind=Location.Kind.MARKETPLACE_FULFILLED
    )
    factories.stock(sku, fba, 3)
    MarketplaceStock.objects.create(
        sku=sku, location=fba, fulfillable=3, inbound=12, researching=1, counted_at=timezone.now()
    )
    _history(sku, location, listings, 2)
    text = viewer_client.get(f"/dashboard/skus/{sku.code}/").content.decode()
    # 40 + 2 received, 2 sold: ATS 40 at the channels' location.
    assert "hold back 25.00%, rounded down to whole units → 30" in text
    assert "minus 2 fixed units → 28" in text
    assert "<strong>40</strong>" in text and "<strong>28</strong>" in text
    assert "inbound 12" in text and "researching 1" in text
    assert "#1" in text and "101 ms" in text
    assert "Order committed" in text


def test_sku_page_explains_a_bundle_by_its_components(viewer_client, location) -> None:
    cup, saucer = factories.make_sku(code="CUP"), factories.make_sku(code="SAUCER")
    factories.stock(cup, location, 9)
    factories.stock(saucer, location, 4)
    bundle = factories.make_sku(code="CUP-SET")
    bundle_services.set_bom(bundle=bundle, lines=[(cup, 2), (saucer, 1)])
    channel = factories.make_channel(locations=[location])
    factories.make_listing(channel=channel, sku=bundle)
    text = viewer_client.get("/dashboard/skus/CUP-SET/").content.decode()
    assert "Bundle" in text
    assert "<strong>4</strong>" in text


def test_sku_page_queries_do_not_grow_with_its_history(
    viewer_client, listed_sku, location
) -> None:
    sku, _channels, listings = listed_sku
    _history(sku, location, listings, 3)
    viewer_client.get(f"/dashboard/skus/{sku.code}/")  # session and permissions cached
    with CaptureQueriesContext(connection) as few:
        assert viewer_client.get(f"/dashboard/skus/{sku.code}/").status_code == 200
    _history(sku, location, listings, 60)
    assert InventoryEvent.objects.filter(sku=sku).count() > 120
    with CaptureQueriesContext(connection) as many:
        assert viewer_client.get(f"/dashboard/skus/{sku.code}/").status_code == 200
    assert len(many) == len(few)
    assert len(many) <= 30


def test_unknown_sku_is_404_and_pages_need_sign_in(viewer_client) -> None:
    assert viewer_client.get("/dashboard/skus/NOPE/").status_code == 404
    anonymous = Client().get("/dashboard/skus/")
    assert anonymous.status_code == 302
