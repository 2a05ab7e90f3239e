"""Asynchronous writes (feeds, jobs): what a channel accepted and has not applied yet."""

import django.db.models.deletion
from django.db import migrations, models

from channels.migrations import _schedules

SCHEDULES = [
    _schedules.Schedule(
        name="Sweep submitted writes",
        task="channels.sweep_submitted_writes",
        every_s=60,
        description="Asks again about asynchronous writes waiting over a minute "
        "(channels.pipeline.push.sweep_submitted_writes): the net under scheduled settlements.",
    ),
]


class Migration(migrations.Migration):
    dependencies = [
        ("channels", "0018_listing_lookup_by_any_identifier"),
    ]

    operations = [
        migrations.AlterField(
            model_name="pushattempt",
            name="outcome",
            field=models.CharField(
                choices=[
                    ("applied", "Applied"),
                    ("stale", "Compare-and-set stale (drift)"),
                    ("rejected", "Rejected by the channel"),
                    ("failed", "Failed (channel error)"),
                    ("throttled", "Throttled"),
                    ("shadow", "Shadow (not sent)"),
                    ("submitted", "Submitted (accepted, not applied yet)"),
                ],
                max_length=16,
            ),
        ),
        migrations.CreateModel(
            name="SubmittedWrite",
            fields=[
                (
                    "listing",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        related_name="submitted_write",
                        serialize=False,
                        to="channels.listing",
                    ),
                ),
                ("submission_id", models.CharField(max_length=255)),
                ("quantity", models.IntegerField()),
                ("change_at", models.DateTimeField()),
                ("submitted_at", models.DateTimeField()),
                ("attempt_number", models.PositiveIntegerField(default=1)),
                (
                    "channel",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="submitted_writes",
                        to="channels.channel",
                    ),
                ),
            ],
            options={
                "indexes": [
                    models.Index(
                        fields=["channel", "submitted_at"], name="submittedwrite_channel_age"
                    )
                ],
            },
        ),
        migrations.RunPython(
            _schedules.creator(SCHEDULES), _schedules.deleter(SCHEDULES), elidable=False
        ),
    ]
