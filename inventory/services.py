"""The only code that changes stock.

Every change goes through ``_apply_changes``: one SQL statement that locks the stock rows
(several rows: in primary-key order, ``locks.LOCK_STOCK_LEVELS_SQL``; one row: by the
UPDATE itself), checks the new levels, writes them and appends the ledger events, so the
ledger and the levels can never disagree and a row lock is held for that single
statement and its commit. CHECK constraints on ``StockLevel`` are the last guard.

A caller that changes several stock rows in one transaction passes them to one
``_apply_changes`` call, so they are locked in primary-key order and cannot deadlock.

Each service is idempotent by key: a repeated key returns the events of the first call
and changes nothing. A key reused for a different change is refused.

The apps above this one, which it may not import, hear of a change through one hook:
``register_stock_listener``. The outbox trigger (``channels``' migrations) owes the
affected listings their pushes inside the change's own statement; the listener only lets
``channels`` wake its pushers once the change commits.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from inventory import locks
from inventory.models import (
    MAX_QUANTITY,
    EventKind,
    EventSource,
    InventoryEvent,
    Location,
    MarketplaceStock,
    Reservation,
    Sku,
    StockLevel,
)
from nventory import prepared_sql
from nventory.db import retried_on_deadlock
from nventory.errors import ApplicationError, Conflict, NotFound


class StockListener(Protocol):
    def __call__(self, *, sku_ids: frozenset[int]) -> None: ...


_stock_listeners: list[StockListener] = []


def register_stock_listener(listener: StockListener) -> None:
    """Call ``listener(sku_ids=...)`` after every stock change is written.

    The one way stock changes reach the apps above this one (channels wakes its pushers),
    which ``inventory`` may not import: they register here from ``AppConfig.ready``. A
    listener runs inside the change's transaction, if any, with the SKU ids it touched;
    it is not called for a replay. Registering the same listener twice registers it once.
    """
    if listener not in _stock_listeners:
        _stock_listeners.append(listener)


# What one unit of a SKU holds in stock: ``(stock-bearing SKU id, units)``. A SKU with no
# stock of its own (a bundle) is expanded by whoever registered here (the bundles app);
# inventory itself knows no bundles.
SkuExpander = Callable[[int, int], "list[tuple[int, int]] | None"]
_sku_expanders: list[SkuExpander] = []


def register_sku_expander(expander: SkuExpander) -> None:
    if expander not in _sku_expanders:
        _sku_expanders.append(expander)


def _stock_held_by(sku_id: int, quantity: int) -> list[tuple[int, int]]:
    for expander in _sku_expanders:
        expanded = expander(sku_id, quantity)
        if expanded:
            return expanded
    return [(sku_id, quantity)]


class InsufficientStock(Conflict):
    code = "insufficient_stock"


class InvalidStockChange(Conflict):
    code = "invalid_stock_change"


class IdempotencyKeyReused(Conflict):
    code = "idempotency_key_reused"


class QuantityOutOfRange(ApplicationError):
    code = "quantity_out_of_range"


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
    sku_id: int
    location_id: int
    kind: str
    idempotency_key: str
    delta_on_hand: int = 0
    delta_committed: int = 0
    delta_reserved: int = 0


# One statement: lock (pk order), judge, write levels and ledger. A change is accepted when
# no figure goes below zero and, unless shortfalls are allowed, available does not drop
# below min(0, what it was): a change may not make an oversell, or an existing one, worse.
_APPLY_CHANGES_SQL = f"""
WITH locked AS MATERIALIZED ({locks.LOCK_STOCK_LEVELS_SQL}),
judged AS MATERIALIZED (
    SELECT c.ordinal, c.kind, c.d_on_hand, c.d_committed, c.d_reserved, c.idempotency_key,
           l.id AS stock_level_id, l.sku_id, l.location_id,
           l.on_hand - l.committed - l.reserved AS available_before,
           l.on_hand + c.d_on_hand AS on_hand,
           l.committed + c.d_committed AS committed,
           l.reserved + c.d_reserved AS reserved
    FROM unnest(
        %(ordinals)s::int[], %(sku_ids)s::bigint[], %(location_ids)s::bigint[],
        %(kinds)s::text[], %(deltas_on_hand)s::int[], %(deltas_committed)s::int[],
        %(deltas_reserved)s::int[], %(idempotency_keys)s::text[]
    ) AS c(ordinal, sku_id, location_id, kind, d_on_hand, d_committed, d_reserved,
           idempotency_key)
    JOIN locked l ON l.sku_id = c.sku_id AND l.location_id = c.location_id
),
verdict AS MATERIALIZED (
    SELECT count(*) = %(change_count)s AND coalesce(bool_and(
               on_hand >= 0 AND committed >= 0 AND reserved >= 0
               AND on_hand <= {MAX_QUANTITY} AND committed <= {MAX_QUANTITY}
               AND reserved <= {MAX_QUANTITY}
               AND (%(allow_shortfall)s
                    OR on_hand - committed - reserved >= LEAST(0, available_before))
           ), false) AS accepted
    FROM judged
),
inserted AS (
    INSERT INTO inventory_inventoryevent (
        kind, sku_id, location_id, delta_on_hand, delta_committed, delta_reserved,
        on_hand_after, committed_after, reserved_after, shortfall, source, actor,
        external_reference, reason, reservation_id, idempotency_key, created_at
    )
    SELECT j.kind, j.sku_id, j.location_id, j.d_on_hand, j.d_committed, j.d_reserved,
           j.on_hand, j.committed, j.reserved,
           GREATEST(0, LEAST(0, j.available_before) - (j.on_hand - j.committed - j.reserved)),
           %(source)s, %(actor)s, %(external_reference)s, %(reason)s,
           %(reservation_id)s::bigint, j.idempotency_key, now()
    FROM judged j CROSS JOIN verdict v
    WHERE v.accepted
    ORDER BY j.ordinal
    RETURNING id, idempotency_key, shortfall, created_at
),
updated AS (
    UPDATE inventory_stocklevel s
    SET on_hand = j.on_hand, committed = j.committed, reserved = j.reserved, updated_at = now()
    FROM judged j CROSS JOIN verdict v
    WHERE s.id = j.stock_level_id AND v.accepted
)
SELECT j.ordinal, j.on_hand, j.committed, j.reserved, j.available_before, v.accepted,
       i.id, i.shortfall, i.created_at
FROM judged j CROSS JOIN verdict v LEFT JOIN inserted i ON i.idempotency_key = j.idempotency_key
ORDER BY j.ordinal
"""


# The fast path for a change of one stock row: the UPDATE takes that row's lock itself
# (one row needs no lock order), checks and writes it, and the ledger event is appended
# from its RETURNING. The lock is held only for this statement and its commit. No row
# back means refused, replayed or not yet existing: the full statement above decides.
_APPLY_ONE_CHANGE_SQL = f"""
WITH updated AS (
    UPDATE inventory_stocklevel
    SET on_hand = on_hand + %(delta_on_hand)s,
        committed = committed + %(delta_committed)s,
        reserved = reserved + %(delta_reserved)s,
        updated_at = now()
    WHERE sku_id = %(sku_id)s AND location_id = %(location_id)s
      AND on_hand + %(delta_on_hand)s >= 0
      AND committed + %(delta_committed)s >= 0
      AND reserved + %(delta_reserved)s >= 0
      AND on_hand + %(delta_on_hand)s <= {MAX_QUANTITY}
      AND committed + %(delta_committed)s <= {MAX_QUANTITY}
      AND reserved + %(delta_reserved)s <= {MAX_QUANTITY}
      AND (%(allow_shortfall)s
           OR (on_hand + %(delta_on_hand)s) - (committed + %(delta_committed)s)
              - (reserved + %(delta_reserved)s) >= LEAST(0, on_hand - committed - reserved))
    RETURNING sku_id, location_id, on_hand, committed, reserved,
              (on_hand - committed - reserved)
              - (%(delta_on_hand)s - %(delta_committed)s - %(delta_reserved)s)
              AS available_before
),
inserted AS (
    INSERT INTO inventory_inventoryevent (
        kind, sku_id, location_id, delta_on_hand, delta_committed, delta_reserved,
        on_hand_after, committed_after, reserved_after, shortfall, source, actor,
        external_reference, reason, reservation_id, idempotency_key, created_at
    )
    SELECT %(kind)s, u.sku_id, u.location_id, %(delta_on_hand)s, %(delta_committed)s,
           %(delta_reserved)s, u.on_hand, u.committed, u.reserved,
           GREATEST(0, LEAST(0, u.available_before) - (u.on_hand - u.committed - u.reserved)),
           %(source)s, %(actor)s, %(external_reference)s, %(reason)s,
           %(reservation_id)s::bigint, %(idempotency_key)s, now()
    FROM updated u
    RETURNING id, shortfall, created_at
)
SELECT 0, u.on_hand, u.committed, u.reserved, u.available_before, true,
       i.id, i.shortfall, i.created_at
FROM updated u CROSS JOIN inserted i
"""


def _apply_changes(
    changes: Sequence[_LevelChange],
    *,
    context: EventContext,
    allow_shortfall: bool = False,
    reservation_id: int | None = None,
    key_checked_under_lock: bool = False,
) -> list[InventoryEvent]:
    """Apply all changes or none, in one statement; return their ledger events in order.

    Outside a transaction the statement is its own transaction; inside one, the caller's
    transaction holds the locks until it commits.
    """
    for change in changes:
        deltas = (change.delta_on_hand, change.delta_committed, change.delta_reserved)
        if max(abs(delta) for delta in deltas) > MAX_QUANTITY:
            raise QuantityOutOfRange(
                f"A change of stock may move at most {MAX_QUANTITY} units.",
                extra={"sku_id": change.sku_id, "location_id": change.location_id},
            )
    savepoint = not key_checked_under_lock
    rows = _execute_changes(changes, context, allow_shortfall, reservation_id, savepoint)
    if rows is not None and len(rows) < len(changes):
        # A stock row seen for the first time: create it empty, then apply again.
        _create_stock_levels(changes)
        rows = _execute_changes(changes, context, allow_shortfall, reservation_id, savepoint)
    if rows is None:
        return _replayed_events(changes)
    if len(rows) != len(changes) or not rows[0][5]:
        # A replay is judged against today's stock and may fail the checks; the key
        # decides first.
        if InventoryEvent.objects.filter(idempotency_key=changes[0].idempotency_key).exists():
            return _replayed_events(changes)
        _raise_refusal(changes, rows)
    if _stock_listeners:
        sku_ids = frozenset(change.sku_id for change in changes)
        for listener in _stock_listeners:
            listener(sku_ids=sku_ids)
    return [
        InventoryEvent(
            id=event_id,
            kind=change.kind,
            sku_id=change.sku_id,
            location_id=change.location_id,
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
        for change, (
            _,
            on_hand,
            committed,
            reserved,
            _,
            _,
            event_id,
            shortfall,
            created_at,
        ) in zip(changes, rows, strict=True)
    ]


def _execute_changes(
    changes: Sequence[_LevelChange],
    context: EventContext,
    allow_shortfall: bool,
    reservation_id: int | None,
    savepoint: bool = True,
) -> list[tuple[Any, ...]] | None:
    """Run the statement; None when an idempotency key was already used (a replay)."""
    params: dict[str, Any] = {
        "allow_shortfall": allow_shortfall,
        "source": str(context.source),
        "actor": context.actor,
        "external_reference": context.external_reference,
        "reason": context.reason,
        "reservation_id": reservation_id,
    }
    if len(changes) == 1:
        [change] = changes
        params.update(
            sku_id=change.sku_id,
            location_id=change.location_id,
            kind=str(change.kind),
            delta_on_hand=change.delta_on_hand,
            delta_committed=change.delta_committed,
            delta_reserved=change.delta_reserved,
            idempotency_key=change.idempotency_key,
        )
    try:
        if connection.in_atomic_block and savepoint:
            # A savepoint keeps the caller's transaction usable after a replayed key.
            with transaction.atomic():
                return _execute_prepared(params, changes)
        # Outside a transaction the statement is its own transaction: the row lock is
        # held for this one round trip and its commit.
        return _execute_prepared(params, changes)
    except IntegrityError:
        if connection.in_atomic_block and not savepoint:
            raise  # the caller's transaction is spoilt: the caller said it could not happen
        return None


def _multi_row_params(changes: Sequence[_LevelChange]) -> dict[str, Any]:
    return {
        "ordinals": list(range(len(changes))),
        "sku_ids": [change.sku_id for change in changes],
        "location_ids": [change.location_id for change in changes],
        "kinds": [str(change.kind) for change in changes],
        "deltas_on_hand": [change.delta_on_hand for change in changes],
        "deltas_committed": [change.delta_committed for change in changes],
        "deltas_reserved": [change.delta_reserved for change in changes],
        "idempotency_keys": [change.idempotency_key for change in changes],
        "change_count": len(changes),
    }


def _execute_prepared(
    params: dict[str, Any], changes: Sequence[_LevelChange]
) -> list[tuple[Any, ...]]:
    if len(changes) == 1:
        rows = prepared_sql.fetch(_APPLY_ONE_CHANGE_SQL, params)
        if rows:
            return rows
    return prepared_sql.fetch(_APPLY_CHANGES_SQL, {**params, **_multi_row_params(changes)})


def _create_stock_levels(changes: Sequence[_LevelChange]) -> None:
    pairs = {(change.sku_id, change.location_id) for change in changes}
    sku_ids = {sku_id for sku_id, _ in pairs}
    location_ids = {location_id for _, location_id in pairs}
    missing_skus = sku_ids - set(Sku.objects.filter(pk__in=sku_ids).values_list("pk", flat=True))
    if missing_skus:
        raise NotFound(f"SKU {min(missing_skus)} does not exist.")
    missing_locations = location_ids - set(
        Location.objects.filter(pk__in=location_ids).values_list("pk", flat=True)
    )
    if missing_locations:
        raise NotFound(f"Location {min(missing_locations)} does not exist.")
    StockLevel.objects.bulk_create(
        [StockLevel(sku_id=sku_id, location_id=location_id) for sku_id, location_id in pairs],
        ignore_conflicts=True,
    )


def _raise_refusal(changes: Sequence[_LevelChange], rows: list[tuple[Any, ...]]) -> None:
    if len(rows) != len(changes):
        raise InvalidStockChange("A stock level of this change does not exist.")
    for change, row in zip(changes, rows, strict=True):
        on_hand, committed, reserved, available_before = row[1], row[2], row[3], row[4]
        where = {"sku_id": change.sku_id, "location_id": change.location_id}
        if min(on_hand, committed, reserved) < 0:
            raise InvalidStockChange(
                f"{EventKind(change.kind).label} would take a stock figure below zero "
                f"(on hand {on_hand}, committed {committed}, reserved {reserved} after it).",
                extra=where,
            )
        if max(on_hand, committed, reserved) > MAX_QUANTITY:
            raise InvalidStockChange(
                f"{EventKind(change.kind).label} would take a stock figure above "
                f"{MAX_QUANTITY} (on hand {on_hand}, committed {committed}, reserved "
                f"{reserved} after it).",
                extra=where,
            )
        available_after = on_hand - committed - reserved
        if available_after < min(0, available_before):
            requested = available_before - available_after
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
        if event is None or (
            event.kind,
            event.sku_id,
            event.location_id,
            event.delta_on_hand,
            event.delta_committed,
            event.delta_reserved,
        ) != (
            change.kind,
            change.sku_id,
            change.location_id,
            change.delta_on_hand,
            change.delta_committed,
            change.delta_reserved,
        ):
            raise IdempotencyKeyReused(
                f"Idempotency key {change.idempotency_key!r} was already used for a "
                "different change."
            )
        events.append(event)
    return events


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
    key_checked_under_lock: bool = False,
) -> InventoryEvent:
    change = _LevelChange(
        sku_id=sku_id,
        location_id=location_id,
        kind=kind,
        idempotency_key=context.idempotency_key,
        delta_on_hand=delta_on_hand,
        delta_committed=delta_committed,
        delta_reserved=delta_reserved,
    )
    [event] = _apply_changes(
        [change],
        context=context,
        allow_shortfall=allow_shortfall,
        key_checked_under_lock=key_checked_under_lock,
    )
    return event


# -----------------------------------------------------------------------------------------
# Goods in and out
# -----------------------------------------------------------------------------------------


@retried_on_deadlock
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


@retried_on_deadlock
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


@dataclass(frozen=True)
class MarketplaceCount:
    """A marketplace's count of one SKU it holds: only ``fulfillable`` can be sold."""

    fulfillable: int
    counted_at: dt.datetime
    inbound: int = 0
    reserved: int = 0
    researching: int = 0
    unfulfillable: int = 0
    future_supply: int = 0
    details: dict[str, Any] | None = None


@retried_on_deadlock
def record_marketplace_count(
    *, sku_id: int, location_id: int, count: MarketplaceCount, context: EventContext
) -> InventoryEvent | None:
    """Make on hand at a marketplace-fulfilled location the marketplace's fulfillable count.

    The difference goes on the ledger as one MARKETPLACE_COUNT event (None when there is
    none); the other states are stored on the SKU's ``MarketplaceStock`` and never counted
    as available. A count older than the one stored (a late notification) changes nothing.
    The count is a fact: a drop below what is committed there is recorded as a shortfall.
    Two counts of one SKU at one location are serialised by the ``MarketplaceStock`` row
    lock, so the difference is always taken from the on hand it applies to.
    """
    if count.fulfillable < 0:
        raise ApplicationError("A fulfillable count cannot be negative.")
    location = Location.objects.filter(pk=location_id).values_list("kind", flat=True).first()
    if location != Location.Kind.MARKETPLACE_FULFILLED:
        raise InvalidStockChange(
            f"Location {location_id} is not marketplace-fulfilled: its stock is counted here."
        )
    states = {
        "fulfillable": count.fulfillable,
        "inbound": count.inbound,
        "reserved": count.reserved,
        "researching": count.researching,
        "unfulfillable": count.unfulfillable,
        "future_supply": count.future_supply,
        "details": count.details or {},
        "counted_at": count.counted_at,
    }
    with transaction.atomic():
        stored, created = MarketplaceStock.objects.select_for_update().get_or_create(
            sku_id=sku_id, location_id=location_id, defaults=states
        )
        if not created:
            if stored.counted_at > count.counted_at:
                return None
            MarketplaceStock.objects.filter(pk=stored.pk).update(
                **states, updated_at=timezone.now()
            )
        on_hand = (
            StockLevel.objects.filter(sku_id=sku_id, location_id=location_id)
            .values_list("on_hand", flat=True)
            .first()
        ) or 0
        delta = count.fulfillable - on_hand
        if delta == 0:
            return None
        [event] = _apply_changes(
            [
                _LevelChange(
                    sku_id=sku_id,
                    location_id=location_id,
                    kind=EventKind.MARKETPLACE_COUNT,
                    idempotency_key=f"{context.idempotency_key}:{on_hand}->{count.fulfillable}",
                    delta_on_hand=delta,
                )
            ],
            context=context,
            allow_shortfall=True,
        )
        return event


@retried_on_deadlock
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
                sku_id=sku_id,
                location_id=from_location_id,
                kind=EventKind.TRANSFER_OUT,
                idempotency_key=f"{context.idempotency_key}:out",
                delta_on_hand=-quantity,
            ),
            _LevelChange(
                sku_id=sku_id,
                location_id=to_location_id,
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


@retried_on_deadlock
def commit_order(
    *,
    sku_id: int,
    location_id: int,
    quantity: int,
    context: EventContext,
    allow_shortfall: bool = False,
    key_checked_under_lock: bool = False,
) -> InventoryEvent:
    """Commit sold units; refused (InsufficientStock) if available would go below zero.

    With ``allow_shortfall`` (an order that already happened on a marketplace) the sale is
    recorded anyway and the event's ``shortfall`` says how many units were oversold.

    Inside a transaction a replayed key is survived with a savepoint: two more round
    trips while the stock row is locked. A caller that has checked, under a lock of its
    own, that the key is unused (channel ingest) passes ``key_checked_under_lock`` and
    goes without; a replay then fails its transaction (IntegrityError) instead.
    """
    return _single_change(
        sku_id=sku_id,
        location_id=location_id,
        kind=EventKind.ORDER_COMMITTED,
        delta_committed=_positive(quantity),
        context=context,
        allow_shortfall=allow_shortfall,
        key_checked_under_lock=key_checked_under_lock,
    )


@retried_on_deadlock
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


@retried_on_deadlock
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


@retried_on_deadlock
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


@retried_on_deadlock
def reserve_stock(
    *,
    sku_id: int,
    location_id: int,
    quantity: int,
    context: EventContext,
    ttl_s: int | None = None,
    owner_id: int | None = None,
) -> Reservation:
    """Hold units until confirmed, released or expired; refused if not available.

    A repeated key returns the first reservation. ``owner_id`` is the API client making it
    (see ``confirm_reservation``); callers scope their keys per client, so a key of one
    client never finds another's reservation.
    """
    _positive(quantity)
    existing = Reservation.objects.filter(idempotency_key=context.idempotency_key).first()
    if existing is not None:
        return _same_reservation(
            existing, sku_id=sku_id, location_id=location_id, quantity=quantity
        )
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
                owner_id=owner_id,
            )
            # A bundle holds its components: all of them, in one statement, or none.
            held = _stock_held_by(sku_id, quantity)
            _apply_changes(
                [
                    _LevelChange(
                        sku_id=held_sku_id,
                        location_id=location_id,
                        kind=EventKind.RESERVATION_MADE,
                        idempotency_key=_reservation_key(reservation.pk, "made", held_sku_id)
                        if len(held) > 1
                        else f"reservation:{reservation.pk}:made",
                        delta_reserved=units,
                    )
                    for held_sku_id, units in held
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
    owner_id: int | None = None,
) -> Reservation:
    with transaction.atomic():
        try:
            reservation = locks.lock_reservation(reservation_id)
        except Reservation.DoesNotExist:
            raise NotFound(f"Reservation {reservation_id} does not exist.") from None
        if owner_id is not None and reservation.owner_id != owner_id:
            # The same answer as for no reservation: a client cannot even learn that
            # another client's id exists.
            raise NotFound(f"Reservation {reservation_id} does not exist.")
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
        if confirming and reservation.expires_at <= timezone.now():
            # Past its expiry the hold is void even before the sweep releases it.
            raise Conflict(
                f"Reservation {reservation_id} expired at {reservation.expires_at.isoformat()}.",
                extra={"status": "expired"},
            )
        held = _reserved_by(reservation)
        _apply_changes(
            [
                _LevelChange(
                    sku_id=held_sku_id,
                    location_id=location_id,
                    kind=kind,
                    idempotency_key=_reservation_key(reservation.pk, new_status, held_sku_id)
                    if len(held) > 1
                    else f"reservation:{reservation.pk}:{new_status}",
                    delta_reserved=-units,
                    delta_committed=units if confirming else 0,
                )
                for held_sku_id, location_id, units in held
            ],
            context=context,
            reservation_id=reservation.pk,
        )
        reservation.status = new_status
        reservation.save(update_fields=["status", "updated_at"])
        return reservation


def _reservation_key(reservation_id: int, step: str, sku_id: int) -> str:
    return f"reservation:{reservation_id}:{step}:{sku_id}"


def _reserved_by(reservation: Reservation) -> list[tuple[int, int, int]]:
    """``(sku, location, units)`` the reservation holds: what its events reserved (a
    bundle's components, as the BOM was when it was made, whatever it is now)."""
    made = list(
        InventoryEvent.objects.filter(
            reservation_id=reservation.pk, kind=EventKind.RESERVATION_MADE
        ).values_list("sku_id", "location_id", "delta_reserved")
    )
    return made or [(reservation.sku_id, reservation.location_id, reservation.quantity)]


@retried_on_deadlock
def confirm_reservation(
    *, reservation_id: int, context: EventContext, owner_id: int | None = None
) -> Reservation:
    """Turn held units into a committed order; confirming twice changes nothing.

    With ``owner_id``, a reservation another client made raises ``NotFound``, exactly as
    one that does not exist (checked under the reservation's lock).
    """
    return _end_reservation(
        reservation_id=reservation_id,
        new_status=Reservation.Status.CONFIRMED,
        kind=EventKind.RESERVATION_CONFIRMED,
        context=context,
        owner_id=owner_id,
    )


@retried_on_deadlock
def release_reservation(
    *, reservation_id: int, context: EventContext, owner_id: int | None = None
) -> Reservation:
    """Give held units back to available; releasing twice changes nothing.

    ``owner_id`` as for ``confirm_reservation``; None releases anyone's (an operator).
    """
    return _end_reservation(
        reservation_id=reservation_id,
        new_status=Reservation.Status.RELEASED,
        kind=EventKind.RESERVATION_RELEASED,
        context=context,
        owner_id=owner_id,
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


# -----------------------------------------------------------------------------------------
# Bundles: several stock rows in one statement
# -----------------------------------------------------------------------------------------


def _merged_lines(lines: Sequence[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    """Lines summed per stock row: the statement changes each row once, so two lines on one
    row (two bundles of one order sharing a component) must become one."""
    totals: dict[tuple[int, int], int] = {}
    for sku_id, location_id, quantity in lines:
        key = (sku_id, location_id)
        totals[key] = totals.get(key, 0) + _positive(quantity)
    if not totals:
        raise ApplicationError("A change needs at least one line.")
    return [
        (sku_id, location_id, quantity)
        for (sku_id, location_id), quantity in sorted(totals.items())
    ]


def _line_changes(
    lines: Sequence[tuple[int, int, int]],
    *,
    kind: EventKind,
    context: EventContext,
    on_hand_sign: int = 0,
    committed_sign: int = 0,
) -> list[_LevelChange]:
    return [
        _LevelChange(
            sku_id=sku_id,
            location_id=location_id,
            kind=kind,
            idempotency_key=f"{context.idempotency_key}:{sku_id}:{location_id}",
            delta_on_hand=on_hand_sign * quantity,
            delta_committed=committed_sign * quantity,
        )
        for sku_id, location_id, quantity in _merged_lines(lines)
    ]


@retried_on_deadlock
def commit_order_lines(
    *,
    lines: Sequence[tuple[int, int, int]],
    context: EventContext,
    allow_shortfall: bool = False,
) -> list[InventoryEvent]:
    """Commit ``(sku_id, location_id, quantity)`` lines all or none, in one statement.

    Rows are locked in primary-key order, so orders sharing SKUs queue instead of
    deadlocking. Refused (InsufficientStock) if any line would overdraw available, unless
    ``allow_shortfall``. Each line's event key is ``<key>:<sku_id>:<location_id>``.
    """
    return _apply_changes(
        _line_changes(lines, kind=EventKind.ORDER_COMMITTED, context=context, committed_sign=1),
        context=context,
        allow_shortfall=allow_shortfall,
    )


@retried_on_deadlock
def cancel_order_lines(
    *, lines: Sequence[tuple[int, int, int]], context: EventContext
) -> list[InventoryEvent]:
    """Release the committed units of every line back to available, all or none."""
    return _apply_changes(
        _line_changes(lines, kind=EventKind.ORDER_CANCELLED, context=context, committed_sign=-1),
        context=context,
    )


@retried_on_deadlock
def return_order_lines(
    *, lines: Sequence[tuple[int, int, int]], restock: bool, context: EventContext
) -> list[InventoryEvent]:
    """Record the returned units of every line, all or none; restocked ones go on hand."""
    kind = EventKind.RETURN_RESTOCKED if restock else EventKind.RETURN_DAMAGED
    return _apply_changes(
        _line_changes(lines, kind=kind, context=context, on_hand_sign=1 if restock else 0),
        context=context,
    )
