"""SKUs, locations, stock levels, the append-only ledger and reservations.

Only ``inventory.services`` writes ``StockLevel``, ``InventoryEvent`` and ``Reservation``.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class Sku(models.Model):
    code = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=255)
    category = models.CharField(max_length=100, blank=True, db_index=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["code"]
        verbose_name = "SKU"

    def __str__(self) -> str:
        return self.code


class Location(models.Model):
    class Kind(models.TextChoices):
        WAREHOUSE = "warehouse", "Own warehouse"
        THIRD_PARTY = "3pl", "Third-party logistics (3PL)"
        STORE = "store", "Retail store"
        # Stock the marketplace holds and ships (Amazon FBA): only its fulfillable
        # units are ever recorded as on hand.
        MARKETPLACE_FULFILLED = "marketplace", "Marketplace-fulfilled (e.g. Amazon FBA)"

    code = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=255)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.WAREHOUSE)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return self.code


# The largest quantity anywhere in stock: one change (a receipt, an order line, an
# adjustment either way) and each figure of a stock row (on hand, committed, reserved).
# Services refuse beyond it, serializers and webhook parsers validate against it. The
# columns are 32-bit: with figures and changes both within it, no sum of the two can
# overflow them (PostgreSQL's "integer out of range").
MAX_QUANTITY = 1_000_000_000


class StockLevel(models.Model):
    """One SKU at one location: the projection of the ledger, updated with it."""

    sku = models.ForeignKey(Sku, on_delete=models.PROTECT, related_name="stock_levels")
    location = models.ForeignKey(Location, on_delete=models.PROTECT, related_name="stock_levels")
    on_hand = models.IntegerField(default=0)
    committed = models.IntegerField(default=0)
    reserved = models.IntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["sku", "location"], name="stocklevel_one_per_sku_location"
            ),
            # The last guard: even a bug in the services cannot store an impossible level.
            models.CheckConstraint(
                condition=Q(on_hand__gte=0), name="stocklevel_on_hand_not_negative"
            ),
            models.CheckConstraint(
                condition=Q(committed__gte=0), name="stocklevel_committed_not_negative"
            ),
            models.CheckConstraint(
                condition=Q(reserved__gte=0), name="stocklevel_reserved_not_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.sku_id}@{self.location_id}: {self.on_hand}/{self.committed}/{self.reserved}"

    @property
    def available(self) -> int:
        """Units free to sell; negative only after a recorded shortfall (an oversell)."""
        return self.on_hand - self.committed - self.reserved


class EventKind(models.TextChoices):
    RECEIPT = "receipt", "Receipt (purchase order)"
    ADJUSTMENT = "adjustment", "Manual adjustment"
    TRANSFER_OUT = "transfer_out", "Transfer out"
    TRANSFER_IN = "transfer_in", "Transfer in"
    ORDER_COMMITTED = "order_committed", "Order committed"
    ORDER_CANCELLED = "order_cancelled", "Order cancelled"
    SHIPMENT = "shipment", "Shipment"
    RETURN_RESTOCKED = "return_restocked", "Return (restocked)"
    RETURN_DAMAGED = "return_damaged", "Return (damaged, not restocked)"
    RESERVATION_MADE = "reservation_made", "Reservation made"
    RESERVATION_CONFIRMED = "reservation_confirmed", "Reservation confirmed"
    RESERVATION_RELEASED = "reservation_released", "Reservation released"
    RESERVATION_EXPIRED = "reservation_expired", "Reservation expired"
    RECONCILIATION = "reconciliation", "Reconciliation correction"
    # On hand at a marketplace-fulfilled location set to the marketplace's own count
    # (Amazon FBA's fulfillable units): the marketplace holds the stock, its count is the fact.
    MARKETPLACE_COUNT = "marketplace_count", "Marketplace count"


class EventSource(models.TextChoices):
    API = "api", "REST API"
    ADMIN = "admin", "Admin"
    CHANNEL = "channel", "Sales channel"
    SYSTEM = "system", "System (scheduled)"
    RECONCILIATION = "reconciliation", "Reconciliation"
    MARKETPLACE = "marketplace", "Marketplace report (e.g. Amazon FBA)"


class InventoryEvent(models.Model):
    """One change of one stock level. Append-only: never updated, never deleted."""

    kind = models.CharField(max_length=32, choices=EventKind.choices)
    # Few indexes on the ledger: each one is written while the stock row is locked.
    # event_sku_time covers look-ups by SKU.
    # No foreign keys in the database either: each was checked at commit, with the stock
    # row still locked, by a KEY SHARE lock on the SKU's, location's and reservation's rows
    # that every concurrent sale of a hot SKU took too (bench/hot_sku.py at 16 clients:
    # ratio 0.47 with them, 0.53 without). The one statement that writes an event has just
    # updated the stock level of that SKU and location (whose own keys are checked), and the
    # reservation it names is locked by the service; PROTECT still refuses deletions in
    # Django.
    sku = models.ForeignKey(
        Sku, on_delete=models.PROTECT, related_name="events", db_index=False, db_constraint=False
    )
    location = models.ForeignKey(
        Location,
        on_delete=models.PROTECT,
        related_name="events",
        db_index=False,
        db_constraint=False,
    )
    delta_on_hand = models.IntegerField(default=0)
    delta_committed = models.IntegerField(default=0)
    delta_reserved = models.IntegerField(default=0)
    on_hand_after = models.IntegerField()
    committed_after = models.IntegerField()
    reserved_after = models.IntegerField()
    # Units this change took beyond what was available (an order that already happened).
    shortfall = models.PositiveIntegerField(default=0)
    source = models.CharField(max_length=32, choices=EventSource.choices)
    actor = models.CharField(max_length=150, blank=True)
    external_reference = models.CharField(max_length=255, blank=True)
    reason = models.TextField(blank=True)
    reservation = models.ForeignKey(
        "Reservation",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="events",
        db_index=False,
        db_constraint=False,
    )
    idempotency_key = models.CharField(max_length=255)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-id"]
        # Constraints and Meta indexes rather than unique=/db_index=: on PostgreSQL those
        # also build a LIKE (pattern-ops) index, one more write under the row lock.
        constraints = [
            models.UniqueConstraint(
                fields=["idempotency_key"], name="event_idempotency_key_unique"
            ),
        ]
        indexes = [
            models.Index(fields=["external_reference"], name="event_external_reference"),
            models.Index(fields=["sku", "created_at"], name="event_sku_time"),
            models.Index(fields=["kind", "created_at"], name="event_kind_time"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.sku_id}@{self.location_id} ({self.idempotency_key})"

    @property
    def available_after(self) -> int:
        return self.on_hand_after - self.committed_after - self.reserved_after


class Reservation(models.Model):
    """Units held for a checkout or another system until confirmed, released or expired."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        CONFIRMED = "confirmed", "Confirmed (became an order)"
        RELEASED = "released", "Released"
        EXPIRED = "expired", "Expired"

    sku = models.ForeignKey(Sku, on_delete=models.PROTECT, related_name="reservations")
    location = models.ForeignKey(Location, on_delete=models.PROTECT, related_name="reservations")
    quantity = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    expires_at = models.DateTimeField()
    external_reference = models.CharField(max_length=255, blank=True)
    idempotency_key = models.CharField(max_length=255, unique=True)
    # The API client that made it: only that client reads, confirms or releases it through
    # the API (an operator with RELEASE_ANY_RESERVATION releases anyone's). Empty for holds
    # made by the system itself.
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(
                fields=["expires_at"],
                condition=Q(status="active"),
                name="reservation_active_expiry",
            )
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(quantity__gt=0), name="reservation_quantity_positive"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.quantity} x {self.sku_id}@{self.location_id} ({self.status})"


class MarketplaceStock(models.Model):
    """What a marketplace reports it holds of one SKU at a marketplace-fulfilled location.

    Only ``fulfillable`` is sellable, and it is the location's on hand (through the ledger,
    ``services.record_marketplace_count``); the other states are shown, never counted as
    available. Written only by ``inventory.services``.
    """

    sku = models.ForeignKey(Sku, on_delete=models.PROTECT, related_name="marketplace_stock")
    location = models.ForeignKey(
        Location, on_delete=models.PROTECT, related_name="marketplace_stock"
    )
    fulfillable = models.IntegerField(default=0)
    inbound = models.IntegerField(default=0)
    reserved = models.IntegerField(default=0)
    researching = models.IntegerField(default=0)
    unfulfillable = models.IntegerField(default=0)
    future_supply = models.IntegerField(default=0)
    # The marketplace's own breakdown of the states, as it reported it.
    details = models.JSONField(default=dict, blank=True)
    # When the marketplace counted, by its clock: an older report never overwrites a newer.
    counted_at = models.DateTimeField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["sku", "location"]
        constraints = [
            models.UniqueConstraint(
                fields=["sku", "location"], name="marketplacestock_one_per_sku_location"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.sku_id}@{self.location_id}: {self.fulfillable} fulfillable"
