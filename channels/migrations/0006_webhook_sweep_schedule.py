"""Schedule the sweep of unprocessed webhook receipts (editable in the admin)."""

from django.db import migrations

from channels.migrations import _schedules

SCHEDULES = [
    _schedules.Schedule(
        name="Sweep unprocessed webhook receipts",
        task="channels.sweep_webhook_receipts",
        every_s=30,
        description="Re-enqueues webhook receipts left received or failed for 30 s "
        "(channels.pipeline.ingest.sweep_unprocessed_receipts): the net under on-commit enqueues.",
    ),
]


class Migration(migrations.Migration):
    dependencies = [("channels", "0005_edit_history")]

    operations = [
        migrations.RunPython(
            _schedules.creator(SCHEDULES), _schedules.deleter(SCHEDULES), elidable=False
        )
    ]
