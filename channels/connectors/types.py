"""The values that cross the connector boundary: frozen, platform-neutral.

The pipeline speaks only these; each connector translates them to and from its platform's
wire format.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


class Capability(enum.StrEnum):
    """What a platform can do; the pipeline asks, never assumes (no platform names)."""

    # A write can carry the figure the channel is expected to hold, and is refused (STALE)
    # when it holds another: a sale on the channel is never written over unseen. Without
    # it a write is absolute, and the push recomputes from the master at send time.
    COMPARE_AND_SET = "compare_and_set"
    # A write is only accepted at first (a feed, a job): applied later, or never. Items come
    # back PENDING with a submission id, and ``read_submissions`` settles them.
    ASYNC_WRITES = "async_writes"
    # Order and stock events arrive as signed HTTP deliveries to the webhook receiver.
    HTTP_WEBHOOKS = "http_webhooks"
    # Order and stock events are pulled from a queue (``pull_notifications``).
    QUEUE_NOTIFICATIONS = "queue_notifications"
    # An order notification carries no lines: the connector fetches the order
    # (``fetch_order``), or the refund it names (``fetch_refund``), before it can be
    # ingested.
    ORDER_LOOKUP = "order_lookup"
    # The channel reports its own stock changes (inventory-level messages), which ingest
    # compares with what it expects the channel to hold.
    LEVEL_MESSAGES = "level_messages"
    # The channel lists the orders changed since a moment (``poll_orders``): the backup
    # for an order event that never arrived.
    ORDER_POLL = "order_poll"
    # The channel holds and ships stock of its own (Amazon FBA): it reports its counts
    # (``read_marketplace_stock``, and MARKETPLACE_STOCK messages), which are read into
    # the channel's marketplace locations and never pushed.
    MARKETPLACE_STOCK = "marketplace_stock"
    # The channel holds a figure per master location (ship nodes, warehouses) rather than
    # one per listing: a write carries each of the channel's locations' figures
    # (``QuantityUpdate.location_quantities``) and the listing's figure is their sum. A
    # connector may declare it per channel (only where several locations are mapped), so
    # a channel with one figure per listing pays nothing for it.
    LOCATION_QUANTITIES = "location_quantities"


@dataclass(frozen=True)
class QuantityUpdate:
    """Set one listing's quantity on the channel to an absolute figure."""

    listing_id: int
    # The platform's stock-bearing id (Shopify: the inventory item id, numeric or gid).
    external_id: str
    quantity: int
    # What the channel is expected to hold now; None skips the compare (first push, or a
    # platform without COMPARE_AND_SET: the pipeline never sends one there).
    compare_quantity: int | None
    # The same key for a retry of the same write, so a timed-out call is not applied twice.
    idempotency_key: str
    # Per-listing platform identifiers (variant id, location id override...).
    extra_identifiers: Mapping[str, object] = field(default_factory=dict)
    # LOCATION_QUANTITIES: the figure of each of the channel's locations, by location code
    # (``quantity`` is their sum); empty for any other channel.
    location_quantities: Mapping[str, int] = field(default_factory=dict)


class ItemStatus(enum.StrEnum):
    APPLIED = "applied"
    # Compare-and-set failed: the channel held something else (``actual_quantity``).
    STALE = "stale"
    # The channel refused this item for good (unknown item, not stocked at location...).
    REJECTED = "rejected"
    # This item was not applied but may succeed if sent again.
    RETRY = "retry"
    # Accepted by an asynchronous write, not applied yet (``submission_id`` says where to
    # ask); never drift while it waits.
    PENDING = "pending"
    # Not sent: the platform would not take it before ``hold_until`` (a daily revision cap
    # reached or near). Owed again then with whatever figure is newest, no attempt counted,
    # and shown to the operator with its reason meanwhile.
    HELD = "held"


@dataclass(frozen=True)
class ItemResult:
    listing_id: int
    status: ItemStatus
    error: str = ""
    # For STALE: the channel's figure, read back, when the connector could read it.
    actual_quantity: int | None = None
    # For PENDING: the platform's handle on the submission (feed id, job id).
    submission_id: str = ""
    # For HELD: when the platform will take the item again.
    hold_until: dt.datetime | None = None


@dataclass(frozen=True)
class Hold:
    """Why an update is not sent now, and when it can be."""

    until: dt.datetime
    reason: str


@dataclass(frozen=True)
class RateBudget:
    """What a platform's latest answer said is left of its rate limit."""

    # Calls it will still take before it refuses (429).
    remaining_calls: int
    # Seconds until it grants more.
    refill_in_s: float


@dataclass(frozen=True)
class ListingRef:
    """Enough of a listing for a connector to read its quantity."""

    listing_id: int
    external_id: str
    extra_identifiers: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class SubmissionRef:
    """One item of an asynchronous write, as ``read_submissions`` is asked about it."""

    listing_id: int
    submission_id: str
    external_id: str
    quantity: int


class MessageKind(enum.StrEnum):
    ORDER_PLACED = "order_placed"
    ORDER_CANCELLED = "order_cancelled"
    REFUND = "refund"
    # A quantity changed directly on the channel: drift to correct with the master's figure.
    INVENTORY_CHANGED = "inventory_changed"
    # The channel's count of stock it holds itself (``WebhookMessage.stock_counts``).
    MARKETPLACE_STOCK = "marketplace_stock"
    # The channel finished processing asynchronous writes (a feed): settle them now.
    WRITES_FINISHED = "writes_finished"
    # The seller withdrew the channel's authorization: pushes would only be refused, so the
    # channel is paused and an operator told, until it is authorized again.
    AUTHORIZATION_REVOKED = "authorization_revoked"
    # The channel's authorization ends soon: an operator is told; pushes go on meanwhile.
    AUTHORIZATION_EXPIRING = "authorization_expiring"
    # A topic not acted on; stored and acknowledged.
    IGNORED = "ignored"


class StockEffect(enum.StrEnum):
    """What a refunded or returned line does to stock, whatever the platform calls it."""

    # Units never shipped: the commitment is released.
    RELEASE = "release"
    # Units shipped and sent back into sellable stock.
    RETURN = "return"
    # Money back only (or units not restocked): no stock moves.
    NONE = "none"


@dataclass(frozen=True)
class MessageLine:
    # Unique within the message (Shopify: the line item id); part of idempotency keys.
    reference: str
    quantity: int
    # Every identifier the platform gave for the line: variant_id, sku, inventory_item_id...
    # Ingest tries them against listings in the connector's ``identifier_order``.
    identifiers: Mapping[str, str]
    # Refunds and returns: what the line does to stock.
    stock_effect: StockEffect = StockEffect.NONE
    # Why the line cannot be used ("" when it can): recorded for an operator, while the
    # message's other lines are applied.
    problem: str = ""


@dataclass(frozen=True)
class MarketplaceStockCount:
    """The channel's count of one item it holds and ships itself (Amazon FBA).

    Only ``fulfillable`` can be sold; the other states are for operators to see.
    """

    # The item as the channel's listings know it (the seller SKU).
    external_sku: str
    # The channel's region the stock is held for (Amazon's marketplace id).
    marketplace_id: str
    fulfillable: int
    counted_at: dt.datetime
    inbound: int = 0
    reserved: int = 0
    researching: int = 0
    unfulfillable: int = 0
    future_supply: int = 0
    details: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class WebhookMessage:
    kind: MessageKind
    # The order (or inventory item) this is about; the ledger's external reference.
    reference: str
    lines: Sequence[MessageLine] = ()
    occurred_at: dt.datetime | None = None
    # Refunds: the refund id, so two refunds of one order are two events.
    sub_reference: str = ""
    # MARKETPLACE_STOCK: the counts the message carries.
    stock_counts: Sequence[MarketplaceStockCount] = ()


class WebhookParseError(ValueError):
    """A correctly signed body that cannot be understood: quarantined, never dropped."""


@dataclass(frozen=True)
class WebhookEnvelope:
    """What the receiver needs before parsing: the topic and the dedupe key."""

    topic: str
    dedupe_key: str


@dataclass(frozen=True)
class PulledNotification:
    """One message taken from a platform's notification queue (QUEUE_NOTIFICATIONS), or
    read from its orders (ORDER_POLL), in the form its event parser reads."""

    topic: str
    # The platform's own message id: a message delivered twice is stored once.
    dedupe_key: str
    body: bytes
    # Given back to the queue once the message is stored, so it is not delivered again
    # ("" for a polled order: there is nothing to give back).
    receipt_handle: str
    headers: Mapping[str, str] = field(default_factory=dict)
