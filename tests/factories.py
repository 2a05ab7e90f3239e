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
