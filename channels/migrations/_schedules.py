"""Data-migration helpers for django-celery-beat interval schedules (not a migration).

An existing periodic task keeps whatever an operator set in the admin; a running beat
(DatabaseScheduler) reloads its schedule only when ``PeriodicTasks.last_update`` moves.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from django.utils import timezone


@dataclass(frozen=True)
class Schedule:
    name: str
    task: str
    every_s: int
    description: str


def _mark_schedule_changed(apps: Any) -> None:
    periodic_tasks = apps.get_model("django_celery_beat", "PeriodicTasks")
    periodic_tasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})


def creator(schedules: Sequence[Schedule]) -> Callable[[Any, Any], None]:
    def create(apps: Any, schema_editor: Any) -> None:
        interval_schedule = apps.get_model("django_celery_beat", "IntervalSchedule")
        periodic_task = apps.get_model("django_celery_beat", "PeriodicTask")
        for schedule in schedules:
            # No unique constraint on IntervalSchedule: reuse the oldest equal row.
            interval = (
                interval_schedule.objects.filter(every=schedule.every_s, period="seconds")
                .order_by("pk")
                .first()
            ) or interval_schedule.objects.create(every=schedule.every_s, period="seconds")
            periodic_task.objects.get_or_create(
                name=schedule.name,
                defaults={
                    "task": schedule.task,
                    "interval": interval,
                    # A run still queued after one period is stale: the next replaces it.
                    "expire_seconds": schedule.every_s,
                    "description": schedule.description,
                },
            )
        _mark_schedule_changed(apps)

    return create


def deleter(schedules: Sequence[Schedule]) -> Callable[[Any, Any], None]:
    def delete(apps: Any, schema_editor: Any) -> None:
        periodic_task = apps.get_model("django_celery_beat", "PeriodicTask")
        periodic_task.objects.filter(name__in=[s.name for s in schedules]).delete()
        _mark_schedule_changed(apps)

    return delete
