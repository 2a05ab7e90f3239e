"""Bundle availability: the one definition, in Python and as the SQL the statements embed.

A bundle is a SKU with leaf components (``bundles_bundlecomponent``, nesting resolved) and
holds no stock of its own. Its ATS over some locations is the minimum, over its leaf
components, of ``floor(component ATS / units per bundle)``; a component's negative ATS
(an oversell) counts as 0, so a bundle's ATS is never negative. Any other SKU's ATS is
``on_hand - committed - reserved`` summed over those locations.

The SQL fragments are constant text composed around the caller's aliases and placeholders
(never values); which locations count is the caller's ``StockScope``, so a statement that
sells from a channel's locations (a channels table) can embed the rule without this app
knowing of channels.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


def component_allows(*, ats: int, per_bundle: int) -> int:
    """Whole bundles one leaf component's ATS is enough for; never negative."""
    return max(ats, 0) // per_bundle


def bundle_ats(allowances: Iterable[int]) -> int:
    """A bundle's ATS from what each leaf component allows: the smallest, 0 without any."""
    return min(allowances, default=0)


@dataclass(frozen=True)
class StockScope:
    """Which ``inventory_stocklevel AS level`` rows count: SQL joined to and ANDed after
    the rows of one SKU (empty: every location)."""

    join: str = ""
    condition: str = ""


EVERY_LOCATION = StockScope()


def locations_in(array_sql: str) -> StockScope:
    """The locations whose ids are in the ``bigint[]`` SQL expression (a placeholder)."""
    return StockScope(condition=f"AND level.location_id = ANY({array_sql}::bigint[])")


# A stock row's ATS (``inventory.models.StockLevel.available``), over ``level``.
LEVEL_ATS_SQL = "level.on_hand - level.committed - level.reserved"


def stock_ats_sql(*, sku_id: str, scope: StockScope) -> str:
    """A one-row query: ``ats``, the SKU's own stock's ATS over the scope (NULL without rows).

    ``sku_id`` is an SQL expression (a column of the enclosing query or a placeholder).
    """
    return f"""
                     SELECT sum({LEVEL_ATS_SQL}) AS ats
                       FROM inventory_stocklevel AS level {scope.join}
                      WHERE level.sku_id = {sku_id} {scope.condition}"""


def bundle_ats_sql(*, bundle_id: str, scope: StockScope) -> str:
    """A one-row, one-column query: the bundle's ATS over the scope (0 without components).

    Integer division of a non-negative sum is the floor of ``bundle_ats``'s arithmetic.
    """
    component_ats = stock_ats_sql(sku_id="component.component_id", scope=scope)
    return f"""SELECT COALESCE(min(greatest(coalesce(component_ats.ats, 0), 0)
                                 / component.quantity), 0)
               FROM bundles_bundlecomponent AS component
               CROSS JOIN LATERAL ({component_ats}) AS component_ats
              WHERE component.bundle_id = {bundle_id}"""


def sku_ats_sql(*, sku_id: str, scope: StockScope) -> str:
    """An SQL expression: the SKU's ATS over the scope, a bundle's by its components.

    A SKU without stock rows there has an ATS of 0. ``bundles.selectors.available_by_sku``
    reads the same for many SKUs at once, in Python over the same fragments.
    """
    return f"""CASE WHEN EXISTS (SELECT 1 FROM bundles_bundlecomponent
                          WHERE bundle_id = {sku_id})
       THEN ({bundle_ats_sql(bundle_id=sku_id, scope=scope)})
       ELSE COALESCE(({stock_ats_sql(sku_id=sku_id, scope=scope)}), 0)
       END"""
