"""Schedule the reservation-expiry sweep in django-celery-beat (editable in the admin)."""

from django.db import migrations
from django.utils import timezone

TASK_NAME = "inventory.expire_reservations"
PERIODIC_TASK_NAME = "Expire stale reservations"
EVERY_S = 60


def _mark_schedule_changed(apps):
    # PeriodicTask.save() does this, but migrations use the historical model without it;
    # a running beat (DatabaseScheduler) reloads its schedule only when this row moves.
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")
    PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})


def create_schedule(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    # IntervalSchedule has no unique constraint, so an equal row may already exist more
    # than once; reuse the oldest instead of letting get_or_create fail on duplicates.
    interval = (
        IntervalSchedule.objects.filter(every=EVERY_S, period="seconds").order_by("pk").first()
    )
    if interval is None:
        interval = IntervalSchedule.objects.create(every=EVERY_S, period="seconds")
    # An existing task keeps whatever an operator set in the admin.
    _, created = PeriodicTask.objects.get_or_create(
        name=PERIODIC_TASK_NAME,
        defaults={
            "task": TASK_NAME,
            "interval": interval,
            # A run still queued after one period is stale: the next run replaces it.
            "expire_seconds": EVERY_S,
            "description": "Releases reserved units of every active reservation whose "
            "expiry has passed (inventory.services.expire_reservations).",
        },
    )
    if created:
        _mark_schedule_changed(apps)


def delete_schedule(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    deleted, _ = PeriodicTask.objects.filter(name=PERIODIC_TASK_NAME).delete()
    if deleted:
        _mark_schedule_changed(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("inventory", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_schedule, delete_schedule)]
