"""A simulated eBay seller: settings, inventory items and their offers, tokens, orders.

Quantities follow §5.2 (EB1): an inventory item holds ``shipToLocationAvailability.quantity``
and each of its offers an ``availableQuantity``; a listing shows ``min(item, offer)``. Only a
PUBLISHED offer has a listing, and a listing may be revised ``revision_cap`` times a calendar
day (§5.2, 250; the day is UTC here [M]).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from channels.simulators.harness import ControlError, SequencedLog, Tenant

JSON = dict[str, Any]
SECONDS_PER_DAY = 86_400


@dataclass
class SellerSettings:
    seller: str
    client_id: str
    client_secret: str
    refresh_token: str = ""
    # §5.1 (EB6): the Trading API keys that sign Platform Notifications (the CertID is
    # the application's client secret).
    dev_id: str = "dev-id"
    # Where Platform Notifications are POSTed (SetNotificationPreferences' ApplicationURL).
    webhook_url: str = ""
    # Where Notification API deliveries go (the destination's endpoint; "": webhook_url),
    # and the verification token its challenge is answered with (EB5).
    notification_url: str = ""
    verification_token: str = ""
    webhook_retry_base_s: float = 1.0
    # §5.5: an access token lasts 7200 s [M].
    token_ttl_s: float = 7200.0
    # §5.2: at most 25 requests a call; 250 revisions a listing a day.
    max_requests_per_call: int = 25
    revision_cap: int = 250
    # §5.4: a daily call quota per API [M: the size is not documented]; 429 once spent.
    daily_call_quota: int = 1_000_000
    # §6: reads showing the figure before a write for this long.
    read_lag_s: float = 0.0

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
        settings.update({k: v for k, v in body.items() if k != "seller"})
        return settings

    def update(self, body: Mapping[str, object]) -> None:
        known = {f.name for f in fields(self)} - {"seller"}
        unknown = set(body) - known
        if unknown:
            raise ControlError(400, f"Unknown seller settings: {sorted(unknown)}.")
        defaults = SellerSettings(seller="", client_id="", client_secret="")
        for name, value in body.items():
            try:
                converted: Any = type(getattr(defaults, name))(value)
                if isinstance(converted, float) and not math.isfinite(converted):
                    raise ValueError
            except (TypeError, ValueError):
                raise ControlError(400, f"Bad value for {name!r}: {value!r}.") from None
            setattr(self, name, converted)

    def public(self) -> JSON:
        answer = asdict(self)
        for secret in ("client_secret", "refresh_token", "verification_token"):
            answer.pop(secret)
        return answer


@dataclass
class Offer:
    offer_id: str
    listing_id: str
    available_quantity: int
    # PUBLISHED or UNPUBLISHED (§5.2: only a published offer takes bulk updates).
    status: str = "PUBLISHED"
    price: str = "19.99"
    # Revisions of its listing per UTC day number.
    revisions: dict[int, int] = field(default_factory=dict)


@dataclass
class Item:
    sku: str
    quantity: int
    offers: list[Offer]
    # Writes through the API that changed something (the contract's count).
    api_writes: int = 0

    def listed(self) -> int | None:
        """What a buyer can buy (§5.2: min(item, offer)), None with no published offer."""
        published = [o.available_quantity for o in self.offers if o.status == "PUBLISHED"]
        return min(self.quantity, *published) if published else None


@dataclass
class OrderLine:
    line_item_id: str
    item_id: str
    transaction_id: str
    sku: str
    quantity: int


@dataclass
class Order:
    order_id: str
    created_at: float
    lines: list[OrderLine]


class Seller(Tenant):
    def __init__(self, settings: SellerSettings) -> None:
        super().__init__(settings.seller)
        self.settings = settings
        self.read_lag.lag_s = settings.read_lag_s
        self.items: dict[str, Item] = {}
        self.tokens: dict[str, float] = {}
        self.orders: dict[str, Order] = {}
        self.changes = SequencedLog()
        # Calls per UTC day number.
        self.calls: dict[int, int] = {}

    def take_call(self, now: float) -> bool:
        """Count one call against the day's quota; False once it is spent (§5.4)."""
        day = int(now // SECONDS_PER_DAY)
        used = self.calls.get(day, 0)
        if used >= self.settings.daily_call_quota:
            return False
        self.calls = {day: used + 1}
        return True
