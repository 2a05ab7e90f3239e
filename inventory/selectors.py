"""Reads of SKUs, locations, stock and the ledger, shared by the API, dashboard and reconciliation.

Nothing here writes; stock changes go through ``inventory.services``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import Q, QuerySet, Sum

from inventory.models import InventoryEvent, Location, Reservation, Sku, StockLevel
from nventory.errors import NotFound


@dataclass(frozen=True, kw_only=True)
class StockFigures:
    """On hand, committed and reserved units, and what is left to sell."""

    on_hand: int
    committed: int
    reserved: int

    @property
    def available(self) -> int:
        """Negative only after a recorded shortfall (an oversell)."""
        return self.on_hand - self.committed - self.reserved


@dataclass(frozen=True, kw_only=True)
class LocationStock(StockFigures):
    location_code: str
    location_name: str


@dataclass(frozen=True, kw_only=True)
class SkuStock:
    sku_code: str
    locations: tuple[LocationStock, ...]
    totals: StockFigures


def sku_list(*, search: str = "") -> QuerySet[Sku]:
    """SKUs ordered by code; ``search`` matches part of the code or name, any case."""
    skus = Sku.objects.all()
    if search:
        skus = skus.filter(Q(code__icontains=search) | Q(name__icontains=search))
    return skus.order_by("code")


def sku_by_code(*, code: str) -> Sku:
    """The SKU with this code; raises NotFound (404) if there is none."""
    sku = Sku.objects.filter(code=code).first()
    if sku is None:
        raise NotFound(f"SKU {code!r} does not exist.", extra={"sku": code})
    return sku


def location_list() -> QuerySet[Location]:
    """Every location, ordered by code."""
    return Location.objects.order_by("code")


def location_by_code(*, code: str) -> Location:
    """The location with this code; raises NotFound (404) if there is none."""
    location = Location.objects.filter(code=code).first()
    if location is None:
        raise NotFound(f"Location {code!r} does not exist.", extra={"location": code})
    return location


def sku_stock(*, sku: Sku) -> SkuStock:
    """The SKU's figures at every location that has a stock row, and their totals.

    Read without locks: each row is as last committed, which is what a reader may promise.
    """
    levels = (
        StockLevel.objects.filter(sku=sku).select_related("location").order_by("location__code")
    )
    locations = tuple(
        LocationStock(
            location_code=level.location.code,
            location_name=level.location.name,
            on_hand=level.on_hand,
            committed=level.committed,
            reserved=level.reserved,
        )
        for level in levels
    )
    totals = StockFigures(
        on_hand=sum(row.on_hand for row in locations),
        committed=sum(row.committed for row in locations),
        reserved=sum(row.reserved for row in locations),
    )
    return SkuStock(sku_code=sku.code, locations=locations, totals=totals)


def ledger_events(
    *,
    sku_id: int | None = None,
    location_id: int | None = None,
    kind: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    external_reference: str | None = None,
) -> QuerySet[InventoryEvent]:
    """Ledger events, newest first, narrowed by each filter given.

    ``since`` is inclusive and ``until`` exclusive, so consecutive windows never overlap.
    """
    events = InventoryEvent.objects.select_related("sku", "location")
    if sku_id is not None:
        events = events.filter(sku_id=sku_id)
    if location_id is not None:
        events = events.filter(location_id=location_id)
    if kind:
        events = events.filter(kind=kind)
    if since is not None:
        events = events.filter(created_at__gte=since)
    if until is not None:
        events = events.filter(created_at__lt=until)
    if external_reference:
        events = events.filter(external_reference=external_reference)
    return events.order_by("-id")


def reservation_by_id(*, reservation_id: int, owner_id: int | None = None) -> Reservation:
    """The reservation with this id; raises NotFound (404) if there is none, or if
    ``owner_id`` is given and another client made it (the same answer, on purpose)."""
    reservations = Reservation.objects.select_related("sku", "location").filter(pk=reservation_id)
    if owner_id is not None:
        reservations = reservations.filter(owner_id=owner_id)
    reservation = reservations.first()
    if reservation is None:
        raise NotFound(f"Reservation {reservation_id} does not exist.")
    return reservation


def stock_totals_by_sku(*, sku_ids: list[int]) -> dict[int, StockFigures]:
    """Each SKU's figures summed over every location, in one query; a SKU with no stock
    row is left out."""
    rows = (
        StockLevel.objects.filter(sku_id__in=sku_ids)
        .values("sku_id")
        .annotate(on_hand=Sum("on_hand"), committed=Sum("committed"), reserved=Sum("reserved"))
    )
    return {
        row["sku_id"]: StockFigures(
            on_hand=row["on_hand"], committed=row["committed"], reserved=row["reserved"]
        )
        for row in rows
    }
