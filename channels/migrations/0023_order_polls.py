"""Orders read back from each channel, the backup for order events that never arrived; the
poll is scheduled every 5 minutes (editable in the admin)."""

import django.db.models.deletion
from django.db import migrations, models

from channels.migrations import _schedules

SCHEDULES = [
    _schedules.Schedule(
        name="Poll recent orders",
        task="channels.wake_order_polls",
        every_s=300,
        description="Reads each channel's recently changed orders and ingests any whose "
        "events never arrived (channels.pipeline.receive.poll_orders).",
    ),
]


class Migration(migrations.Migration):
    dependencies = [
        ("channels", "0022_outbox_trigger_from_rules"),
    ]

    operations = [
        migrations.CreateModel(
            name="OrderPoll",
            fields=[
                (
                    "channel",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        related_name="order_poll",
                        serialize=False,
                        to="channels.channel",
                    ),
                ),
                ("polled_until", models.DateTimeField()),
                ("last_error", models.TextField(blank=True)),
            ],
        ),
        migrations.RunPython(
            _schedules.creator(SCHEDULES), _schedules.deleter(SCHEDULES), elidable=False
        ),
    ]
