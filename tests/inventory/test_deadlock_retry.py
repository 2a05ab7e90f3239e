"""A stock service whose transaction PostgreSQL ends to break a deadlock runs again.

A real deadlock, on real connections: another transaction holds the stock row a
reservation needs, and then waits for the reservation's own uncommitted row. PostgreSQL
ends the reservation's transaction (the first to wait); the service runs it again and the
caller gets its reservation, not an error 500.
"""

from __future__ import annotations

import threading
import time

import psycopg
import pytest
from django.db import connection

from inventory import services
from inventory.models import Reservation, StockLevel
from tests import factories

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def _other_connection() -> psycopg.Connection:
    settings = connection.settings_dict
    return psycopg.connect(
        host=settings["HOST"] or None,
        port=settings["PORT"] or None,
        user=settings["USER"],
        password=settings["PASSWORD"] or None,
        dbname=settings["NAME"],
    )


def _wait_until_the_service_waits_for_a_lock(
    other: psycopg.Connection, service: threading.Thread, outcome: dict[str, object]
) -> None:
    """Until a backend other than ``other`` waits for a lock: the service's transaction,
    waiting first, is the one PostgreSQL ends when ``other`` closes the cycle (a fixed
    sleep let ``other`` wait first on a slow machine, and end itself instead)."""
    deadline = time.monotonic() + 30
    with _other_connection() as watcher:
        # Each look in a transaction of its own: a transaction reads the backends' status
        # once, and would never see the service's backend arrive.
        watcher.autocommit = True
        while time.monotonic() < deadline and service.is_alive():
            waiting = watcher.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock' AND pid <> %s",
                [other.info.backend_pid],
            ).fetchone()
            if waiting and waiting[0]:
                return
            time.sleep(0.01)
    raise AssertionError(f"the service never waited for the other's row lock: {outcome}")


def test_a_reservation_ended_by_a_deadlock_is_made_on_its_next_try():
    location = factories.make_location()
    sku = factories.make_sku()
    factories.stock(sku, location, 10)
    key = "reservation-in-a-deadlock"
    outcome: dict[str, object] = {}

    def reserve() -> None:
        try:
            outcome["reservation"] = services.reserve_stock(
                sku_id=sku.pk,
                location_id=location.pk,
                quantity=3,
                context=services.EventContext(idempotency_key=key),
            )
        except BaseException as error:
            outcome["error"] = error
        finally:
            connection.close()

    with _other_connection() as other:
        other.execute("SELECT id FROM inventory_stocklevel WHERE sku_id = %s FOR UPDATE", [sku.pk])
        reserving = threading.Thread(target=reserve)
        reserving.start()
        # The reservation's row is in, its stock statement waits on ours.
        _wait_until_the_service_waits_for_a_lock(other, reserving, outcome)
        # Now ours waits on the reservation's row: a cycle, which PostgreSQL breaks by
        # ending the reservation's transaction (it has waited longest).
        other.execute(
            "INSERT INTO inventory_reservation (quantity, status, expires_at,"
            " external_reference, idempotency_key, created_at, updated_at, location_id,"
            " sku_id) VALUES (1, 'active', now(), '', %s, now(), now(), %s, %s)",
            [key, location.pk, sku.pk],
        )
        other.rollback()  # let its next try through
    reserving.join(timeout=30)

    assert "error" not in outcome, outcome.get("error")
    assert isinstance(outcome["reservation"], Reservation)
    assert Reservation.objects.filter(idempotency_key=key).count() == 1
    assert StockLevel.objects.get(sku=sku, location=location).reserved == 3


def test_an_order_of_two_lines_ended_by_a_deadlock_is_committed_on_its_next_try():
    """The lines' rows are locked in key order: another transaction holding the second row
    and then asking for the first closes the cycle, and the order is ended and run again."""
    location = factories.make_location()
    first_sku, second_sku = factories.make_sku(), factories.make_sku()
    factories.stock(first_sku, location, 10)
    factories.stock(second_sku, location, 10)
    first_row, second_row = (
        StockLevel.objects.get(sku=sku, location=location).pk for sku in (first_sku, second_sku)
    )
    rows_in_lock_order = sorted([first_row, second_row])
    outcome: dict[str, object] = {}

    def commit() -> None:
        try:
            outcome["events"] = services.commit_order_lines(
                lines=[(first_sku.pk, location.pk, 2), (second_sku.pk, location.pk, 3)],
                context=services.EventContext(idempotency_key="two-lines-in-a-deadlock"),
            )
        except BaseException as error:
            outcome["error"] = error
        finally:
            connection.close()

    with _other_connection() as other:
        other.execute(
            "SELECT id FROM inventory_stocklevel WHERE id = %s FOR UPDATE", [rows_in_lock_order[1]]
        )
        committing = threading.Thread(target=commit)
        committing.start()
        # The order holds the first row and waits for the second, ours.
        _wait_until_the_service_waits_for_a_lock(other, committing, outcome)
        # Ours now waits for the first: PostgreSQL ends the order's transaction.
        other.execute(
            "SELECT id FROM inventory_stocklevel WHERE id = %s FOR UPDATE", [rows_in_lock_order[0]]
        )
        other.rollback()
    committing.join(timeout=30)

    assert "error" not in outcome, outcome.get("error")
    events = outcome["events"]
    assert isinstance(events, list) and len(events) == 2
    assert StockLevel.objects.get(sku=first_sku, location=location).committed == 2
    assert StockLevel.objects.get(sku=second_sku, location=location).committed == 3
