"""Bundles through the sync pipeline: the cascade, pushed quantities, webhook orders."""

from __future__ import annotations

import itertools
import json
import time

import pytest

from channels import selectors
from channels.models import Channel, OversellIncident, PendingPush
from channels.pipeline import ingest, ratelimit, receive
from inventory import services
from tests import factories
from tests.bundles.helpers import figures, make_bundle
from tests.channels.test_push import drain, shown

_shops = itertools.count(1)


@pytest.fixture
def location(db):
    return factories.make_location()


@pytest.fixture
def parts(location):
    """A (4 units) and B (9 units); GIFT = 2 A + 1 B; MEGA = GIFT + 1 B (nested)."""
    a, b = factories.make_sku(code="PART-A"), factories.make_sku(code="PART-B")
    factories.stock(a, location, 4)
    factories.stock(b, location, 9)
    gift = make_bundle((a, 2), (b, 1), code="GIFT")
    mega = make_bundle((gift, 1), (b, 1), code="MEGA")
    return a, b, gift, mega


def wire(simulator, location, skus, **fields) -> Channel:
    shop = f"bundle-{next(_shops)}-{time.monotonic_ns()}"
    simulator.create_shop(shop, location_id=1, webhook_url="http://127.0.0.1:9/")
    simulator.add_items(
        shop,
        [
            {
                "inventory_item_id": 7000 + n,
                "variant_id": 8000 + n,
                "sku": sku.code,
                "available": 0,
            }
            for n, sku in enumerate(skus)
        ],
    )
    channel = factories.make_channel(
        locations=[location],
        slug=shop,
        mode=Channel.Mode.ACTIVE,
        api_base_url=simulator.shop_url(shop),
        credentials={"access_token": f"shpat_{shop}"},
        rate_limit_per_s=1000,
        platform_settings={"location_id": 1, "retry_base_s": 0.01},
        **fields,
    )
    ratelimit.reset(channel_id=channel.pk)
    for n, sku in enumerate(skus):
        factories.make_listing(
            channel=channel,
            sku=sku,
            external_id=str(7000 + n),
            external_sku=sku.code,
            extra_identifiers={"variant_id": str(8000 + n)},
        )
    return channel


def test_a_component_change_owes_every_containing_bundle_listing_a_push(location, parts):
    a, _b, _gift, _mega = parts
    channel = factories.make_channel(locations=[location])
    listings = {sku.code: factories.make_listing(channel=channel, sku=sku) for sku in parts}
    PendingPush.objects.all().delete()

    factories.stock(a, location, 1)  # one statement: A, and GIFT and MEGA through nesting
    owed = set(PendingPush.objects.values_list("listing_id", flat=True))
    assert owed == {listings[code].pk for code in ("PART-A", "GIFT", "MEGA")}


def test_a_bom_change_owes_the_bundle_and_its_containers_a_push(location, parts):
    a, b, gift, _mega = parts
    channel = factories.make_channel(locations=[location])
    listings = {sku.code: factories.make_listing(channel=channel, sku=sku) for sku in parts}
    PendingPush.objects.all().delete()
    from bundles import services as bundle_services

    bundle_services.set_bom(bundle=gift, lines=[(a, 1), (b, 1)])
    owed = set(PendingPush.objects.values_list("listing_id", flat=True))
    assert owed == {listings["GIFT"].pk, listings["MEGA"].pk}


def test_bundles_are_pushed_as_their_scarcest_component_allows_with_buffers(
    location, parts, shopify_simulator
):
    _a, _b, gift, _mega = parts
    channel = wire(shopify_simulator, location, parts)
    factories.make_buffer_rule(channel=channel, sku=gift, fixed_units=1)
    drain(channel)
    # GIFT: min(4 // 2, 9 // 1) = 2, less 1 held back; MEGA: min(4 // 2, 9 // 2) = 2.
    assert shown(shopify_simulator, channel.slug) == {7000: 4, 7001: 9, 7002: 1, 7003: 2}
    explanation = selectors.explain_listing(listing=channel.listings.get(sku=gift))
    labels = [step.label for step in explanation.steps]
    assert labels[0].startswith("PART-A: ATS 4 / 2 per bundle = 2")
    assert explanation.listed == 1


def test_one_component_at_zero_zeroes_every_bundle_containing_it_on_every_channel(
    location, parts, shopify_simulator
):
    a, _b, _gift, _mega = parts
    channels = [wire(shopify_simulator, location, parts) for _ in range(2)]
    for channel in channels:
        drain(channel)
    services.adjust_stock(
        sku_id=a.pk,
        location_id=location.pk,
        delta=-4,
        context=factories.context(reason="cycle count"),
    )
    for channel in channels:
        drain(channel)
        assert shown(shopify_simulator, channel.slug) == {7000: 0, 7001: 9, 7002: 0, 7003: 0}


def _order(channel, payload, topic="orders/create"):
    receipt_id = receive.record_receipt(
        channel_id=channel.pk,
        topic=topic,
        dedupe_key=f"delivery-{time.monotonic_ns()}",
        headers={},
        body=json.dumps(payload).encode(),
    )
    assert receipt_id is not None
    ingest.process_receipt(receipt_id=receipt_id)


def test_a_bundle_order_by_webhook_takes_its_components_and_a_return_restores_them(
    location, parts
):
    a, b, _gift, mega = parts
    channel = factories.make_channel(locations=[location], slug="bundle-orders")
    factories.make_listing(
        channel=channel, sku=mega, external_id="1", extra_identifiers={"variant_id": "99"}
    )
    line = {"id": 5, "variant_id": 99, "sku": "MEGA", "quantity": 1}
    _order(channel, {"id": 42, "line_items": [line]})
    # MEGA = GIFT (2 A + 1 B) + 1 B.
    assert figures(a, location) == (4, 2, 0)
    assert figures(b, location) == (9, 2, 0)
    _order(channel, {"id": 42, "line_items": [line]})  # a second delivery: once only
    assert figures(a, location) == (4, 2, 0)

    refund = {
        "id": 7,
        "order_id": 42,
        "refund_line_items": [
            {
                "id": 1,
                "line_item_id": 5,
                "quantity": 1,
                "restock_type": "cancel",
                "line_item": line,
            }
        ],
    }
    _order(channel, refund, topic="refunds/create")
    assert figures(a, location) == (4, 0, 0)
    assert figures(b, location) == (9, 0, 0)


def test_a_bundle_oversold_by_webhook_records_an_incident_per_short_component(location, parts):
    a, b, gift, _mega = parts
    channel = factories.make_channel(locations=[location], slug="bundle-oversell")
    factories.make_listing(
        channel=channel, sku=gift, external_id="1", extra_identifiers={"variant_id": "77"}
    )
    _order(channel, {"id": 43, "line_items": [{"id": 6, "variant_id": 77, "quantity": 3}]})
    incident = OversellIncident.objects.get()
    assert (incident.sku, incident.shortfall) == (a, 2)  # 6 A sold of 4
    assert figures(b, location) == (9, 3, 0)


def test_a_component_change_wakes_the_channels_that_list_only_its_bundles(location, parts):
    from channels.pipeline import outbox

    a, _b, gift, _mega = parts
    bundle_only = factories.make_channel(locations=[location])
    factories.make_listing(channel=bundle_only, sku=gift)
    factories.stock(a, location, 1)
    assert outbox.channels_owing_for_skus([a.pk]) == {bundle_only.pk}


def test_an_unlisted_sku_is_remembered_until_a_listing_is_saved(location, parts):
    from channels.pipeline import outbox

    _a, b, _gift, _mega = parts
    outbox.forget_unlisted()
    assert outbox.channels_owing_for_skus([b.pk]) == set()
    assert b.pk in outbox._unlisted_until
    channel = factories.make_channel(locations=[location])
    factories.make_listing(channel=channel, sku=b)  # forgets what it remembered
    assert b.pk not in outbox._unlisted_until
    factories.stock(b, location, 1)
    assert outbox.channels_owing_for_skus([b.pk]) == {channel.pk}
