"""Queues are long-polled by the notifications process (manage.py consume_notifications),
not pulled every 10 s by beat: a beat pull held an ingest thread for its whole long poll."""

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
    dependencies = [("channels", "0025_amazon_platform")]

    operations = [
        migrations.RunPython(
            _schedules.deleter(SCHEDULES), _schedules.creator(SCHEDULES), elidable=False
        )
    ]
