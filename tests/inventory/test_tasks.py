from __future__ import annotations

import importlib

import pytest
from django.apps import apps as global_apps
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from inventory import services
from inventory.models import InventoryEvent, Reservation, StockLevel
from inventory.tasks import expire_reservations_task
from nventory.celery import app
from tests import factories

schedule_migration = importlib.import_module(
    "inventory.migrations.0002_reservation_expiry_schedule"
)


def _reserve(sku, location, quantity: int, ttl_s: int) -> Reservation:
    return services.reserve_stock(
        sku_id=sku.pk,
        location_id=location.pk,
        quantity=quantity,
        context=factories.context(),
        ttl_s=ttl_s,
    )


def test_expire_task_expires_only_reservations_past_their_expiry(sku, location):
    """An expired reservation is released; an unexpired one keeps its units."""
    factories.stock(sku, location, 10)
    expired = _reserve(sku, location, 2, ttl_s=0)
    active = _reserve(sku, location, 3, ttl_s=3600)

    assert expire_reservations_task() == 1

    expired.refresh_from_db()
    active.refresh_from_db()
    assert expired.status == Reservation.Status.EXPIRED
    assert active.status == Reservation.Status.ACTIVE
    level = StockLevel.objects.get(sku=sku, location=location)
    assert (level.reserved, level.available) == (3, 7)
    assert InventoryEvent.objects.filter(reservation=expired, kind="reservation_expired").exists()


def test_expire_task_twice_changes_nothing_the_second_time(sku, location):
    """A second run (beat firing twice) finds nothing to do and writes nothing."""
    factories.stock(sku, location, 5)
    _reserve(sku, location, 4, ttl_s=0)
    expire_reservations_task()
    events = InventoryEvent.objects.count()

    assert expire_reservations_task() == 0

    assert InventoryEvent.objects.count() == events
    assert StockLevel.objects.get(sku=sku, location=location).reserved == 0


def test_expire_task_runs_through_celery(sku, location):
    """Applied as a Celery task (in process), the task does the same work."""
    factories.stock(sku, location, 5)
    reservation = _reserve(sku, location, 1, ttl_s=0)

    result = expire_reservations_task.apply()

    assert result.successful()
    reservation.refresh_from_db()
    assert reservation.status == Reservation.Status.EXPIRED


def test_expire_task_options():
    """Registered under its explicit name, acked late, result ignored."""
    registered = app.tasks["inventory.expire_reservations"]
    assert registered.run is expire_reservations_task.run
    assert expire_reservations_task.acks_late is True
    assert expire_reservations_task.ignore_result is True


@pytest.mark.django_db
def test_beat_schedule_exists_after_migrations():
    """The data migration scheduled the expiry task every 60 seconds."""
    periodic = PeriodicTask.objects.select_related("interval").get(
        name="Expire stale reservations"
    )

    assert periodic.task == "inventory.expire_reservations"
    assert periodic.task in app.tasks
    assert periodic.enabled is True
    assert periodic.interval is not None
    assert (periodic.interval.every, periodic.interval.period) == (60, IntervalSchedule.SECONDS)
    assert periodic.expire_seconds == 60


@pytest.mark.django_db
def test_schedule_migration_is_idempotent_and_reversible():
    """Running the migration again adds nothing and keeps admin edits; reverse removes it."""
    name = "Expire stale reservations"
    PeriodicTask.objects.filter(name=name).update(enabled=False)
    intervals = IntervalSchedule.objects.count()

    schedule_migration.create_schedule(global_apps, None)

    assert PeriodicTask.objects.filter(name=name).count() == 1
    assert PeriodicTask.objects.get(name=name).enabled is False
    assert IntervalSchedule.objects.count() == intervals

    schedule_migration.delete_schedule(global_apps, None)
    assert not PeriodicTask.objects.filter(name=name).exists()

    schedule_migration.create_schedule(global_apps, None)
    assert PeriodicTask.objects.get(name=name).task == "inventory.expire_reservations"
    assert IntervalSchedule.objects.count() == intervals
