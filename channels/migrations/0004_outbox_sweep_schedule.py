"""Schedule the outbox sweep in django-celery-beat (editable in the admin)."""

from django.db import migrations
from django.utils import timezone

SCHEDULES = [
    (
        "Sweep the channel outbox",
        "channels.sweep_outbox",
        10,
        "Wakes the pusher of every channel with a due, unclaimed push "
        "(channels.services.sweep_outbox): the safety net under on-commit wake-ups.",
    ),
]


def _mark_schedule_changed(apps):
    # A running beat (DatabaseScheduler) reloads its schedule only when this row moves.
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")
    PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})


def create_schedules(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    for name, task, every_s, description in SCHEDULES:
        interval = (
            IntervalSchedule.objects.filter(every=every_s, period="seconds").order_by("pk").first()
        ) or IntervalSchedule.objects.create(every=every_s, period="seconds")
        PeriodicTask.objects.get_or_create(
            name=name,
            defaults={
                "task": task,
                "interval": interval,
                "expire_seconds": every_s,
                "description": description,
            },
        )
    _mark_schedule_changed(apps)


def delete_schedules(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(name__in=[name for name, *_ in SCHEDULES]).delete()
    _mark_schedule_changed(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("channels", "0003_outbox_trigger"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_schedules, delete_schedules)]
