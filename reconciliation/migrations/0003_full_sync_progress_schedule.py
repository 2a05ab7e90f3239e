"""Schedule the progress of running full syncs every 30 s (editable in the admin).

Without it, a full sync started by beat stayed "running" until the next day's marked it
failed: only the command (``reconcile --full-sync --wait``) refreshed its progress.
"""

from django.db import migrations

from channels.migrations import _schedules

SCHEDULES = [
    _schedules.Schedule(
        name="Full sync progress",
        task="reconciliation.refresh_full_syncs_task",
        every_s=30,
        description="Counts what each running full sync still owes its channel and marks "
        "it done once nothing is owed (reconciliation.services.refresh_full_syncs).",
    ),
]


class Migration(migrations.Migration):
    dependencies = [("reconciliation", "0002_schedules")]

    operations = [
        migrations.RunPython(
            _schedules.creator(SCHEDULES), _schedules.deleter(SCHEDULES), elidable=False
        )
    ]
