"""Celery tasks of the inventory app: thin interfaces over ``inventory.services``."""

from __future__ import annotations

from inventory import services
from nventory.celery import app


# Scheduled every 60 s by migration 0002 (a django-celery-beat PeriodicTask). The service
# re-checks each reservation under its row lock, so two overlapping runs are harmless.
@app.task(name="inventory.expire_reservations", acks_late=True, ignore_result=True)
def expire_reservations_task() -> int:
    """Expire every active reservation past its expiry; return how many expired."""
    return services.expire_reservations()
