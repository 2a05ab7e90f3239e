"""The only code that changes stock.

Every change goes through ``_apply_changes``: one SQL statement that locks the stock rows
in primary-key order (``locks.LOCK_STOCK_LEVELS_SQL``), checks the new levels, writes them
and appends the ledger events, so the ledger and the levels can never disagree and the
row lock is held for that single statement and its commit. CHECK constraints on
``StockLevel`` are the last guard behind the checks here.

Each service is idempotent by key: a repeated key returns the events of the first call
and changes nothing. A key reused for a different change is refused.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from inventory import locks
from inventory.models import (
    EventKind,
    EventSource,
    InventoryEvent,
    Location,
    Reservation,
    Sku,
    StockLevel,
)
from nventory.errors import ApplicationError, Conflict, NotFound


class InsufficientStock(Conflict):
    code = "insufficient_stock"


class InvalidStockChange(Conflict):
    code = "invalid_stock_change"


class IdempotencyKeyReused(Conflict):
    code = "idempotency_key_reused"


@dataclass(frozen=True)
class EventContext:
    """Who and what caused a change; written on every event of the change."""

    idempotency_key: str
    source: str = EventSource.API
    actor: str = ""
    external_reference: str = ""
    reason: str = ""


@dataclass(frozen=True)
class _LevelChange:
    stock_level_id: int
    kind: str
    idempotency_key: str
    delta_on_hand: int = 0
    delta_committed: int = 0
    delta_reserved: int = 0


_APPLY_CHANGES_SQL = f"""
WITH locked AS MATERIALIZED ({locks.LOCK_STOCK_LEVELS_SQL}),
change AS MATERIALIZED (
    SELECT *
    FROM unnest(
        %(ordinals)s::int[], %(stock_level_ids)s::bigint[], %(kinds)s::text[],
        %(deltas_on_hand)s::int[], %(deltas_committed)s::int[], %(deltas_reserved)s::int[],
        %(idempotency_keys)s::text[]
    ) AS c(ordinal, stock_level_id, kind, d_on_hand, d_committed, d_reserved, idempotency_key)
),
proposed AS MATERIALIZED (
    SELECT c.*, l.sku_id, l.location_id,
           l.on_hand - l.committed - l.reserved AS available_before,
           l.on_hand + c.d_on_hand AS on_hand,
           l.committed + c.d_committed AS committed,
           l.reserved + c.d_reserved AS reserved
    FROM change c JOIN locked l ON l.id = c.stock_level_id
),
judged AS MATERIALIZED (
    SELECT p.*,
           GREATEST(0, GREATEST(0, p.committed + p.reserved - p.on_hand)
                       - GREATEST(0, -p.available_before)) AS shortfall,
           (p.on_hand >= 0 AND p.committed >= 0 AND p.reserved >= 0) AS levels_valid
    FROM proposed p
),
verdict AS (
    SELECT count(*) = %(change_count)s
           AND coalesce(bool_and(levels_valid), false)
           AND (%(allow_shortfall)s OR coalesce(bool_and(shortfall = 0), false)) AS accepted
    FROM judged
),
inserted AS (
    INSERT INTO inventory_inventoryevent (
        kind, sku_id, location_id, delta_on_hand, delta_committed, delta_reserved,
        on_hand_after, committed_after, reserved_after, shortfall, source, actor,
        external_reference, reason, reservation_id, idempotency_key, created_at
    )
    SELECT j.kind, j.sku_id, j.location_id, j.d_on_hand, j.d_committed, j.d_reserved,
           j.on_hand, j.committed, j.reserved, j.shortfall, %(source)s, %(actor)s,
           %(external_reference)s, %(reason)s, %(reservation_id)s::bigint,
           j.idempotency_key, now()
    FROM judged j CROSS JOIN verdict v
    WHERE v.accepted
    ORDER BY j.ordinal
    RETURNING id, idempotency_key, created_at
),
updated AS (
    UPDATE inventory_stocklevel s
    SET on_hand = j.on_hand, committed = j.committed, reserved = j.reserved, updated_at = now()
    FROM judged j CROSS JOIN verdict v
    WHERE s.id = j.stock_level_id AND v.accepted
    RETURNING s.id
)
SELECT j.ordinal, j.sku_id, j.location_id, j.on_hand, j.committed, j.reserved,
       j.available_before, j.shortfall, j.levels_valid, v.accepted, i.id, i.created_at
FROM judged j CROSS JOIN verdict v LEFT JOIN inserted i ON i.idempotency_key = j.idempotency_key
ORDER BY j.ordinal
"""


def _apply_changes(
    changes: Sequence[_LevelChange],
    *,
    context: EventContext,
    allow_shortfall: bool = False,
    reservation_id: int | None = None,
) -> list[InventoryEvent]:
    """Apply all changes or none, in one statement; return their ledger events in order.

    Outside a transaction the statement is its own transaction. Inside one, the caller's
    transaction holds the locks until it commits, and a duplicate key raises
    ``IntegrityError`` there (callers in a transaction use fresh keys).
    """
    params: dict[str, Any] = {
        "ordinals": list(range(len(changes))),
        "stock_level_ids": [change.stock_level_id for change in changes],
        "kinds": [str(change.kind) for change in changes],
        "deltas_on_hand": [change.delta_on_hand for change in changes],
        "deltas_committed": [change.delta_committed for change in changes],
        "deltas_reserved": [change.delta_reserved for change in changes],
        "idempotency_keys": [change.idempotency_key for change in changes],
        "change_count": len(changes),
        "allow_shortfall": allow_shortfall,
        "source": str(context.source),
        "actor": context.actor,
        "external_reference": context.external_reference,
        "reason": context.reason,
        "reservation_id": reservation_id,
    }
    try:
        with connection.cursor() as cursor:
            cursor.execute(_APPLY_CHANGES_SQL, params)
            rows = cursor.fetchall()
    except IntegrityError:
        if connection.in_atomic_block:
            raise
        return _replayed_events(changes)
    if not rows or not rows[0][9]:
        _raise_refusal(changes, rows)
    events = []
    for change, row in zip(changes, rows, strict=True):
        (
            _,
            sku_id,
            location_id,
            on_hand,
            committed,
            reserved,
            _,
            shortfall,
            _,
            _,
            event_id,
            created_at,
        ) = row
        events.append(
            InventoryEvent(
                id=event_id,
                kind=change.kind,
                sku_id=sku_id,
                location_id=location_id,
                delta_on_hand=change.delta_on_hand,
                delta_committed=change.delta_committed,
                delta_reserved=change.delta_reserved,
                on_hand_after=on_hand,
                committed_after=committed,
                reserved_after=reserved,
                shortfall=shortfall,
                source=context.source,
                actor=context.actor,
                external_reference=context.external_reference,
                reason=context.reason,
                reservation_id=reservation_id,
                idempotency_key=change.idempotency_key,
                created_at=created_at,
            )
        )
    return events


def _raise_refusal(changes: Sequence[_LevelChange], rows: list[tuple]) -> None:
    if len(rows) != len(changes):
        raise InvalidStockChange("A stock level of this change does not exist.")
    for change, row in zip(changes, rows, strict=True):
        sku_id, location_id, available_before, shortfall, levels_valid = (
            row[1],
            row[2],
            row[6],
            row[7],
            row[8],
        )
        where = {"sku_id": sku_id, "location_id": location_id}
        if not levels_valid:
            raise InvalidStockChange(
                f"{EventKind(change.kind).label} would take a stock figure below zero "
                f"(on hand {row[3]}, committed {row[4]}, reserved {row[5]} after it).",
                extra=where,
            )
        if shortfall:
            requested = shortfall + max(0, available_before)
            raise InsufficientStock(
                f"Only {max(0, available_before)} available; {requested} requested.",
                extra={**where, "available": available_before, "requested": requested},
            )
    raise InvalidStockChange("The change was refused.")


def _replayed_events(changes: Sequence[_LevelChange]) -> list[InventoryEvent]:
    keys = [change.idempotency_key for change in changes]
    existing = {
        event.idempotency_key: event
        for event in InventoryEvent.objects.filter(idempotency_key__in=keys)
    }
    events = []
    for change in changes:
        event = existing.get(change.idempotency_key)
        stock_level = StockLevel.objects.only("sku_id", "location_id").get(
            pk=change.stock_level_id
        )
        same_change = event is not None and (
            event.kind == change.kind
            and event.sku_id == stock_level.sku_id
            and event.location_id == stock_level.location_id
            and event.delta_on_hand == change.delta_on_hand
            and event.delta_committed == change.delta_committed
            and event.delta_reserved == change.delta_reserved
        )
        if not same_change or event is None:
            raise IdempotencyKeyReused(
                f"Idempotency key {change.idempotency_key!r} was already used for a "
                "different change."
            )
        events.append(event)
    return events


def _stock_level_id(*, sku_id: int, location_id: int) -> int:
    """The id of the SKU's stock row at the location, created empty on first use."""
    level_id = (
        StockLevel.objects.filter(sku_id=sku_id, location_id=location_id)
        .values_list("id", flat=True)
        .first()
    )
    if level_id is not None:
        return level_id
    if not Sku.objects.filter(pk=sku_id).exists():
        raise NotFound(f"SKU {sku_id} does not exist.")
    if not Location.objects.filter(pk=location_id).exists():
        raise NotFound(f"Location {location_id} does not exist.")
    StockLevel.objects.bulk_create(
        [StockLevel(sku_id=sku_id, location_id=location_id)], ignore_conflicts=True
    )
    return StockLevel.objects.values_list("id", flat=True).get(
        sku_id=sku_id, location_id=location_id
    )


def _positive(quantity: int) -> int:
    if quantity <= 0:
        raise ApplicationError("Quantity must be a positive whole number.")
    return quantity


def _single_change(
    *,
    sku_id: int,
    location_id: int,
    kind: EventKind,
    context: EventContext,
    delta_on_hand: int = 0,
    delta_committed: int = 0,
    delta_reserved: int = 0,
    allow_shortfall: bool = False,
) -> InventoryEvent:
    change = _LevelChange(
        stock_level_id=_stock_level_id(sku_id=sku_id, location_id=location_id),
        kind=kind,
        idempotency_key=context.idempotency_key,
        delta_on_hand=delta_on_hand,
        delta_committed=delta_committed,
        delta_reserved=delta_reserved,
    )
    [event] = _apply_changes([change], context=context, allow_shortfall=allow_shortfall)
    return event


# -----------------------------------------------------------------------------------------
# Goods in and out
# -----------------------------------------------------------------------------------------


def receive_stock(
    *, sku_id: int, location_id: int, quantity: int, context: EventContext
) -> InventoryEvent:
    """Add received units (a purchase-order receipt) to on hand."""
    return _single_change(
        sku_id=sku_id,
        location_id=location_id,
        kind=EventKind.RECEIPT,
        delta_on_hand=_positive(quantity),
        context=context,
    )


def adjust_stock(
    *, sku_id: int, location_id: int, delta: int, context: EventContext
) -> InventoryEvent:
    """Correct on hand by ``delta`` (a count, a loss); the reason is required.

    A decrease that would take available below zero is refused.
    """
    if delta == 0:
        raise ApplicationError("An adjustment must change the quantity.")
    if not context.reason.strip():
        raise ApplicationError("An adjustment needs a reason.")
    return _single_change(
        sku_id=sku_id,
        location_id=location_id,
        kind=EventKind.ADJUSTMENT,
        delta_on_hand=delta,
        context=context,
    )


def transfer_stock(
    *,
    sku_id: int,
    from_location_id: int,
    to_location_id: int,
    quantity: int,
    context: EventContext,
) -> tuple[InventoryEvent, InventoryEvent]:
    """Move units between locations: both rows locked in pk order, both events or none."""
    _positive(quantity)
    if from_location_id == to_location_id:
        raise ApplicationError("A transfer needs two different locations.")
    out_event, in_event = _apply_changes(
        [
            _LevelChange(
                stock_level_id=_stock_level_id(sku_id=sku_id, location_id=from_location_id),
                kind=EventKind.TRANSFER_OUT,
                idempotency_key=f"{context.idempotency_key}:out",
                delta_on_hand=-quantity,
            ),
            _LevelChange(
                stock_level_id=_stock_level_id(sku_id=sku_id, location_id=to_location_id),
                kind=EventKind.TRANSFER_IN,
                idempotency_key=f"{context.idempotency_key}:in",
                delta_on_hand=quantity,
            ),
        ],
        context=context,
    )
    return out_event, in_event


# -----------------------------------------------------------------------------------------
# Orders
# -----------------------------------------------------------------------------------------


def commit_order(
    *,
    sku_id: int,
    location_id: int,
    quantity: int,
    context: EventContext,
    allow_shortfall: bool = False,
) -> InventoryEvent:
    """Commit sold units; refused (InsufficientStock) if available would go below zero.

    With ``allow_shortfall`` (an order that already happened on a marketplace) the sale is
    recorded anyway and the event's ``shortfall`` says how many units were oversold.
    """
    return _single_change(
        sku_id=sku_id,
        location_id=location_id,
        kind=EventKind.ORDER_COMMITTED,
        delta_committed=_positive(quantity),
        context=context,
        allow_shortfall=allow_shortfall,
    )


def cancel_order(
    *, sku_id: int, location_id: int, quantity: int, context: EventContext
) -> InventoryEvent:
    """Release committed units of a cancelled order back to available."""
    return _single_change(
        sku_id=sku_id,
        location_id=location_id,
        kind=EventKind.ORDER_CANCELLED,
        delta_committed=-_positive(quantity),
        context=context,
    )


def ship_order(
    *, sku_id: int, location_id: int, quantity: int, context: EventContext
) -> InventoryEvent:
    """Shipped units leave both committed and on hand; available does not change."""
    _positive(quantity)
    return _single_change(
        sku_id=sku_id,
        location_id=location_id,
        kind=EventKind.SHIPMENT,
        delta_on_hand=-quantity,
        delta_committed=-quantity,
        context=context,
    )


def return_order(
    *, sku_id: int, location_id: int, quantity: int, restock: bool, context: EventContext
) -> InventoryEvent:
    """Record returned units: restocked ones are added to on hand, damaged ones only logged."""
    _positive(quantity)
    if restock:
        return _single_change(
            sku_id=sku_id,
            location_id=location_id,
            kind=EventKind.RETURN_RESTOCKED,
            delta_on_hand=quantity,
            context=context,
        )
    return _single_change(
        sku_id=sku_id,
        location_id=location_id,
        kind=EventKind.RETURN_DAMAGED,
        context=context,
    )


# -----------------------------------------------------------------------------------------
# Reservations
# -----------------------------------------------------------------------------------------


def reserve_stock(
    *,
    sku_id: int,
    location_id: int,
    quantity: int,
    context: EventContext,
    ttl_s: int | None = None,
) -> Reservation:
    """Hold units until confirmed, released or expired; refused if not available.

    A repeated key returns the first reservation.
    """
    _positive(quantity)
    existing = Reservation.objects.filter(idempotency_key=context.idempotency_key).first()
    if existing is not None:
        return _same_reservation(
            existing, sku_id=sku_id, location_id=location_id, quantity=quantity
        )
    stock_level_id = _stock_level_id(sku_id=sku_id, location_id=location_id)
    ttl = ttl_s if ttl_s is not None else settings.RESERVATION_DEFAULT_TTL_S
    try:
        with transaction.atomic():
            reservation = Reservation.objects.create(
                sku_id=sku_id,
                location_id=location_id,
                quantity=quantity,
                expires_at=timezone.now() + dt.timedelta(seconds=ttl),
                external_reference=context.external_reference,
                idempotency_key=context.idempotency_key,
            )
            _apply_changes(
                [
                    _LevelChange(
                        stock_level_id=stock_level_id,
                        kind=EventKind.RESERVATION_MADE,
                        idempotency_key=f"reservation:{reservation.pk}:made",
                        delta_reserved=quantity,
                    )
                ],
                context=context,
                reservation_id=reservation.pk,
            )
    except IntegrityError:
        existing = Reservation.objects.filter(idempotency_key=context.idempotency_key).first()
        if existing is None:
            raise
        return _same_reservation(
            existing, sku_id=sku_id, location_id=location_id, quantity=quantity
        )
    return reservation


def _same_reservation(
    reservation: Reservation, *, sku_id: int, location_id: int, quantity: int
) -> Reservation:
    if (reservation.sku_id, reservation.location_id, reservation.quantity) != (
        sku_id,
        location_id,
        quantity,
    ):
        raise IdempotencyKeyReused(
            f"Idempotency key {reservation.idempotency_key!r} was already used for a "
            "different reservation."
        )
    return reservation


def _end_reservation(
    *,
    reservation_id: int,
    new_status: Reservation.Status,
    kind: EventKind,
    context: EventContext,
    only_if_expired_by: dt.datetime | None = None,
) -> Reservation:
    with transaction.atomic():
        reservation = locks.lock_reservation(reservation_id)
        if reservation.status == new_status:
            return reservation
        if reservation.status != Reservation.Status.ACTIVE:
            raise Conflict(
                f"Reservation {reservation_id} is already {reservation.status}.",
                extra={"status": reservation.status},
            )
        if only_if_expired_by is not None and reservation.expires_at > only_if_expired_by:
            return reservation
        confirming = new_status == Reservation.Status.CONFIRMED
        _apply_changes(
            [
                _LevelChange(
                    stock_level_id=_stock_level_id(
                        sku_id=reservation.sku_id, location_id=reservation.location_id
                    ),
                    kind=kind,
                    idempotency_key=f"reservation:{reservation.pk}:{new_status}",
                    delta_reserved=-reservation.quantity,
                    delta_committed=reservation.quantity if confirming else 0,
                )
            ],
            context=context,
            reservation_id=reservation.pk,
        )
        reservation.status = new_status
        reservation.save(update_fields=["status", "updated_at"])
        return reservation


def _lookup_reservation(reservation_id: int) -> None:
    if not Reservation.objects.filter(pk=reservation_id).exists():
        raise NotFound(f"Reservation {reservation_id} does not exist.")


def confirm_reservation(*, reservation_id: int, context: EventContext) -> Reservation:
    """Turn held units into a committed order; confirming twice changes nothing."""
    _lookup_reservation(reservation_id)
    return _end_reservation(
        reservation_id=reservation_id,
        new_status=Reservation.Status.CONFIRMED,
        kind=EventKind.RESERVATION_CONFIRMED,
        context=context,
    )


def release_reservation(*, reservation_id: int, context: EventContext) -> Reservation:
    """Give held units back to available; releasing twice changes nothing."""
    _lookup_reservation(reservation_id)
    return _end_reservation(
        reservation_id=reservation_id,
        new_status=Reservation.Status.RELEASED,
        kind=EventKind.RESERVATION_RELEASED,
        context=context,
    )


def expire_reservations(*, now: dt.datetime | None = None) -> int:
    """Release every active reservation past its expiry; return how many expired.

    Safe to run twice at once: each reservation is re-checked under its row lock.
    """
    cutoff = now or timezone.now()
    due = list(
        Reservation.objects.filter(status=Reservation.Status.ACTIVE, expires_at__lte=cutoff)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    expired = 0
    for reservation_id in due:
        try:
            reservation = _end_reservation(
                reservation_id=reservation_id,
                new_status=Reservation.Status.EXPIRED,
                kind=EventKind.RESERVATION_EXPIRED,
                context=EventContext(
                    idempotency_key=f"reservation:{reservation_id}:expired",
                    source=EventSource.SYSTEM,
                    actor="reservation-expiry",
                ),
                only_if_expired_by=cutoff,
            )
        except Conflict:
            continue  # confirmed or released since it was listed
        expired += reservation.status == Reservation.Status.EXPIRED
    return expired
