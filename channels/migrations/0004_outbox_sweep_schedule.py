"""Schedule the outbox sweep in django-celery-beat (editable in the admin)."""

from django.db import migrations

from channels.migrations import _schedules

SCHEDULES = [
    _schedules.Schedule(
        name="Sweep the channel outbox",
        task="channels.sweep_outbox",
        every_s=10,
        description="Wakes the pusher of every channel with a due, unclaimed push "
        "(channels.services.sweep_outbox): the safety net under on-commit wake-ups.",
    ),
]


class Migration(migrations.Migration):
    dependencies = [
        ("channels", "0003_outbox_trigger"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        migrations.RunPython(
            _schedules.creator(SCHEDULES), _schedules.deleter(SCHEDULES), elidable=False
        )
    ]
