"""Bills of materials, and stock changes of a SKU that may be a bundle.

``set_bom`` is the only writer of ``BomLine`` and ``BundleComponent``: it refuses cycles
and rebuilds the closure rows of every bundle the change reaches, in one transaction.
The stock services expand a bundle to its leaf components and change all of their stock
rows in one ``inventory.services`` statement, locked in primary-key order.

A BOM edit changes what each bundle it reaches can list without any stock moving, so the
outbox trigger (on stock rows) cannot see it. ``channels`` sits above this app and may not
be imported here; it hears of the edit through one hook, ``register_bom_listener``, whose
listeners run inside the edit's transaction and owe the bundles' listings their pushes in
it, as the trigger does for stock.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Protocol

from django.db import connection, transaction

from bundles import selectors
from bundles.models import BomLine, BundleComponent
from inventory import services as inventory_services
from inventory.models import MAX_QUANTITY, InventoryEvent, Sku, StockLevel
from nventory.errors import ApplicationError

# Per-line ceiling: far beyond any real kit, and nested products stay inside 64 bits.
MAX_LINE_QUANTITY = 10_000
# A BOM has at most this many lines: each is a row to lock and a term of every
# availability figure, and no real kit comes near it.
MAX_BOM_LINES = 100
# pg_advisory_xact_lock key ("nBOM"): BOM edits are rare, and serializing them is what
# stops two concurrent edits (A gets B, B gets A) from each passing the cycle check.
_BOM_EDIT_LOCK = 0x6E424F4D


class BomError(ApplicationError):
    code = "invalid_bom"


# Every edge reachable downwards from some SKUs; UNION (not ALL) ends even on bad data.
_REACHABLE_EDGES_SQL = """
WITH RECURSIVE reach(bundle_id, component_id) AS (
    SELECT bundle_id, component_id FROM bundles_bomline WHERE bundle_id = ANY(%s::bigint[])
    UNION
    SELECT l.bundle_id, l.component_id
    FROM bundles_bomline l JOIN reach r ON l.bundle_id = r.component_id
)
SELECT bundle_id, component_id FROM reach
"""

# The bundle and every bundle containing it, at any depth.
_SELF_AND_CONTAINERS_SQL = """
WITH RECURSIVE up(id) AS (
    SELECT %s::bigint
    UNION
    SELECT l.bundle_id FROM bundles_bomline l JOIN up ON l.component_id = up.id
)
SELECT id FROM up
"""

# Leaf components of each given bundle, quantities multiplied down each path and summed
# over paths (a SKU held directly and through a nested bundle counts both ways).
_INSERT_CLOSURE_SQL = """
WITH RECURSIVE expanded(root_id, sku_id, quantity) AS (
    SELECT l.bundle_id, l.component_id, l.quantity::bigint
    FROM bundles_bomline l WHERE l.bundle_id = ANY(%s::bigint[])
    UNION ALL
    SELECT e.root_id, l.component_id, e.quantity * l.quantity
    FROM expanded e JOIN bundles_bomline l ON l.bundle_id = e.sku_id
)
INSERT INTO bundles_bundlecomponent (bundle_id, component_id, quantity)
SELECT e.root_id, e.sku_id, SUM(e.quantity)
FROM expanded e
WHERE NOT EXISTS (SELECT 1 FROM bundles_bomline l WHERE l.bundle_id = e.sku_id)
GROUP BY e.root_id, e.sku_id
"""


def validate_bom(*, bundle: Sku, lines: Sequence[tuple[Sku, int]]) -> None:
    """Raise BomError unless ``lines`` may become the bundle's BOM as the graph is now.

    Refuses more than MAX_BOM_LINES lines, a quantity outside 1..MAX_LINE_QUANTITY, a
    component listed twice, the bundle inside itself, a cycle (naming its path) and a
    bundle SKU that holds stock.
    """
    if len(lines) > MAX_BOM_LINES:
        raise BomError(f"A bundle may have at most {MAX_BOM_LINES} lines, not {len(lines)}.")
    seen: set[int] = set()
    for component, quantity in lines:
        if not 1 <= quantity <= MAX_LINE_QUANTITY:
            raise BomError(
                f"The quantity of {component.code} must be between 1 and {MAX_LINE_QUANTITY}."
            )
        if component.pk in seen:
            raise BomError(f"{component.code} is listed twice; give it one line.")
        seen.add(component.pk)
        if bundle.pk is not None and component.pk == bundle.pk:
            raise BomError(f"Bundle {bundle.code} cannot contain itself.")
    if bundle.pk is None or not lines:
        return
    cycle = _path_back_to(bundle_id=bundle.pk, component_ids=sorted(seen))
    if cycle:
        codes = dict(Sku.objects.filter(pk__in=cycle).values_list("pk", "code"))
        inner = codes[cycle[0]]
        raise BomError(
            f"Bundle {bundle.code} cannot contain {inner}: {inner} already contains "
            f"{bundle.code} ({' → '.join(codes[sku_id] for sku_id in cycle)})."
        )
    if (
        StockLevel.objects.filter(sku_id=bundle.pk)
        .exclude(on_hand=0, committed=0, reserved=0)
        .exists()
    ):
        raise BomError(
            f"{bundle.code} holds stock of its own; a bundle's stock is its components'. "
            "Move or write off that stock first."
        )


def _path_back_to(*, bundle_id: int, component_ids: list[int]) -> list[int]:
    """The shortest path of SKU ids from one of the components down to the bundle, or []."""
    with connection.cursor() as cursor:
        cursor.execute(_REACHABLE_EDGES_SQL, [component_ids])
        edges = cursor.fetchall()
    children: dict[int, list[int]] = {}
    for parent_id, child_id in edges:
        children.setdefault(parent_id, []).append(child_id)
    for start in component_ids:
        came_from: dict[int, int | None] = {start: None}
        queue = deque([start])
        while queue:
            current = queue.popleft()
            if current == bundle_id:
                path = [current]
                while (previous := came_from[path[-1]]) is not None:
                    path.append(previous)
                return path[::-1]
            for child in sorted(children.get(current, ())):
                if child not in came_from:
                    came_from[child] = current
                    queue.append(child)
    return []


class BomListener(Protocol):
    def __call__(self, *, bundle_ids: frozenset[int]) -> None: ...


_bom_listeners: list[BomListener] = []


def register_bom_listener(listener: BomListener) -> None:
    """Call ``listener(bundle_ids=...)`` inside every BOM edit's transaction.

    The one way BOM edits reach the apps above this one (channels owes the bundles'
    listings a push), which ``bundles`` may not import: they register here from
    ``AppConfig.ready``. ``bundle_ids`` holds every bundle whose leaf components changed:
    the edited one and every bundle containing it. An exception in a listener rolls the
    edit back. Registering the same listener twice registers it once.
    """
    if listener not in _bom_listeners:
        _bom_listeners.append(listener)


@transaction.atomic
def set_bom(*, bundle: Sku, lines: Sequence[tuple[Sku, int]]) -> None:
    """Replace the bundle's BOM lines; raise BomError (nothing saved) if they are invalid.

    Rebuilds the closure rows of the bundle and of every bundle containing it in the same
    transaction. BOM edits are serialized by a transaction-level advisory lock, so the
    cycle check sees every committed edit. No lines: the SKU stops being a bundle.
    """
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_BOM_EDIT_LOCK])
    validate_bom(bundle=bundle, lines=lines)
    BomLine.objects.filter(bundle=bundle).delete()
    BomLine.objects.bulk_create(
        BomLine(bundle=bundle, component=component, quantity=quantity)
        for component, quantity in lines
    )
    _rebuild_closure(changed_id=bundle.pk)


def _rebuild_closure(*, changed_id: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute(_SELF_AND_CONTAINERS_SQL, [changed_id])
        affected = [row[0] for row in cursor.fetchall()]
        BundleComponent.objects.filter(bundle_id__in=affected).delete()
        cursor.execute(_INSERT_CLOSURE_SQL, [affected])
    bundle_ids = frozenset(affected)
    for listener in _bom_listeners:
        listener(bundle_ids=bundle_ids)


@transaction.atomic
def create_bundle(
    *, code: str, name: str, lines: Sequence[tuple[Sku, int]], category: str = ""
) -> Sku:
    """Create a bundle SKU with its BOM; BomError (nothing saved) if the lines are invalid."""
    bundle = Sku.objects.create(code=code, name=name, category=category)
    set_bom(bundle=bundle, lines=lines)
    return bundle


# -----------------------------------------------------------------------------------------
# Stock changes of a SKU or a bundle
# -----------------------------------------------------------------------------------------


def _leaf_lines(*, sku_id: int, location_id: int, quantity: int) -> list[tuple[int, int, int]]:
    if quantity <= 0:
        raise ApplicationError("Quantity must be a positive whole number.")
    lines = []
    for leaf_id, units in selectors.expand(sku_id=sku_id, quantity=quantity):
        if units > MAX_QUANTITY:
            raise ApplicationError(
                f"{quantity} of this SKU take {units} units of a component; "
                f"at most {MAX_QUANTITY} in one change."
            )
        lines.append((leaf_id, location_id, units))
    return lines


def commit_sku(
    *,
    sku_id: int,
    location_id: int,
    quantity: int,
    context: inventory_services.EventContext,
    allow_shortfall: bool = False,
) -> list[InventoryEvent]:
    """Commit sold units of a SKU or bundle: a bundle's leaf components, all or none.

    One statement locks every component row in primary-key order, so bundles sharing a
    component neither oversell it nor deadlock. Refused (InsufficientStock) if any
    component falls short, unless ``allow_shortfall``. Idempotent by ``context`` key.
    """
    return inventory_services.commit_order_lines(
        lines=_leaf_lines(sku_id=sku_id, location_id=location_id, quantity=quantity),
        context=context,
        allow_shortfall=allow_shortfall,
    )


def cancel_sku(
    *,
    sku_id: int,
    location_id: int,
    quantity: int,
    context: inventory_services.EventContext,
) -> list[InventoryEvent]:
    """Release a cancelled order of a SKU or bundle: every leaf component, all or none."""
    return inventory_services.cancel_order_lines(
        lines=_leaf_lines(sku_id=sku_id, location_id=location_id, quantity=quantity),
        context=context,
    )


def return_sku(
    *,
    sku_id: int,
    location_id: int,
    quantity: int,
    restock: bool,
    context: inventory_services.EventContext,
) -> list[InventoryEvent]:
    """Record a return of a SKU or bundle: every leaf component restocked (or logged as
    damaged), all or none."""
    return inventory_services.return_order_lines(
        lines=_leaf_lines(sku_id=sku_id, location_id=location_id, quantity=quantity),
        restock=restock,
        context=context,
    )
