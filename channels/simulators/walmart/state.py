"""A simulated Walmart seller: settings, items, tokens, feeds, orders, the rate bucket.

Quantities follow §3.3 (WM7): ``inputQty`` is what the seller sent, sold-but-unshipped
units included; ``availToSellQty`` what can be bought; ``reservedQty`` sold and not
shipped. Here ``inputQty = availToSellQty + reservedQty``: a PUT sets what can be bought
(the units already sold stay reserved on top of it), an order moves units from available
to reserved, a shipment takes them out of both reserved and input, a cancellation puts
them back to available [M: the docs give the three fields, not the arithmetic].

An item holds these figures per ship node (§3.2/§3.3, WM7): ``DEFAULT`` unless it was
created with, or written at, named nodes. What is not about a given node (a single-node
PUT or read, an order line without a node) is about the item's first node.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from channels.simulators.harness import ControlError, SequencedLog, Tenant

JSON = dict[str, Any]

WEBHOOK_AUTH_METHODS = ("HMAC", "BASIC_AUTH")
DEFAULT_NODE = "DEFAULT"
ORDER_EVENT_STYLES = ("legacy", "ORDER_UPDATES")


@dataclass
class SellerSettings:
    seller: str
    client_id: str
    client_secret: str
    webhook_url: str = ""
    # §3.1: authDetails.authMethod; HMAC signs the body with ``webhook_secret`` in
    # ``webhook_auth_header``; BASIC_AUTH sends Base64(webhook_secret) there, the secret
    # being "user:password".
    webhook_auth_method: str = "HMAC"
    webhook_auth_header: str = "X-Walmart-Signature"
    webhook_secret: str = ""
    # §3.1 / §7.3: hex or base64 is not documented [M].
    webhook_signature_encoding: str = "hex"
    # "legacy": PO_CREATED and PO_LINE_AUTOCANCELLED; "ORDER_UPDATES": the consolidated
    # event with its payload.subEventType (§3.1).
    order_events: str = "legacy"
    webhook_retry_base_s: float = 1.0
    # §3.5: 15 minutes.
    token_ttl_s: float = 900.0
    # §3.2: accepted at once, processed "about 30 minutes" later [M]; RECEIVED until the
    # pickup, INPROGRESS until processed. 0: processed as it is accepted.
    feed_pickup_s: float = 60.0
    feed_processing_s: float = 1800.0
    # §3.2 (WM6): 10 feeds an hour, 5 MB a file.
    feeds_per_hour: int = 10
    max_feed_bytes: int = 5 * 1024 * 1024
    # Feed lines to fail: these SKUs with DATA_ERROR; the next N lines processed with
    # SYSTEM_ERROR / TIMEOUT_ERROR; the next N feeds ERROR as a whole.
    feed_data_error_skus: list[str] = field(default_factory=list)
    feed_system_error_next: int = 0
    feed_timeout_error_next: int = 0
    feed_error_next: int = 0
    # §3.4: a token bucket per seller for the other calls, refilled gradually (WM8).
    bucket_size: float = 1000.0
    refill_per_s: float = 50.0
    # §6: a PUT answered 200 whose GET shows the old figure for this long.
    read_lag_s: float = 0.0
    # The seller's ship nodes: a write to another is refused for that node. Empty: any.
    ship_nodes: list[str] = field(default_factory=list)

    @classmethod
    def from_json(cls, body: Mapping[str, object]) -> SellerSettings:
        for name in ("seller", "client_id", "client_secret"):
            if not isinstance(body.get(name), str) or not body[name]:
                raise ControlError(400, f"{name!r} is required.")
        settings = cls(
            seller=str(body["seller"]),
            client_id=str(body["client_id"]),
            client_secret=str(body["client_secret"]),
        )
        settings.update({k: v for k, v in body.items() if k not in ("seller",)})
        return settings

    def update(self, body: Mapping[str, object]) -> None:
        known = {f.name for f in fields(self)} - {"seller"}
        unknown = set(body) - known
        if unknown:
            raise ControlError(400, f"Unknown seller settings: {sorted(unknown)}.")
        defaults = SellerSettings(seller="", client_id="", client_secret="")
        for name, value in body.items():
            if name == "webhook_auth_method" and value not in WEBHOOK_AUTH_METHODS:
                raise ControlError(400, f"'webhook_auth_method' is one of {WEBHOOK_AUTH_METHODS}.")
            if name == "order_events" and value not in ORDER_EVENT_STYLES:
                raise ControlError(400, f"'order_events' is one of {ORDER_EVENT_STYLES}.")
            if name == "webhook_signature_encoding" and value not in ("hex", "base64"):
                raise ControlError(400, "'webhook_signature_encoding' is hex or base64.")
            try:
                if name in ("feed_data_error_skus", "ship_nodes"):
                    if not isinstance(value, list):
                        raise ValueError
                    converted: Any = [str(sku) for sku in value]
                else:
                    converted = type(getattr(defaults, name))(value)
                    if isinstance(converted, float) and not math.isfinite(converted):
                        raise ValueError
            except (TypeError, ValueError):
                raise ControlError(400, f"Bad value for {name!r}: {value!r}.") from None
            setattr(self, name, converted)

    def public(self) -> JSON:
        answer = asdict(self)
        answer.pop("client_secret")
        answer.pop("webhook_secret")
        return answer


@dataclass
class NodeStock:
    available: int = 0
    reserved: int = 0

    def snapshot(self) -> dict[str, int]:
        return {
            "inputQty": self.available + self.reserved,
            "availToSellQty": self.available,
            "reservedQty": self.reserved,
        }


@dataclass
class Item:
    sku: str
    nodes: dict[str, NodeStock] = field(default_factory=lambda: {DEFAULT_NODE: NodeStock()})
    # Writes through the API (PUT or feed line) applied to this item.
    api_writes: int = 0

    def node_name(self, ship_node: str | None = None) -> str:
        """The node named, else the item's first."""
        return ship_node or next(iter(self.nodes), DEFAULT_NODE)

    def node(self, ship_node: str | None = None) -> NodeStock:
        """The node named (made on first use), else the item's first."""
        return self.nodes.setdefault(self.node_name(ship_node), NodeStock())

    @property
    def available(self) -> int:
        return self.node().available

    @available.setter
    def available(self, value: int) -> None:
        self.node().available = value

    @property
    def reserved(self) -> int:
        return self.node().reserved

    @reserved.setter
    def reserved(self, value: int) -> None:
        self.node().reserved = value

    def as_json(self) -> JSON:
        """Every node's figures, and their sums at the top (one node's, for most items)."""
        snapshots = {name: node.snapshot() for name, node in self.nodes.items()}
        totals = {
            name: sum(snapshot[name] for snapshot in snapshots.values())
            for name in ("inputQty", "availToSellQty", "reservedQty")
        }
        return {"sku": self.sku, **totals, "api_writes": self.api_writes, "nodes": snapshots}


@dataclass
class OrderLine:
    line_number: str
    sku: str
    quantity: int
    # Created, Shipped or Cancelled.
    status: str = "Created"
    # The node the units were sold from.
    ship_node: str = DEFAULT_NODE


@dataclass
class Order:
    purchase_order_id: str
    customer_order_id: str
    order_date_ms: int
    lines: list[OrderLine]
    last_modified_ms: int = 0


@dataclass
class FeedLine:
    index: int
    sku: str
    amount: int
    # Spec 1.5 (multi-node): each node's figure; None for a spec 1.4 line (the first node).
    node_amounts: dict[str, int] | None = None
    # INPROGRESS until processed, then SUCCESS, DATA_ERROR, SYSTEM_ERROR or TIMEOUT_ERROR.
    status: str = "INPROGRESS"
    errors: list[JSON] = field(default_factory=list)


@dataclass
class Feed:
    feed_id: str
    feed_type: str
    submitted_at: float
    lines: list[FeedLine]
    # RECEIVED, INPROGRESS, PROCESSED or ERROR (the last two once processed).
    outcome: str = ""

    def status(self, now: float, pickup_s: float) -> str:
        if self.outcome:
            return self.outcome
        return "INPROGRESS" if now >= self.submitted_at + pickup_s else "RECEIVED"


class Seller(Tenant):
    def __init__(self, settings: SellerSettings, now: float) -> None:
        super().__init__(settings.seller)
        self.settings = settings
        self.read_lag.lag_s = settings.read_lag_s
        self.items: dict[str, Item] = {}
        self.tokens: dict[str, float] = {}
        self.feeds: dict[str, Feed] = {}
        self.feed_times: list[float] = []
        self.orders: dict[str, Order] = {}
        # §3.1: webhook subscriptions by subscriptionId, as Walmart answers them.
        self.subscriptions: dict[str, JSON] = {}
        self.changes = SequencedLog()
        self.bucket = settings.bucket_size
        self.bucket_at = now

    def take_token(self, now: float) -> bool:
        """One call from the seller's bucket (refilled gradually, §3.4); False if empty."""
        size, rate = self.settings.bucket_size, self.settings.refill_per_s
        self.bucket = min(size, self.bucket + (now - self.bucket_at) * rate)
        self.bucket_at = now
        if self.bucket < 1:
            return False
        self.bucket -= 1
        return True

    def seconds_to_next_token(self) -> float:
        rate = self.settings.refill_per_s
        return max(0.0, (1 - self.bucket) / rate) if rate > 0 else 3600.0

    def take_feed_slot(self, now: float) -> float:
        """Count a feed against the hourly limit; 0, or seconds until one is allowed."""
        self.feed_times = [t for t in self.feed_times if t > now - 3600]
        if len(self.feed_times) >= self.settings.feeds_per_hour:
            return self.feed_times[0] + 3600 - now
        self.feed_times.append(now)
        return 0.0
