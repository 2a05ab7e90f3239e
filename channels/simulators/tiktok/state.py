"""A TikTok Shop shop's state: its app credentials, SKUs per warehouse, orders, settings.

Shapes follow ``CHANNEL_APIS.md`` §4; what is marked [M] there is a setting here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from channels.simulators.harness import ControlError, SequencedLog, Tenant

DEFAULT_WAREHOUSE = "7068517275539719942"
# §4.2: "about 7 days" [M].
DEFAULT_TOKEN_TTL_S = 7 * 24 * 3600.0
# §6 "TikTok Shop": a timestamp further than this from the clock is refused [M].
DEFAULT_TIMESTAMP_SKEW_S = 300.0
# §4.3: 0 <= quantity < 99999.
QUANTITY_LIMIT = 99999
# §4.4: ids one inventory search may name.
MAX_SEARCH_SKU_IDS = 600
MAX_SEARCH_PRODUCT_IDS = 100
# §4.1 [M]: statuses in the order an order goes through them.
ORDER_STATUSES = (
    "UNPAID",
    "ON_HOLD",
    "AWAITING_SHIPMENT",
    "PARTIALLY_SHIPPING",
    "AWAITING_COLLECTION",
    "IN_TRANSIT",
    "DELIVERED",
    "COMPLETED",
    "CANCELLED",
)
# Cancellation statuses (202309 return_refund, [V] third-party client types): a request
# pending the seller's or platform's decision, granted (the units come back), withdrawn.
CANCEL_PENDING = "CANCELLATION_REQUEST_PENDING"
CANCEL_SUCCESS = "CANCELLATION_REQUEST_SUCCESS"
CANCEL_WITHDRAWN = "CANCELLATION_REQUEST_CANCEL"
CANCEL_STATUSES = (CANCEL_PENDING, CANCEL_SUCCESS, CANCEL_WITHDRAWN)
# Return statuses and types (202309 return_refund, [V] third-party client types).
RETURN_STATUSES = (
    "RETURN_OR_REFUND_REQUEST_PENDING",
    "RETURN_OR_REFUND_REQUEST_REJECT",
    "AWAITING_BUYER_SHIP",
    "BUYER_SHIPPED_ITEM",
    "REJECT_RECEIVE_PACKAGE",
    "RETURN_OR_REFUND_REQUEST_SUCCESS",
    "RETURN_OR_REFUND_REQUEST_CANCEL",
    "RETURN_OR_REFUND_REQUEST_COMPLETE",
)
RETURN_TYPES = ("REFUND", "RETURN_AND_REFUND", "REPLACEMENT")


@dataclass
class ErrorCodes:
    """§4.5: the envelope's codes are [M]; each can be changed per shop."""

    invalid_sign: int = 106001
    expired_token: int = 105002
    invalid_app_key: int = 106002
    invalid_timestamp: int = 106003
    invalid_shop_cipher: int = 106011
    rate_limited: int = 36009003
    product_not_found: int = 12019001
    sku_not_found: int = 17019002
    sku_not_live: int = 17019001
    quantity_out_of_range: int = 17019003
    warehouse_required: int = 17019004
    warehouse_not_found: int = 17019005
    too_many_ids: int = 36009001
    invalid_body: int = 36009002
    order_not_found: int = 21011001


@dataclass
class ShopSettings:
    shop: str
    app_key: str
    app_secret: str
    shop_id: str = ""
    shop_cipher: str = ""
    # Valid tokens at creation; ``refresh_token`` obtains more (§4.2).
    access_token: str = ""
    refresh_token: str = ""
    token_ttl_s: float = DEFAULT_TOKEN_TTL_S
    timestamp_skew_s: float = DEFAULT_TIMESTAMP_SKEW_S
    webhook_url: str = ""
    # §4.1 [M]: retries of a delivery not answered 2xx, 2**n * base apart.
    webhook_retries: int = 3
    webhook_retry_base_s: float = 5.0
    read_lag_s: float = 0.0
    # Calls a second per shop before 429 (§4.5 [M]: "around 50 QPS"); 0 never throttles.
    qps: int = 0
    # The ``Retry-After`` of a 429 (§4.5 [M]).
    throttle_retry_after_s: int = 1
    # The platform cancels an order not shipped in time (the issue's "auto-cancel of late
    # orders" [M]: the real deadline depends on the order's shipping terms); 0 never does.
    auto_cancel_after_s: float = 0.0
    codes: ErrorCodes = field(default_factory=ErrorCodes)

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> ShopSettings:
        values = dict(body)
        for name in ("shop", "app_key", "app_secret"):
            if not values.get(name):
                raise ControlError(400, f"A shop needs '{name}'.")
        codes = ErrorCodes(**_known(ErrorCodes, values.pop("codes", None) or {}))
        settings = cls(**_known(cls, values) | {"codes": codes})
        settings.shop_id = settings.shop_id or str(7494049642642441621 + len(settings.shop))
        settings.shop_cipher = settings.shop_cipher or f"ROW_{settings.shop}"
        settings.access_token = settings.access_token or f"TTP_{settings.shop}_access"
        settings.refresh_token = settings.refresh_token or f"TTP_{settings.shop}_refresh"
        return settings

    def update(self, body: dict[str, Any]) -> None:
        values = dict(body)
        if "codes" in values:
            codes = values.pop("codes") or {}
            for name, value in _known(ErrorCodes, codes).items():
                setattr(self.codes, name, int(value))
        for name, value in _known(type(self), values).items():
            if name in ("shop", "codes"):
                continue
            setattr(self, name, type(getattr(self, name))(value))

    def public(self) -> dict[str, Any]:
        """Everything but the secret."""
        answer = asdict(self)
        answer.pop("app_secret")
        return answer


def _known(cls: type, values: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    unknown = set(values) - names
    if unknown:
        raise ControlError(400, f"Unknown setting(s): {', '.join(sorted(unknown))}.")
    return values


@dataclass
class WarehouseStock:
    available: int = 0
    committed: int = 0


@dataclass
class Sku:
    sku_id: str
    product_id: str
    seller_sku: str
    # §4.3: only LIVE SKUs take writes.
    status: str = "LIVE"
    warehouses: dict[str, WarehouseStock] = field(default_factory=dict)
    # §4.4: parts of the available stock set aside for campaigns and creators.
    campaign_quantity: int = 0
    creator_quantity: int = 0
    api_writes: int = 0

    def warehouse(self, warehouse_id: str | None) -> WarehouseStock:
        return self.warehouses[warehouse_id or next(iter(self.warehouses))]

    def as_json(self) -> dict[str, Any]:
        return {
            "sku_id": self.sku_id,
            "product_id": self.product_id,
            "seller_sku": self.seller_sku,
            "status": self.status,
            "warehouses": {w: asdict(s) for w, s in self.warehouses.items()},
            "available_quantity": sum(s.available for s in self.warehouses.values()),
            "campaign_quantity": self.campaign_quantity,
            "creator_quantity": self.creator_quantity,
            "api_writes": self.api_writes,
        }


@dataclass
class Order:
    order_id: str
    status: str
    # (line item id, sku id, warehouse id): §4.1 [M], one line item per unit.
    lines: list[tuple[str, str, str]]
    create_time: int
    update_time: int
    # Who cancelled it, when it is cancelled: "SELLER" (by hand) or "SYSTEM" (not shipped
    # in time).
    cancellation_initiator: str = ""
    # Line items a granted partial cancellation took off the order (``display_status``
    # CANCELLED in the order detail); their units went back to the shop.
    cancelled_lines: set[str] = field(default_factory=set)


@dataclass
class Cancellation:
    """A request to cancel some line items of an order (202309 return_refund [M] shape)."""

    cancel_id: str
    order_id: str
    status: str
    line_ids: list[str]
    create_time: int
    update_time: int
    role: str = "BUYER"


@dataclass
class Return:
    """A return or refund request of some line items of an order (202309 return_refund)."""

    return_id: str
    order_id: str
    status: str
    return_type: str
    line_ids: list[str]
    create_time: int
    update_time: int
    role: str = "BUYER"


class Shop(Tenant):
    def __init__(self, settings: ShopSettings, now: float) -> None:
        super().__init__(settings.shop)
        self.settings = settings
        self.read_lag.lag_s = settings.read_lag_s
        self.skus: dict[str, Sku] = {}
        self.orders: dict[str, Order] = {}
        self.cancellations: dict[str, Cancellation] = {}
        self.returns: dict[str, Return] = {}
        # access token -> expiry (epoch seconds on the simulator's clock)
        self.tokens: dict[str, float] = {settings.access_token: now + settings.token_ttl_s}
        self.refresh_tokens: set[str] = {settings.refresh_token}
        self.changes = SequencedLog()
        # Calls answered in the current second (the ``qps`` limit).
        self.second = 0
        self.calls_this_second = 0
        # Viral mode: each burst's progress (``TikTokSimulator.start_viral``).
        self.viral_bursts: list[dict[str, Any]] = []
