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
        time.sleep(0.5)  # the reservation's row is in, its stock statement waits on ours
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
