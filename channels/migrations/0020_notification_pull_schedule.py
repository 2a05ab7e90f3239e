"""Schedule the pulls of platforms that send their events through a queue (editable in the
admin)."""

from django.db import migrations

from channels.migrations import _schedules

SCHEDULES = [
    _schedules.Schedule(
        name="Pull notification queues",
        task="channels.wake_notification_pulls",
        every_s=10,
        description="Queues a pull of each channel whose platform sends order and stock "
        "events through a queue instead of webhooks (channels.pipeline.receive).",
    ),
]


class Migration(migrations.Migration):
    dependencies = [("channels", "0019_submitted_writes")]

    operations = [
        migrations.RunPython(
            _schedules.creator(SCHEDULES), _schedules.deleter(SCHEDULES), elidable=False
        )
    ]
