"""Test data builders; every stock change still goes through the services."""

from __future__ import annotations

import itertools
import uuid

from inventory import services
from inventory.models import Location, Sku

_sequence = itertools.count(1)


def make_sku(**fields) -> Sku:
    number = next(_sequence)
    fields.setdefault("code", f"SKU-{number:05d}")
    fields.setdefault("name", f"Test product {number}")
    return Sku.objects.create(**fields)


def make_location(**fields) -> Location:
    number = next(_sequence)
    fields.setdefault("code", f"WH-{number:03d}")
    fields.setdefault("name", f"Warehouse {number}")
    return Location.objects.create(**fields)


def context(prefix: str = "test", **fields) -> services.EventContext:
    return services.EventContext(idempotency_key=f"{prefix}-{uuid.uuid4()}", **fields)


def stock(sku: Sku, location: Location, on_hand: int) -> None:
    services.receive_stock(
        sku_id=sku.pk, location_id=location.pk, quantity=on_hand, context=context("seed")
    )


def make_channel(*, locations=(), **fields):
    from channels.models import Channel

    number = next(_sequence)
    fields.setdefault("platform", Channel.Platform.SHOPIFY)
    fields.setdefault("name", f"Channel {number}")
    fields.setdefault("slug", f"channel-{number}")
    fields.setdefault("api_base_url", "http://127.0.0.1:9/")
    fields.setdefault("webhook_secret", f"webhook-secret-{number}")
    channel = Channel.objects.create(**fields)
    channel.locations.set(locations)
    return channel


def make_listing(*, channel, sku=None, **fields):
    from channels.models import Listing

    number = next(_sequence)
    fields.setdefault("external_id", f"{number}")
    return Listing.objects.create(channel=channel, sku=sku, **fields)
