"""The demo's buyers against every platform's simulator: what they order is what each
platform shows, and the provoked burst buys one item everywhere at once."""

from __future__ import annotations

import time

import pytest

from channels.connectors.registry import get_connector
from channels.connectors.types import Capability
from channels.models import PendingPush, PushAttempt
from channels.pipeline import push
from channels.simulators.traffic import SHELVES, Store, TrafficGenerator
from tests import factories
from tests.channels.connectors.drivers import OpenChannel
from tests.channels.connectors.test_contract import DRIVER_FACTORIES

STOCK = (6, 9)


def _drain(opened: OpenChannel) -> None:
    deadline = time.monotonic() + 20
    while PendingPush.objects.filter(channel=opened.channel).exists():
        assert time.monotonic() < deadline
        push.push_owed(channel_id=opened.channel.pk)
        time.sleep(0.02)


@pytest.fixture
def stores(request: pytest.FixtureRequest) -> list[tuple[Store, OpenChannel]]:
    """A tenant on each platform's simulator selling the same two SKUs, pushed to 6 and 9."""
    location = factories.make_location()
    skus = [factories.make_sku() for _ in STOCK]
    for sku, on_hand in zip(skus, STOCK, strict=True):
        factories.stock(sku, location, on_hand)
    opened_stores = []
    for platform in sorted(SHELVES):
        driver = DRIVER_FACTORIES[platform](request)
        opened = driver.open_channel(skus=skus, location=location)
        _drain(opened)
        if get_connector(opened.channel).has(Capability.ASYNC_WRITES):
            driver.settle_submissions_on_the_platform(opened)
        opened_stores.append(
            (Store(platform=platform, url=driver.simulator.url, tenant=opened.tenant), opened)
        )
    return opened_stores


def _shown(generator: TrafficGenerator, store: Store) -> dict[str, int]:
    return {
        store.shelf.code(item): store.shelf.available(item) for item in generator.shelf_of(store)
    }


@pytest.mark.django_db
def test_buyers_order_only_what_each_platform_shows(stores):
    """Every platform's shelf reads as pushed; orders take units off the platform that
    took them, and a platform showing none of an item sells none."""
    generator = TrafficGenerator([store for store, _ in stores], seed=7)
    codes = {listing.sku.code for listing in stores[0][1].listings if listing.sku}
    for store, _ in stores:
        shown = _shown(generator, store)
        assert {code: shown[code] for code in codes} == dict(
            zip(sorted(codes), (6, 9), strict=True)
        ), store.platform
    for _ in range(30):
        generator.place_one_order()
    placed = sum(count for name, count in generator.counts.items() if name.endswith(":orders"))
    assert placed > 0
    left = sum(sum(_shown(generator, store).values()) for store, _ in stores)
    assert left < len(stores) * sum(STOCK)


@pytest.mark.django_db
def test_a_provoked_burst_buys_the_scarcest_item_everywhere_at_once(stores):
    """The burst takes everything each platform shows of the item with the fewest units:
    afterwards no platform shows any of it."""
    generator = TrafficGenerator([store for store, _ in stores], seed=3)
    message = generator.provoke_oversell()
    assert f"on {len(stores)} platforms" in message
    scarce = min(
        (listing.sku for listing in stores[0][1].listings if listing.sku),
        key=lambda sku: STOCK[[listing.sku for listing in stores[0][1].listings].index(sku)],
    )
    for store, _ in stores:
        assert _shown(generator, store)[scarce.code] == 0, store.platform


@pytest.mark.django_db
def test_an_injected_fault_fails_the_platforms_next_write_and_the_push_retries(stores):
    """The fault a demo injects is the simulator's own: each platform's next push after it
    is answered 503 and recorded as failed, then goes through."""
    for store, opened in stores:
        generator = TrafficGenerator([store], seed=1)
        assert store.platform in generator.inject_fault()
        listing = opened.listings[0]
        assert listing.sku is not None
        factories.stock(listing.sku, opened.location, 1)
        push.push_owed(channel_id=opened.channel.pk)
        assert PushAttempt.objects.filter(
            listing=listing, outcome=PushAttempt.Outcome.FAILED
        ).exists(), store.platform


def test_tiktok_buyers_cancel_some_units_and_return_others_through_the_control_routes(
    tiktok_simulator,
):
    """A TikTok Shop order of two units: the buyer's cancellation takes one unit off (a
    partial cancellation, pending and then granted: two type 11 webhooks, the unit back on
    the shelf), and a return walks to complete (type 12 at each status)."""
    shop = f"traffic-{time.monotonic_ns()}"
    tiktok_simulator.create_shop(shop, webhook_url="http://127.0.0.1:9/", webhook_retries=0)
    tiktok_simulator.add_skus(shop, [{"sku_id": "T1", "quantity": 5}])
    store = Store(platform="tiktok", url=tiktok_simulator.url, tenant=shop)
    generator = TrafficGenerator([store], seed=1)
    [item] = generator.shelf_of(store)
    answer = generator.buy(store, item, 2)
    assert answer is not None
    assert generator.cancel(store, answer)
    assert generator.return_units(store, answer)

    def announced(kind: int) -> list[str]:
        return [
            d["payload"]["data"]["cancel_status" if kind == 11 else "return_status"]
            for d in tiktok_simulator.webhooks(shop)
            if d["payload"]["type"] == kind
        ]

    deadline = time.monotonic() + 30
    while len(announced(11)) < 2 or len(announced(12)) < 4:
        assert time.monotonic() < deadline, (announced(11), announced(12))
        time.sleep(0.1)
    assert announced(11) == ["CANCELLATION_REQUEST_PENDING", "CANCELLATION_REQUEST_SUCCESS"]
    assert announced(12)[-1] == "RETURN_OR_REFUND_REQUEST_COMPLETE"
    assert _shown(generator, store) == {"T1": 4}
    assert generator.counts["tiktok:cancelled"] == generator.counts["tiktok:returned"] == 1
