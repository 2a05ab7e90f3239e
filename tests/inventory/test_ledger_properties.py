"""Property-based: any sequence of stock operations keeps the ledger's invariants.

After every step: each stock level equals the sum of its ledger deltas, no figure is
negative, available is never negative (no shortfall is allowed here), and replaying an
earlier operation's idempotency key changes nothing.
"""

from __future__ import annotations

import uuid

import pytest
from django.db.models import Sum
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from inventory import services
from inventory.models import InventoryEvent, Reservation, StockLevel
from nventory.errors import ApplicationError
from tests import factories

quantities = st.integers(min_value=1, max_value=12)


class StockLedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.sku = factories.make_sku()
        self.locations = [factories.make_location(), factories.make_location()]
        self.done: list[tuple[str, dict]] = []
        self.reservation_ids: list[int] = []

    def _context(self, **fields) -> services.EventContext:
        return services.EventContext(idempotency_key=str(uuid.uuid4()), **fields)

    def _attempt(self, name: str, **arguments) -> None:
        """Run a service; a refusal is a valid outcome, and must change nothing."""
        before = self._snapshot()
        try:
            getattr(services, name)(**arguments)
        except ApplicationError:
            assert self._snapshot() == before
            return
        self.done.append((name, arguments))

    def _snapshot(self) -> list[tuple[int, int, int, int]]:
        # An empty stock row made on first use is not a change.
        levels = (
            StockLevel.objects.filter(sku=self.sku)
            .exclude(on_hand=0, committed=0, reserved=0)
            .order_by("pk")
            .values_list("pk", "on_hand", "committed", "reserved")
        )
        return [*levels, (InventoryEvent.objects.filter(sku=self.sku).count(), 0, 0, 0)]

    @rule(location=st.integers(0, 1), quantity=quantities)
    def receive(self, location: int, quantity: int) -> None:
        self._attempt(
            "receive_stock",
            sku_id=self.sku.pk,
            location_id=self.locations[location].pk,
            quantity=quantity,
            context=self._context(),
        )

    @rule(location=st.integers(0, 1), delta=st.integers(-8, 8).filter(bool))
    def adjust(self, location: int, delta: int) -> None:
        self._attempt(
            "adjust_stock",
            sku_id=self.sku.pk,
            location_id=self.locations[location].pk,
            delta=delta,
            context=self._context(reason="cycle count"),
        )

    @rule(source=st.integers(0, 1), quantity=quantities)
    def transfer(self, source: int, quantity: int) -> None:
        self._attempt(
            "transfer_stock",
            sku_id=self.sku.pk,
            from_location_id=self.locations[source].pk,
            to_location_id=self.locations[1 - source].pk,
            quantity=quantity,
            context=self._context(),
        )

    @rule(
        name=st.sampled_from(["commit_order", "cancel_order", "ship_order"]),
        location=st.integers(0, 1),
        quantity=quantities,
    )
    def order(self, name: str, location: int, quantity: int) -> None:
        self._attempt(
            name,
            sku_id=self.sku.pk,
            location_id=self.locations[location].pk,
            quantity=quantity,
            context=self._context(),
        )

    @rule(location=st.integers(0, 1), quantity=quantities, restock=st.booleans())
    def return_goods(self, location: int, quantity: int, restock: bool) -> None:
        self._attempt(
            "return_order",
            sku_id=self.sku.pk,
            location_id=self.locations[location].pk,
            quantity=quantity,
            restock=restock,
            context=self._context(),
        )

    @rule(location=st.integers(0, 1), quantity=quantities)
    def reserve(self, location: int, quantity: int) -> None:
        context = self._context()
        self._attempt(
            "reserve_stock",
            sku_id=self.sku.pk,
            location_id=self.locations[location].pk,
            quantity=quantity,
            context=context,
        )
        reservation = Reservation.objects.filter(idempotency_key=context.idempotency_key).first()
        if reservation:
            self.reservation_ids.append(reservation.pk)

    @precondition(lambda self: self.reservation_ids)
    @rule(data=st.data(), confirm=st.booleans())
    def end_reservation(self, data: st.DataObject, confirm: bool) -> None:
        reservation_id = data.draw(st.sampled_from(self.reservation_ids))
        name = "confirm_reservation" if confirm else "release_reservation"
        self._attempt(name, reservation_id=reservation_id, context=self._context())

    @precondition(lambda self: self.done)
    @rule(data=st.data())
    def replay(self, data: st.DataObject) -> None:
        """Repeating an operation that succeeded, with its key, changes nothing."""
        name, arguments = data.draw(st.sampled_from(self.done))
        before = self._snapshot()
        getattr(services, name)(**arguments)
        assert self._snapshot() == before

    @invariant()
    def levels_are_the_sum_of_the_ledger(self) -> None:
        for level in StockLevel.objects.filter(sku=self.sku):
            sums = InventoryEvent.objects.filter(
                sku=self.sku, location_id=level.location_id
            ).aggregate(
                on_hand=Sum("delta_on_hand", default=0),
                committed=Sum("delta_committed", default=0),
                reserved=Sum("delta_reserved", default=0),
            )
            assert (level.on_hand, level.committed, level.reserved) == (
                sums["on_hand"],
                sums["committed"],
                sums["reserved"],
            )
            assert min(level.on_hand, level.committed, level.reserved) >= 0
            assert level.available >= 0

    @invariant()
    def held_units_match_active_reservations(self) -> None:
        for level in StockLevel.objects.filter(sku=self.sku):
            held = Reservation.objects.filter(
                sku=self.sku, location_id=level.location_id, status=Reservation.Status.ACTIVE
            ).aggregate(total=Sum("quantity", default=0))["total"]
            assert level.reserved == held


@pytest.mark.django_db
def test_random_operation_sequences_keep_ledger_invariants():
    machine_test = StockLedgerMachine.TestCase
    machine_test.settings = settings(
        max_examples=40,
        stateful_step_count=25,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    machine_test().runTest()
