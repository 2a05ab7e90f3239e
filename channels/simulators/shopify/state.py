"""A simulated shop: its settings, inventory items with a level per location, and orders.

Quantity states follow §1.6 (SH14): ``on_hand = available + committed + unavailable``,
unavailable being ``reserved + damaged + quality_control + safety_stock``; ``incoming`` is
counted apart.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from channels.simulators.harness import ControlError, SequencedLog, Tenant

JSON = dict[str, Any]

# The states a level holds; on_hand is derived.
STORED_STATES = (
    "available",
    "committed",
    "incoming",
    "reserved",
    "damaged",
    "quality_control",
    "safety_stock",
)
UNAVAILABLE_STATES = ("reserved", "damaged", "quality_control", "safety_stock")
QUANTITY_NAMES = frozenset((*STORED_STATES, "on_hand"))

_GID = re.compile(r"^gid://shopify/(?P<kind>\w+)/(?P<id>\d+)(?:\?.*)?$")


def gid(kind: str, number: int) -> str:
    return f"gid://shopify/{kind}/{number}"


def level_gid(location_id: int, inventory_item_id: int) -> str:
    return f"gid://shopify/InventoryLevel/{location_id}?inventory_item_id={inventory_item_id}"


def parse_id(value: object, kind: str) -> int | None:
    """A numeric id from a gid of the given kind, or from a bare number; None if neither."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if not isinstance(value, str):
        return None
    if value.isdigit():
        return int(value)
    match = _GID.match(value)
    if match is None or match["kind"] != kind:
        return None
    return int(match["id"])


def parse_gid(value: object) -> tuple[str, int] | None:
    """``(kind, id)`` of any Shopify gid."""
    if not isinstance(value, str):
        return None
    match = _GID.match(value)
    return (match["kind"], int(match["id"])) if match else None


@dataclass
class Level:
    """One inventory item at one location."""

    available: int = 0
    committed: int = 0
    incoming: int = 0
    reserved: int = 0
    damaged: int = 0
    quality_control: int = 0
    safety_stock: int = 0
    created_at: str = ""
    updated_at: str = ""

    @property
    def unavailable(self) -> int:
        return self.reserved + self.damaged + self.quality_control + self.safety_stock

    @property
    def on_hand(self) -> int:
        return self.available + self.committed + self.unavailable

    def quantity(self, name: str) -> int:
        return self.on_hand if name == "on_hand" else int(getattr(self, name))

    def snapshot(self) -> dict[str, int]:
        """Every quantity by name (what a lagging read shows)."""
        values = {name: int(getattr(self, name)) for name in STORED_STATES}
        values["on_hand"] = self.on_hand
        return values

    def as_json(self) -> JSON:
        return self.snapshot() | {"updated_at": self.updated_at}


@dataclass
class Item:
    inventory_item_id: int
    variant_id: int
    sku: str
    product_id: int
    # Stocked at these locations (the shop's primary one at least).
    levels: dict[int, Level]
    tracked: bool = True
    created_at: str = ""

    def as_json(self, primary_location_id: int) -> JSON:
        """The primary location's figures at the top level, as the control API always had."""
        primary = self.levels[primary_location_id]
        answer: JSON = {
            "inventory_item_id": self.inventory_item_id,
            "variant_id": self.variant_id,
            "sku": self.sku,
            "product_id": self.product_id,
            **primary.as_json(),
        }
        others = {
            str(location_id): level.as_json()
            for location_id, level in self.levels.items()
            if location_id != primary_location_id
        }
        if others:
            answer["other_levels"] = others
        return answer


@dataclass
class LineItem:
    id: int
    variant_id: int
    sku: str
    product_id: int
    quantity: int
    refunded: int = 0
    restocked: int = 0

    def as_json(self) -> JSON:
        return {
            "id": self.id,
            "admin_graphql_api_id": gid("LineItem", self.id),
            "product_id": self.product_id,
            "variant_id": self.variant_id,
            "sku": self.sku,
            "title": f"Product {self.sku}",
            "name": f"Product {self.sku}",
            "quantity": self.quantity,
            "fulfillable_quantity": self.quantity,
            "fulfillment_service": "manual",
            "requires_shipping": True,
            "price": "10.00",
        }


@dataclass
class Order:
    id: int
    name: str
    created_at: str
    line_items: list[LineItem]
    cancelled_at: str | None = None
    # Refunds as their refunds/create payloads, in the order made.
    refunds: list[JSON] = field(default_factory=list)

    @property
    def updated_at(self) -> str:
        moments = [self.created_at, self.cancelled_at or ""]
        moments += [str(refund.get("created_at", "")) for refund in self.refunds]
        return max(moments)

    def as_json(self) -> JSON:
        return {
            "id": self.id,
            "admin_graphql_api_id": gid("Order", self.id),
            "name": self.name,
            "order_number": int(self.name.lstrip("#")),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "cancelled_at": self.cancelled_at,
            "cancel_reason": "customer" if self.cancelled_at else None,
            "financial_status": "paid",
            "fulfillment_status": None,
            "location_id": None,
            "currency": "USD",
            "line_items": [line.as_json() for line in self.line_items],
            "refunds": list(self.refunds),
        }


@dataclass
class ShopSettings:
    shop: str
    access_token: str
    webhook_url: str = ""
    webhook_secret: str = ""
    api_version: str = "2026-01"
    # The primary location: the one orders, restocks and the control API's figures use.
    location_id: int = 1
    # Other locations the shop has (items can be stocked there too).
    other_location_ids: list[int] = field(default_factory=list)
    bucket_size: float = 1000.0
    restore_rate: float = 100.0
    # 200 (Shopify's usual answer) or 429, §1.4.
    throttle_status: int = 200
    max_quantities_per_call: int = 250
    webhook_retry_base_s: float = 1.0
    # Send inventory_levels/update for every change of an item's available quantity, ours
    # and the API's alike, as Shopify does to a shop subscribed to that topic; each is sent
    # from the pool, so it may reach the receiver before or after the order behind it.
    level_webhooks: bool = False
    # Reads (GraphQL queries) show quantities as they were this long ago (§6).
    read_lag_s: float = 0.0
    # Inventory items the shop answers garbage about (a poison item): a write of one is
    # answered as stale, as if the shop held another figure, and a read shows a quantity
    # that is not a number.
    garbage_item_ids: list[int] = field(default_factory=list)

    @classmethod
    def from_json(cls, body: Mapping[str, object]) -> ShopSettings:
        if not isinstance(body.get("shop"), str) or not body["shop"]:
            raise ControlError(400, "'shop' is required.")
        if not isinstance(body.get("access_token"), str):
            raise ControlError(400, "'access_token' is required.")
        settings = cls(shop=str(body["shop"]), access_token=str(body["access_token"]))
        settings.update({k: v for k, v in body.items() if k not in ("shop", "access_token")})
        return settings

    def update(self, body: Mapping[str, object]) -> None:
        known = {f.name for f in fields(self)} - {"shop"}
        unknown = set(body) - known
        if unknown:
            raise ControlError(400, f"Unknown shop settings: {sorted(unknown)}.")
        defaults = ShopSettings(shop="", access_token="")
        for name, value in body.items():
            if name == "level_webhooks" and not isinstance(value, bool):
                raise ControlError(400, "'level_webhooks' is true or false.")
            if name == "throttle_status" and value not in (200, 429):
                raise ControlError(400, "'throttle_status' is 200 or 429.")
            try:
                if name == "location_id":
                    converted: Any = parse_id(value, "Location")
                    if converted is None:
                        raise ValueError
                elif name == "other_location_ids":
                    if not isinstance(value, list):
                        raise ValueError
                    converted = [parse_id(v, "Location") for v in value]
                    if None in converted:
                        raise ValueError
                elif name == "garbage_item_ids":
                    if not isinstance(value, list):
                        raise ValueError
                    converted = [parse_id(v, "InventoryItem") for v in value]
                    if None in converted:
                        raise ValueError
                else:
                    converted = type(getattr(defaults, name))(value)
                    if isinstance(converted, float) and not math.isfinite(converted):
                        raise ValueError
            except (TypeError, ValueError):
                raise ControlError(400, f"Bad value for {name!r}: {value!r}.") from None
            setattr(self, name, converted)

    def public(self) -> JSON:
        return asdict(self) | {"access_token": "***", "webhook_secret": "***"}


class Shop(Tenant):
    def __init__(self, settings: ShopSettings, now: float) -> None:
        super().__init__(settings.shop)
        self.settings = settings
        self.items: dict[int, Item] = {}
        self.by_variant: dict[int, Item] = {}
        self.orders: dict[int, Order] = {}
        # key -> (fingerprint of the arguments, the first call's payload)
        self.idempotent_results: dict[str, tuple[str, Any]] = {}
        self.changes = SequencedLog()
        self.bucket_available = settings.bucket_size
        self.bucket_updated = now
        self.read_lag.lag_s = settings.read_lag_s

    @property
    def domain(self) -> str:
        return f"{self.settings.shop}.myshopify.com"

    @property
    def location_ids(self) -> list[int]:
        return [self.settings.location_id, *self.settings.other_location_ids]

    def add_item(self, item: Item) -> None:
        old = self.items.get(item.inventory_item_id)
        if old is not None and self.by_variant.get(old.variant_id) is old:
            del self.by_variant[old.variant_id]
        self.items[item.inventory_item_id] = item
        self.by_variant[item.variant_id] = item

    def refill_bucket(self, now: float) -> None:
        # max(): a clock put back by a reset must not drain the bucket.
        elapsed = max(0.0, now - self.bucket_updated)
        self.bucket_available = min(
            self.settings.bucket_size,
            self.bucket_available + elapsed * self.settings.restore_rate,
        )
        self.bucket_updated = now

    def throttle_status(self) -> JSON:
        return {
            "maximumAvailable": float(self.settings.bucket_size),
            "currentlyAvailable": math.floor(self.bucket_available),
            "restoreRate": float(self.settings.restore_rate),
        }
