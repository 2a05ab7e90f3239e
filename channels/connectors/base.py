"""The one small interface every platform connector implements.

A connector turns our absolute quantities into the platform's API calls and the platform's
webhooks into ``WebhookMessage``s. It knows the wire format; it knows nothing about the
outbox, retries or the ledger (``channels.pipeline.push`` and ``channels.pipeline.ingest`` do).
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from channels.models import Channel


class ChannelError(Exception):
    """The channel could not take the call at all (5xx, timeout, connection refused...).

    The whole batch is retried later; ``retry_after_s`` is the channel's own hint, if any.
    """

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ChannelThrottled(ChannelError):
    """The channel's rate limit refused the call (429, Shopify THROTTLED...)."""


class ChannelAuthError(ChannelError):
    """The channel refused our credentials (401/403): retrying will not help soon."""


@dataclass(frozen=True)
class QuantityUpdate:
    """Set one listing's quantity on the channel to an absolute figure."""

    listing_id: int
    # The platform's stock-bearing id (Shopify: the inventory item id, numeric or gid).
    external_id: str
    quantity: int
    # What we expect the channel to hold now; None skips the compare (first push, or
    # a platform without compare-and-set).
    compare_quantity: int | None
    # The same key for a retry of the same write, so a timed-out call is not applied twice.
    idempotency_key: str
    # Per-listing platform identifiers (variant id, location id override...).
    extra_identifiers: Mapping[str, object] = field(default_factory=dict)


class ItemStatus(enum.StrEnum):
    APPLIED = "applied"
    # Compare-and-set failed: the channel held something else (``actual_quantity``).
    STALE = "stale"
    # The channel refused this item for good (unknown item, not stocked at location...).
    REJECTED = "rejected"
    # This item was not applied but may succeed if sent again.
    RETRY = "retry"


@dataclass(frozen=True)
class ItemResult:
    listing_id: int
    status: ItemStatus
    error: str = ""
    # For STALE: the channel's figure, read back, when the connector could read it.
    actual_quantity: int | None = None


@dataclass(frozen=True)
class ListingRef:
    """Enough of a listing for a connector to read its quantity."""

    listing_id: int
    external_id: str
    extra_identifiers: Mapping[str, object] = field(default_factory=dict)


class MessageKind(enum.StrEnum):
    ORDER_PLACED = "order_placed"
    ORDER_CANCELLED = "order_cancelled"
    REFUND = "refund"
    # A quantity changed directly on the channel: drift to correct with the master's figure.
    INVENTORY_CHANGED = "inventory_changed"
    # A topic we do not act on; stored and acknowledged.
    IGNORED = "ignored"


@dataclass(frozen=True)
class MessageLine:
    # Unique within the message (Shopify: the line item id); part of idempotency keys.
    reference: str
    quantity: int
    # Every identifier the platform gave for the line: variant_id, sku, inventory_item_id...
    # Ingest tries them against listings in the connector's ``identifier_order``.
    identifiers: Mapping[str, str]
    # Refunds: whether the units go back to sellable stock.
    restock: bool = False


@dataclass(frozen=True)
class WebhookMessage:
    kind: MessageKind
    # The order (or inventory item) this is about; the ledger's external reference.
    reference: str
    lines: Sequence[MessageLine] = ()
    occurred_at: dt.datetime | None = None
    # Refunds: the refund id, so two refunds of one order are two events.
    sub_reference: str = ""


class WebhookParseError(ValueError):
    """A correctly signed body we cannot understand: quarantined, never dropped."""


@dataclass(frozen=True)
class WebhookEnvelope:
    """What the receiver needs before parsing: the topic and the dedupe key."""

    topic: str
    dedupe_key: str


class Connector:
    """Base class: one instance per channel, built by ``channels.connectors.get_connector``."""

    platform: ClassVar[str]
    # Most items one push call may carry.
    max_batch_size: int = 100
    # Listing identifiers tried, in order, to map a webhook line to a listing
    # ("external_id" means Listing.external_id, "external_sku" Listing.external_sku, any
    # other name a key of Listing.extra_identifiers).
    identifier_order: ClassVar[tuple[str, ...]] = ("external_id", "external_sku")

    def __init__(self, channel: Channel) -> None:
        self.channel = channel

    def push_quantities(self, updates: Sequence[QuantityUpdate]) -> list[ItemResult]:
        """Send a batch (at most ``max_batch_size``); one result per update, in order.

        Raises ``ChannelError`` (or a subclass) when the call as a whole failed.
        """
        raise NotImplementedError

    def read_quantities(self, listings: Sequence[ListingRef]) -> dict[int, int | None]:
        """The channel's current sellable quantity per listing id (None: not found)."""
        raise NotImplementedError

    def verify_webhook(self, headers: Mapping[str, str], body: bytes) -> bool:
        """Check the platform's signature over the raw bytes, in constant time."""
        raise NotImplementedError

    def webhook_envelope(self, headers: Mapping[str, str], body: bytes) -> WebhookEnvelope:
        """Topic and dedupe key, from headers alone where the platform allows."""
        raise NotImplementedError

    def parse_webhook(self, topic: str, body: bytes) -> WebhookMessage:
        """Turn a verified body into a message; ``WebhookParseError`` if it cannot."""
        raise NotImplementedError
