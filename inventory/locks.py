"""Row locks on stock, always taken in primary-key order (as Saleor's lock_objects.py).

Two operations that touch overlapping rows (a transfer, two bundles sharing a component)
lock them in the same order, so they queue behind each other instead of deadlocking.
"""

from __future__ import annotations

from django.db.models import QuerySet

from inventory.models import Reservation

# The locking step of the single statement that applies a stock change (services.py):
# sorted by id, then locked, so the lock order is the primary-key order. Under READ
# COMMITTED a waiter gets the row as its previous holder committed it.
LOCK_STOCK_LEVELS_SQL = """
    SELECT id, sku_id, location_id, on_hand, committed, reserved
    FROM inventory_stocklevel
    WHERE (sku_id, location_id) IN (
        SELECT * FROM unnest(%(sku_ids)s::bigint[], %(location_ids)s::bigint[])
    )
    ORDER BY id
    FOR UPDATE
"""


def lock_reservation(reservation_id: int) -> Reservation:
    """Lock one reservation row; taken before any stock row, in every code path."""
    queryset: QuerySet[Reservation] = Reservation.objects.select_for_update()
    return queryset.get(pk=reservation_id)
