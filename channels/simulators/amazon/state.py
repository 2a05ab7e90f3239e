"""An Amazon seller account as the simulator holds it: listings, FBA stock, feeds, orders.

Facts cite ``CHANNEL_APIS.md`` §2 and §6 "Amazon SP-API" (shared folder); a fact marked [M]
there is a setting here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from channels.simulators.harness import JSON, ControlError, SequencedLog, Tenant

# §2.6: the FBA sub-states getInventorySummaries reports, as the control API sets them.
FBA_FIELDS = (
    "fulfillable",
    "inbound_working",
    "inbound_shipped",
    "inbound_receiving",
    "reserved_pending_customer_order",
    "reserved_pending_transshipment",
    "reserved_fc_processing",
    "researching",
    "unfulfillable_customer_damaged",
    "unfulfillable_warehouse_damaged",
    "unfulfillable_defective",
    "unfulfillable_expired",
    "future_supply_reserved",
    "future_supply_buyable",
)


@dataclass
class SellerSettings:
    seller_id: str
    marketplace_id: str = "ATVPDKIKX0DER"
    client_id: str = ""
    client_secret: str = ""
    refresh_token: str = ""
    # §2.5: expires_in 3600.
    token_lifetime_s: float = 3600.0
    # §6: an ACCEPTED patch applies after this long on the simulator's clock [M].
    patch_apply_delay_s: float = 5.0
    # §2.2: feeds queue, then run; "minutes to tens of minutes" [M].
    feed_queue_s: float = 60.0
    feed_processing_s: float = 120.0
    # A dropped patch (the ``drop`` fault) shows an issue on the listing (else: silence).
    issue_on_drop: bool = True
    # Multiplies every documented rate (a demo at 50 orders/s); bursts stay as documented.
    rate_scale: float = 1.0
    summaries_page_size: int = 50
    # Where the pre-signed document URLs point ("": the host the call was addressed to).
    document_base_url: str = ""
    orders_page_size: int = 100
    # Notifications go to this SQS queue (moto's server mode in tests and make run).
    sqs_queue_url: str = ""
    sqs_endpoint_url: str = ""
    sqs_region: str = "us-east-1"

    @classmethod
    def from_json(cls, body: JSON) -> SellerSettings:
        if not isinstance(body.get("seller_id"), str) or not body["seller_id"]:
            raise ControlError(400, "'seller_id' is required.")
        settings = cls(seller_id=body["seller_id"])
        settings.update({k: v for k, v in body.items() if k not in ("seller_id", "listings")})
        return settings

    def update(self, values: JSON) -> None:
        known = {f.name: type(getattr(self, f.name)) for f in fields(self)}
        for name, value in values.items():
            if name not in known or name == "seller_id":
                raise ControlError(400, f"Unknown seller setting {name!r}.")
            kind = known[name]
            try:
                setattr(self, name, kind(value) if kind is not bool else bool(value))
            except (TypeError, ValueError):
                raise ControlError(400, f"Bad value for {name!r}.") from None

    def public(self) -> JSON:
        shown = asdict(self)
        shown.pop("client_secret")
        return shown


@dataclass
class Patch:
    """An ACCEPTED patch waiting to apply (§2.2: ACCEPTED is not applied)."""

    submission_id: str
    quantity: int
    due_at: float
    dropped: bool = False


@dataclass
class Listing:
    sku: str
    asin: str
    fnsku: str
    product_type: str = "PRODUCT"
    # MFN quantity (fulfillment_channel_code DEFAULT).
    quantity: int = 0
    issues: list[JSON] = field(default_factory=list)
    pending: list[Patch] = field(default_factory=list)
    fba: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FBA_FIELDS, 0))
    fba_updated_at: str = ""
    writes_applied: int = 0

    def as_json(self) -> JSON:
        return {
            "sku": self.sku,
            "asin": self.asin,
            "fnsku": self.fnsku,
            "quantity": self.quantity,
            "issues": list(self.issues),
            "pending": [asdict(patch) for patch in self.pending],
            "fba": dict(self.fba),
            "writes_applied": self.writes_applied,
        }


@dataclass
class Feed:
    feed_id: str
    feed_type: str
    marketplace_ids: list[str]
    input_document_id: str
    created_at: float
    created_iso: str
    status: str = "IN_QUEUE"
    started_iso: str = ""
    done_iso: str = ""
    result_document_id: str = ""
    fatal: bool = False

    def as_json(self) -> JSON:
        body: JSON = {
            "feedId": self.feed_id,
            "feedType": self.feed_type,
            "marketplaceIds": self.marketplace_ids,
            "createdTime": self.created_iso,
            "processingStatus": self.status,
        }
        if self.started_iso:
            body["processingStartTime"] = self.started_iso
        if self.done_iso:
            body["processingEndTime"] = self.done_iso
        if self.result_document_id:
            body["resultFeedDocumentId"] = self.result_document_id
        return body


@dataclass
class Document:
    document_id: str
    content_type: str
    content: bytes = b""
    uploaded: bool = False


@dataclass
class OrderItem:
    order_item_id: str
    sku: str
    asin: str
    quantity: int


@dataclass
class Order:
    order_id: str
    purchase_iso: str
    updated_at: float
    updated_iso: str
    fulfillment_channel: str
    items: list[OrderItem]
    status: str = "Unshipped"
    buyer_requested_cancel: bool = False


class Seller(Tenant):
    def __init__(self, settings: SellerSettings, now: float) -> None:
        super().__init__(settings.seller_id)
        self.settings = settings
        self.listings: dict[str, Listing] = {}
        self.feeds: dict[str, Feed] = {}
        self.documents: dict[str, Document] = {}
        self.orders: dict[str, Order] = {}
        # operation -> (tokens, refilled at)
        self.buckets: dict[str, tuple[float, float]] = {}
        self.notifications = SequencedLog()
        self.changes = SequencedLog()
        # Notifications held back (hold_next), released newest first.
        self.held_notifications: list[tuple[str, bytes, int]] = []
        self.created_at = now

    def take_token(self, operation: str, rate_per_s: float, burst: int, now: float) -> bool:
        """§2.4: a token bucket per operation; whether the call may go ahead (lock held)."""
        tokens, at = self.buckets.get(operation, (float(burst), now))
        tokens = min(float(burst), tokens + (now - at) * rate_per_s * self.settings.rate_scale)
        if tokens < 1:
            self.buckets[operation] = (tokens, now)
            return False
        self.buckets[operation] = (tokens - 1, now)
        return True


def fba_details(listing: Listing) -> JSON:
    """§2.3 / §2.6: ``inventoryDetails`` of one summary."""
    fba = listing.fba
    reserved = (
        fba["reserved_pending_customer_order"]
        + fba["reserved_pending_transshipment"]
        + fba["reserved_fc_processing"]
    )
    unfulfillable = (
        fba["unfulfillable_customer_damaged"]
        + fba["unfulfillable_warehouse_damaged"]
        + fba["unfulfillable_defective"]
        + fba["unfulfillable_expired"]
    )
    return {
        "fulfillableQuantity": fba["fulfillable"],
        "inboundWorkingQuantity": fba["inbound_working"],
        "inboundShippedQuantity": fba["inbound_shipped"],
        "inboundReceivingQuantity": fba["inbound_receiving"],
        "reservedQuantity": {
            "totalReservedQuantity": reserved,
            "pendingCustomerOrderQuantity": fba["reserved_pending_customer_order"],
            "pendingTransshipmentQuantity": fba["reserved_pending_transshipment"],
            "fcProcessingQuantity": fba["reserved_fc_processing"],
        },
        "researchingQuantity": {
            "totalResearchingQuantity": fba["researching"],
            "researchingQuantityBreakdown": [
                {"name": "researchingQuantityInShortTerm", "quantity": fba["researching"]}
            ],
        },
        "unfulfillableQuantity": {
            "totalUnfulfillableQuantity": unfulfillable,
            "customerDamagedQuantity": fba["unfulfillable_customer_damaged"],
            "warehouseDamagedQuantity": fba["unfulfillable_warehouse_damaged"],
            "distributorDamagedQuantity": 0,
            "carrierDamagedQuantity": 0,
            "defectiveQuantity": fba["unfulfillable_defective"],
            "expiredQuantity": fba["unfulfillable_expired"],
        },
        "futureSupplyQuantity": {
            "reservedFutureSupplyQuantity": fba["future_supply_reserved"],
            "futureSupplyBuyableQuantity": fba["future_supply_buyable"],
        },
    }


def fba_total(listing: Listing) -> int:
    fba = listing.fba
    return sum(
        value
        for name, value in fba.items()
        if not name.startswith("future_supply") and name != "researching"
    ) + int(fba["researching"])


def fba_notification_inventory(listing: Listing) -> JSON:
    """§2.1: ``FulfillmentInventory`` of FBA_INVENTORY_AVAILABILITY_CHANGES."""
    fba = listing.fba
    return {
        "InboundQuantityBreakdown": {
            "Working": fba["inbound_working"],
            "Shipped": fba["inbound_shipped"],
            "Receiving": fba["inbound_receiving"],
        },
        "Fulfillable": fba["fulfillable"],
        "Unfulfillable": fba["unfulfillable_customer_damaged"]
        + fba["unfulfillable_warehouse_damaged"]
        + fba["unfulfillable_defective"]
        + fba["unfulfillable_expired"],
        "Researching": fba["researching"],
        "ReservedQuantityBreakdown": {
            "WarehouseProcessing": fba["reserved_fc_processing"],
            "WarehouseTransfer": fba["reserved_pending_transshipment"],
            "PendingCustomerOrder": fba["reserved_pending_customer_order"],
        },
        "FutureSupplyBuyable": fba["future_supply_buyable"],
        "PendingCustomerOrderInTransit": 0,
    }
