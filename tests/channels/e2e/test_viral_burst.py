"""A viral burst on TikTok Shop while Shopify, Walmart and eBay sell as usual, over real
HTTP and real processes (gunicorn, a Celery worker, the simulators): the fast version of
``bench/viral_burst.py``.

The TikTok Shop simulator's viral mode places 50 one-unit orders on one SKU at 5 a second;
a buyer buys only what the shop shows. Meanwhile the test buys the same SKU on the three
other channels, each a unit at a time and only while the channel shows one. 80 units cover
all of it, so any oversell incident is a fault of the pipeline (a sale committed twice, a
stock change lost). Expected: each TikTok Shop order committed once; the velocity guard's
rise on TikTok Shop in the SKU's buffer-rule history; every channel, once the pipeline
settles, showing what nventory lists for it (the other channels the master's figure, TikTok
Shop that less the rise). The lag from each stock change to each channel's acknowledgement
is printed, not asserted. ``bench/viral_burst.py`` runs the burst at full size and with
the last units fought over.
"""

from __future__ import annotations

import dataclasses
import threading
import time

import pytest

from channels import selectors
from channels import services as channel_services
from channels.models import (
    BufferRule,
    OversellIncident,
    PendingPush,
    PushAttempt,
    WebhookReceipt,
)
from inventory.models import EventKind, InventoryEvent, StockLevel
from tests import factories
from tests.channels.connectors.drivers import (
    EbayDriver,
    OpenChannel,
    PlatformDriver,
    ShopifyDriver,
    TikTokDriver,
    WalmartDriver,
)
from tests.channels.e2e.conftest import wait_until
from tests.channels.ebay_simulator import ebay_simulator  # noqa: F401
from tests.channels.tiktok_simulator import tiktok_simulator  # noqa: F401
from tests.channels.walmart_simulator import walmart_simulator  # noqa: F401

pytestmark = pytest.mark.slow

STOCK = 80
BURST_ORDERS = 50
BURST_PER_S = 5
OTHER_ORDERS_EACH = 4
# Units of the SKU a minute TikTok Shop may sell before its guard rises.
TIKTOK_LIMIT_PER_MIN = 6


def _percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    if not ordered:
        return "no pushes"
    at = lambda fraction: ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]  # noqa: E731
    return f"p50 {at(0.5):.0f} ms, p99 {at(0.99):.0f} ms, max {ordered[-1]:.0f} ms"


def _buy_while_shown(driver: PlatformDriver, opened: OpenChannel, bought: list[str]) -> None:
    """A buyer a few times a second, buying one unit only while the channel shows one."""
    listing = opened.listings[0]
    for _ in range(OTHER_ORDERS_EACH * 10):
        if len(bought) == OTHER_ORDERS_EACH:
            return
        if (driver.quantity_on_channel(opened, listing) or 0) >= 1:
            bought.append(driver.place_order(opened, listing, 1))
        time.sleep(0.25)


def test_a_viral_burst_on_tiktok_shop_commits_every_order_and_brings_every_channel_down(
    transactional_db,
    nventory_web,
    nventory_worker,
    tiktok_simulator,  # noqa: F811
    shopify_simulator,
    walmart_simulator,  # noqa: F811
    ebay_simulator,  # noqa: F811
):
    location = factories.make_location()
    sku = factories.make_sku()
    factories.stock(sku, location, STOCK)
    tiktok_driver = TikTokDriver(tiktok_simulator)
    others: list[PlatformDriver] = [
        ShopifyDriver(shopify_simulator),
        WalmartDriver(walmart_simulator),
        EbayDriver(ebay_simulator),
    ]
    tiktok = tiktok_driver.open_channel(skus=[sku], location=location, receiver_url=nventory_web)
    channel_services.update_channel(
        channel_id=tiktok.channel.pk,
        fields=dataclasses.replace(
            channel_services.ChannelFields.of(tiktok.channel),
            platform_settings={
                **tiktok.channel.platform_settings,
                "velocity_units_per_min": TIKTOK_LIMIT_PER_MIN,
            },
        ),
    )
    opened = {
        driver: driver.open_channel(skus=[sku], location=location, receiver_url=nventory_web)
        for driver in others
    }
    every = [(tiktok_driver, tiktok), *opened.items()]
    wait_until(
        lambda: all(
            driver.quantity_on_channel(channel, channel.listings[0]) == STOCK
            for driver, channel in every
        ),
        timeout_s=30,
        describe=lambda: "the first push of every channel",
    )
    PushAttempt.objects.all().delete()

    tiktok_simulator.start_viral(
        tiktok.tenant, sku_id=sku.code, orders=BURST_ORDERS, per_s=BURST_PER_S
    )
    bought: dict[PlatformDriver, list[str]] = {driver: [] for driver in others}
    buyers = [
        threading.Thread(target=_buy_while_shown, args=(driver, opened[driver], bought[driver]))
        for driver in others
    ]
    for buyer in buyers:
        buyer.start()
    burst = wait_until(
        lambda: next((b for b in tiktok_simulator.viral_bursts(tiktok.tenant) if b["done"]), None),
        timeout_s=30,
    )
    for buyer in buyers:
        buyer.join()

    def listed(channel: OpenChannel) -> int:
        return selectors.listed_quantities(channel=channel.channel, listings=channel.listings)[
            channel.listings[0].pk
        ]

    def settled() -> bool:
        return (
            not WebhookReceipt.objects.exclude(status=WebhookReceipt.Status.PROCESSED).exists()
            and not PendingPush.objects.exists()
            and all(
                driver.quantity_on_channel(channel, channel.listings[0]) == listed(channel)
                for driver, channel in every
            )
        )

    wait_until(
        settled,
        timeout_s=60,
        describe=lambda: str(
            [
                (channel.channel.slug, driver.quantity_on_channel(channel, channel.listings[0]))
                for driver, channel in every
            ]
        ),
    )

    tiktok_orders = [order_id for order_id, _ in burst["order_ids"]]
    other_orders = [order_id for orders in bought.values() for order_id in orders]
    assert len(tiktok_orders) == burst["placed"] > TIKTOK_LIMIT_PER_MIN
    assert not OversellIncident.objects.exists()
    level = StockLevel.objects.get(sku=sku, location=location)
    assert level.on_hand == STOCK
    assert level.committed == len(tiktok_orders) + len(other_orders)
    committed = InventoryEvent.objects.filter(sku=sku, kind=EventKind.ORDER_COMMITTED)
    assert sorted(
        committed.filter(actor=tiktok.channel.slug).values_list("external_reference", flat=True)
    ) == sorted(tiktok_orders)
    rises = BufferRule.history.filter(
        channel_id=tiktok.channel.pk, sku_id=sku.pk, history_change_reason__contains="holds back"
    ).order_by("history_date")
    assert rises.exists()
    assert all(rise.history_change_reason.startswith("Velocity guard: ") for rise in rises)
    for driver, channel in every:
        shown = driver.quantity_on_channel(channel, channel.listings[0])
        assert shown is not None and shown >= 0
    for _, channel in opened.items():
        assert listed(channel) == STOCK - level.committed
        lags = [
            latency_ms
            for latency_ms in PushAttempt.objects.filter(
                channel=channel.channel, outcome=PushAttempt.Outcome.APPLIED
            ).values_list("latency_ms", flat=True)
            if latency_ms is not None
        ]
        assert lags, f"{channel.channel.slug} was never brought down"
        print(f"{channel.channel.platform}: {len(lags)} pushes, {_percentiles(lags)}")
    print(
        f"TikTok Shop: {burst['placed']} placed, {burst['sold_out']} sold out; others "
        f"{len(other_orders)}; rises {[r.velocity_units for r in rises]}"
    )
