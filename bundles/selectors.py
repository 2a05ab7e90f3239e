"""Reads of bills of materials and bundle availability, from the closure table.

A bundle's availability is defined once, in ``bundles.rules`` (Python and SQL); these
read the data it needs and apply it. Nothing here writes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.db import connection
from django.db.models import Exists, F, OuterRef, Prefetch, Q, QuerySet, Sum
from django.db.models.expressions import RawSQL

from bundles import rules
from bundles.models import BomLine, BundleComponent
from inventory.models import Sku, StockLevel
from nventory.errors import NotFound


def availability_expression(*, location_ids: Iterable[int] | None = None) -> RawSQL:
    """An annotation for a ``Sku`` queryset: each row's bundle availability.

    Over ``location_ids``, or over every location when None.
    """
    scope = rules.EVERY_LOCATION if location_ids is None else rules.locations_in("%s")
    sql = f"({rules.bundle_ats_sql(bundle_id='inventory_sku.id', scope=scope)})"
    params = (list(location_ids),) if location_ids is not None else ()
    # Raw: the rule's SQL (bundles.rules) has no ORM form; the locations are a bound parameter.
    return RawSQL(sql, params)  # noqa: S611


# Raw, as the rule's SQL is (bundles.rules); one bundle, values bound.
_BUNDLE_AVAILABLE_SQL = rules.bundle_ats_sql(
    bundle_id="%(bundle_id)s", scope=rules.locations_in("%(location_ids)s")
)
_BUNDLE_AVAILABLE_ANYWHERE_SQL = rules.bundle_ats_sql(
    bundle_id="%(bundle_id)s", scope=rules.EVERY_LOCATION
)


def bundle_available(*, bundle_id: int, location_ids: Iterable[int] | None) -> int:
    """Bundles that can be made from the components' ATS over the locations (None: all)."""
    with connection.cursor() as cursor:
        if location_ids is None:
            cursor.execute(_BUNDLE_AVAILABLE_ANYWHERE_SQL, {"bundle_id": bundle_id})
        else:
            cursor.execute(
                _BUNDLE_AVAILABLE_SQL,
                {"bundle_id": bundle_id, "location_ids": list(location_ids)},
            )
        (available,) = cursor.fetchone()
    return int(available)


def bundle_availabilities(
    *, bundle_ids: Iterable[int], location_ids: Iterable[int] | None
) -> dict[int, int]:
    """``bundle_available`` of several bundles in one query; a SKU without lines maps to 0."""
    return dict(
        Sku.objects.filter(pk__in=list(bundle_ids))
        .annotate(available=availability_expression(location_ids=location_ids))
        .values_list("pk", "available")
    )


# Raw for the array parameters, which keep the statement one shape whatever the counts.
_STOCK_ATS_BY_SKU_SQL = f"""
SELECT level.sku_id, sum({rules.LEVEL_ATS_SQL}) AS ats
  FROM inventory_stocklevel AS level
 WHERE level.sku_id = ANY(%(sku_ids)s::bigint[])
   AND level.location_id = ANY(%(location_ids)s::bigint[])
 GROUP BY level.sku_id
"""


def available_by_sku(*, sku_ids: Iterable[int], location_ids: Iterable[int]) -> dict[int, int]:
    """Each SKU's ATS over the locations, a bundle's by its leaf components (bundles.rules),
    in at most three queries; a SKU without stock rows there is left out (its ATS is 0)."""
    sku_ids = sorted(set(sku_ids))
    location_ids = list(location_ids)
    with connection.cursor() as cursor:
        cursor.execute(_STOCK_ATS_BY_SKU_SQL, {"sku_ids": sku_ids, "location_ids": location_ids})
        ats_by_sku = {sku_id: int(ats) for sku_id, ats in cursor.fetchall()}
    # A bundle's own stock rows, were there any, would not count: only its components do.
    if bundle_ids := bundle_ids_among(sku_ids=sku_ids):
        ats_by_sku.update(bundle_availabilities(bundle_ids=bundle_ids, location_ids=location_ids))
    return ats_by_sku


@dataclass(frozen=True)
class ComponentStep:
    """One leaf component's share of a bundle's availability."""

    component_code: str
    ats: int
    per_bundle: int
    bundles: int

    @property
    def label(self) -> str:
        counted = "" if self.ats >= 0 else " (negative counts as 0)"
        return (
            f"{self.component_code}: ATS {self.ats}{counted} / {self.per_bundle} per bundle"
            f" = {self.bundles}"
        )


@dataclass(frozen=True)
class BundleExplanation:
    """The BOM arithmetic: each leaf component's steps, then their minimum."""

    steps: tuple[ComponentStep, ...]
    available: int


def explain_bundle(*, bundle_id: int, location_ids: Iterable[int] | None) -> BundleExplanation:
    """Each leaf component's ATS over the locations (None: all), its units per bundle and
    how many bundles it allows; the bundle's availability is the smallest of those."""
    location_filter = Q() if location_ids is None else Q(location_id__in=list(location_ids))
    rows = BundleComponent.objects.filter(bundle_id=bundle_id).values_list(
        "component_id", "component__code", "quantity"
    )
    components = list(rows.order_by("component__code"))
    ats_by_sku = _ats_by_sku(
        sku_ids=[component_id for component_id, _, _ in components],
        location_filter=location_filter,
    )
    steps = tuple(
        ComponentStep(
            component_code=code,
            ats=ats_by_sku.get(component_id, 0),
            per_bundle=quantity,
            bundles=rules.component_allows(
                ats=ats_by_sku.get(component_id, 0), per_bundle=quantity
            ),
        )
        for component_id, code, quantity in components
    )
    return BundleExplanation(
        steps=steps, available=rules.bundle_ats(step.bundles for step in steps)
    )


def _ats_by_sku(*, sku_ids: list[int], location_filter: Q) -> dict[int, int]:
    return {
        sku_id: int(ats)
        for sku_id, ats in StockLevel.objects.filter(location_filter, sku_id__in=sku_ids)
        .values("sku_id")
        .annotate(ats=Sum(F("on_hand") - F("committed") - F("reserved")))
        .values_list("sku_id", "ats")
    }


def dependent_bundle_ids(*, sku_ids: Iterable[int]) -> set[int]:
    """Every bundle whose availability depends on these stock-bearing SKUs, however deeply
    nested: one index-only query on the closure table."""
    return set(
        BundleComponent.objects.filter(component_id__in=list(sku_ids)).values_list(
            "bundle_id", flat=True
        )
    )


def expand(*, sku_id: int, quantity: int) -> list[tuple[int, int]]:
    """``(leaf_sku_id, units)`` that ``quantity`` of the SKU takes from stock, by SKU id.

    A bundle expands to its leaf components; any other SKU to itself.
    """
    leaves = list(
        BundleComponent.objects.filter(bundle_id=sku_id)
        .order_by("component_id")
        .values_list("component_id", "quantity")
    )
    if not leaves:
        return [(sku_id, quantity)]
    return [(component_id, per_bundle * quantity) for component_id, per_bundle in leaves]


def _has_lines() -> Exists:
    return Exists(BomLine.objects.filter(bundle_id=OuterRef("pk")))


def bundle_list(*, search: str = "") -> QuerySet[Sku]:
    """Bundles (SKUs with BOM lines) by code, each with ``available`` over all locations
    and its ``bom_lines`` prefetched; ``search`` matches part of the code or name."""
    bundles = Sku.objects.filter(_has_lines())
    if search:
        bundles = bundles.filter(Q(code__icontains=search) | Q(name__icontains=search))
    return (
        bundles.annotate(available=availability_expression())
        .prefetch_related(Prefetch("bom_lines", queryset=bom_lines_with_components()))
        .order_by("code")
    )


def bundle_by_code(*, code: str) -> Sku:
    """The bundle with this code, with ``available`` over all locations; NotFound (404)
    if no SKU has this code or the SKU has no BOM lines."""
    bundle = bundle_list().filter(code=code).first()
    if bundle is None:
        raise NotFound(f"Bundle {code!r} does not exist.", extra={"bundle": code})
    return bundle


def bom_lines_with_components() -> QuerySet[BomLine]:
    """BOM lines with their components, by component code."""
    return BomLine.objects.select_related("component").order_by("component__code")


def expand_bundle(sku_id: int, quantity: int) -> list[tuple[int, int]] | None:
    """``expand`` for a bundle; None for a SKU that holds its own stock."""
    if not BundleComponent.objects.filter(bundle_id=sku_id).exists():
        return None
    return expand(sku_id=sku_id, quantity=quantity)


def bundle_ids_among(*, sku_ids: Iterable[int]) -> set[int]:
    """Those of these SKUs that are bundles (have leaf components): one indexed query."""
    return set(
        BundleComponent.objects.filter(bundle_id__in=list(sku_ids))
        .values_list("bundle_id", flat=True)
        .distinct()
    )
