"""Property-based: random BOM graphs and random sales, cancellations and returns.

Bundles are built only from SKUs made before them, so every graph is acyclic by
construction; nesting and shared components come from the random draws. After every
step each bundle's availability equals ``min(floor(ATS / units))`` over its leaf
components, expanded here independently of the closure table, and no component's
available is negative (no shortfall is allowed). A sale is accepted exactly when every
component covers it.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.db.models import Sum
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from bundles import selectors, services
from bundles.models import BomLine
from inventory import services as inventory_services
from inventory.models import InventoryEvent, Sku, StockLevel
from nventory.errors import ApplicationError
from tests import factories

LEAVES = 4
quantities = st.integers(min_value=1, max_value=4)


class BundleStockMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.location = factories.make_location()
        self.leaves = [factories.make_sku() for _ in range(LEAVES)]
        for leaf in self.leaves:
            factories.stock(leaf, self.location, 20)
        # In creation order: a bundle's lines only ever use SKUs before it.
        self.skus: list[Sku] = list(self.leaves)
        self.bundle_skus: list[Sku] = []
        self.sales: list[tuple[int, int]] = []

    def _context(self) -> inventory_services.EventContext:
        return inventory_services.EventContext(idempotency_key=str(uuid.uuid4()))

    def _draw_lines(self, data: st.DataObject, candidates: list[Sku]) -> list[tuple[Sku, int]]:
        components = data.draw(
            st.lists(
                st.sampled_from(candidates),
                min_size=1,
                max_size=min(3, len(candidates)),
                unique_by=lambda sku: sku.pk,
            )
        )
        return [(component, data.draw(quantities)) for component in components]

    def _leaf_units(self, sku_id: int) -> dict[int, int]:
        """Expand a SKU through BomLine directly: the oracle for the closure table."""
        lines: dict[int, list[tuple[int, int]]] = {}
        for bundle_id, component_id, quantity in BomLine.objects.filter(
            bundle_id__in=[bundle.pk for bundle in self.bundle_skus]
        ).values_list("bundle_id", "component_id", "quantity"):
            lines.setdefault(bundle_id, []).append((component_id, quantity))

        def expand(current: int) -> dict[int, int]:
            if current not in lines:
                return {current: 1}
            units: dict[int, int] = {}
            for component_id, quantity in lines[current]:
                for leaf_id, per_component in expand(component_id).items():
                    units[leaf_id] = units.get(leaf_id, 0) + quantity * per_component
            return units

        return expand(sku_id)

    def _available(self) -> dict[int, int]:
        levels = StockLevel.objects.filter(location=self.location)
        return {level.sku_id: level.available for level in levels}

    @rule(data=st.data())
    def add_bundle(self, data: st.DataObject) -> None:
        bundle = factories.make_sku()
        services.set_bom(bundle=bundle, lines=self._draw_lines(data, self.skus))
        self.skus.append(bundle)
        self.bundle_skus.append(bundle)

    @precondition(lambda self: self.bundle_skus)
    @rule(data=st.data())
    def edit_bundle(self, data: st.DataObject) -> None:
        bundle = data.draw(st.sampled_from(self.bundle_skus))
        earlier = self.skus[: self.skus.index(bundle)]
        services.set_bom(bundle=bundle, lines=self._draw_lines(data, earlier))

    @rule(data=st.data(), quantity=quantities)
    def sell(self, data: st.DataObject, quantity: int) -> None:
        sku = data.draw(st.sampled_from(self.skus))
        available = self._available()
        covered = all(
            available.get(leaf_id, 0) >= units * quantity
            for leaf_id, units in self._leaf_units(sku.pk).items()
        )
        try:
            services.commit_sku(
                sku_id=sku.pk,
                location_id=self.location.pk,
                quantity=quantity,
                context=self._context(),
            )
        except inventory_services.InsufficientStock:
            assert not covered
            assert self._available() == available
            return
        assert covered
        self.sales.append((sku.pk, quantity))

    @precondition(lambda self: self.sales)
    @rule(data=st.data(), cancel=st.booleans(), restock=st.booleans())
    def undo_sale(self, data: st.DataObject, cancel: bool, restock: bool) -> None:
        """Cancel or return an earlier sale; after a BOM edit it may be refused."""
        sku_id, quantity = data.draw(st.sampled_from(self.sales))
        before = self._available()
        arguments: dict[str, Any] = {
            "sku_id": sku_id,
            "location_id": self.location.pk,
            "quantity": quantity,
            "context": self._context(),
        }
        try:
            if cancel:
                services.cancel_sku(**arguments)
            else:
                services.return_sku(**arguments, restock=restock)
        except ApplicationError:
            assert self._available() == before
            return
        self.sales.remove((sku_id, quantity))

    @rule(leaf=st.integers(0, LEAVES - 1), quantity=quantities)
    def receive(self, leaf: int, quantity: int) -> None:
        inventory_services.receive_stock(
            sku_id=self.leaves[leaf].pk,
            location_id=self.location.pk,
            quantity=quantity,
            context=self._context(),
        )

    @invariant()
    def bundle_availability_is_min_over_leaf_components(self) -> None:
        available = self._available()
        for bundle in self.bundle_skus:
            expected = min(
                max(available.get(leaf_id, 0), 0) // units
                for leaf_id, units in self._leaf_units(bundle.pk).items()
            )
            assert (
                selectors.bundle_available(bundle_id=bundle.pk, location_ids=[self.location.pk])
                == expected
            )
            explanation = selectors.explain_bundle(
                bundle_id=bundle.pk, location_ids=[self.location.pk]
            )
            assert explanation.available == expected

    @invariant()
    def no_component_is_oversold_and_the_ledger_holds(self) -> None:
        for level in StockLevel.objects.filter(location=self.location):
            assert level.available >= 0
            ledger = InventoryEvent.objects.filter(
                sku_id=level.sku_id, location=self.location
            ).aggregate(
                on_hand=Sum("delta_on_hand", default=0),
                committed=Sum("delta_committed", default=0),
            )
            assert (level.on_hand, level.committed) == (ledger["on_hand"], ledger["committed"])
        bundle_ids = [bundle.pk for bundle in self.bundle_skus]
        assert not StockLevel.objects.filter(sku_id__in=bundle_ids).exists()


@pytest.mark.slow
@pytest.mark.django_db
def test_random_bom_graphs_and_sales_keep_bundle_availability_exact():
    machine_test = BundleStockMachine.TestCase
    machine_test.settings = settings(
        max_examples=25,
        stateful_step_count=20,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    machine_test().runTest()
