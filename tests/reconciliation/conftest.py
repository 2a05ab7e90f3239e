"""Channels on the Shopify simulator, synced, ready to drift."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from channels.models import Channel, Listing, PendingPush, PushAttempt
from channels.pipeline import push, ratelimit
from inventory.models import Location
from tests import factories
from tests.channels.conftest import ShopifySimulatorClient, shopify_simulator  # noqa: F401

_shop_numbers = itertools.count(1)
FIRST_ITEM = 5001


@dataclass
class SimChannel:
    channel: Channel
    shop: str
    location: Location
    listings: list[Listing]
    simulator: ShopifySimulatorClient

    def item(self, listing: Listing) -> int:
        return int(listing.external_id)

    def shown(self) -> dict[int, int]:
        """The channel's figure per listing id."""
        items = self.simulator.items(self.shop)
        return {listing.pk: items[self.item(listing)]["available"] for listing in self.listings}

    def set_on_channel(self, listing: Listing, available: int) -> None:
        """A manual edit on the channel, with no webhook."""
        self.simulator.set_quantity(self.shop, self.item(listing), available, notify=False)

    def writes(self) -> list[dict]:
        return [
            request
            for request in self.simulator.requests(self.shop)
            if "inventorySetQuantities" in request["body"]
        ]


def drain(channel: Channel, timeout_s: float = 15) -> None:
    """Run the pusher until the channel owes nothing (what the Celery task does)."""
    deadline = time.monotonic() + timeout_s
    while PendingPush.objects.filter(channel=channel).exists():
        assert time.monotonic() < deadline, list(PushAttempt.objects.values("outcome", "error"))
        push.push_owed(channel_id=channel.pk)
        time.sleep(0.01)


@pytest.fixture
def make_sim_channel(db, shopify_simulator: ShopifySimulatorClient) -> Callable[..., SimChannel]:  # noqa: F811
    def make(
        *,
        items: int = 4,
        stock: int = 10,
        mode: str = Channel.Mode.ACTIVE,
        location: Location | None = None,
        skus: list | None = None,
        category: str = "Shoes",
        synced: bool = True,
    ) -> SimChannel:
        shop = f"recon-{next(_shop_numbers)}-{time.monotonic_ns()}"
        shopify_simulator.create_shop(
            shop, location_id=1, bucket_size=100_000, restore_rate=100_000
        )
        shopify_simulator.add_items(
            shop,
            [
                {
                    "inventory_item_id": FIRST_ITEM + n,
                    "variant_id": FIRST_ITEM + 1000 + n,
                    "sku": f"S{n}",
                    "available": 0,
                }
                for n in range(items)
            ],
        )
        location = location or factories.make_location()
        channel = factories.make_channel(
            locations=[location],
            slug=shop,
            name=f"Shop {shop}",
            mode=mode,
            api_base_url=shopify_simulator.shop_url(shop),
            credentials={"access_token": f"shpat_{shop}"},
            rate_limit_per_s=10_000,
            platform_settings={"location_id": 1, "retry_base_s": 0.01, "timeout_s": 2},
        )
        ratelimit.reset(channel_id=channel.pk)
        listings = []
        for n in range(items):
            if skus is not None:
                sku = skus[n]
            else:
                sku = factories.make_sku(category=category)
                factories.stock(sku, location, stock)
            listings.append(
                factories.make_listing(
                    channel=channel,
                    sku=sku,
                    external_id=str(FIRST_ITEM + n),
                    extra_identifiers={"variant_id": str(FIRST_ITEM + 1000 + n)},
                )
            )
        if synced:
            # A shadow channel's pusher only reads and logs: nothing is written to it.
            drain(channel)
        return SimChannel(channel, shop, location, listings, shopify_simulator)

    return make
