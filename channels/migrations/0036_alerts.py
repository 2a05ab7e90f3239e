"""Alerts (channels.alerts): one row per spell of a watched condition, and the beat
schedule that evaluates the conditions (editable in the admin)."""

import django.db.models.deletion
from django.db import migrations, models

from channels.migrations import _schedules

SCHEDULES = [
    _schedules.Schedule(
        name="Evaluate alerts",
        task="channels.evaluate_alerts",
        every_s=30,
        description="Opens an alert when a watched condition starts (latency, breaker, dead "
        "letters, oversell) and clears it when it ends, emailing the operators once at each "
        "(channels.alerts.evaluate_alerts).",
    ),
]


class Migration(migrations.Migration):
    dependencies = [
        ("channels", "0035_operator_workflow_records"),
    ]

    operations = [
        migrations.CreateModel(
            name="Alert",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "kind",
                    models.CharField(
                        choices=[
                            ("latency", "Sync latency over its threshold"),
                            ("breaker_open", "Circuit breaker open"),
                            ("dead_letters", "Dead letters piling up"),
                            ("oversell", "Oversell"),
                            ("channel_alert", "A channel alert to look at"),
                        ],
                        max_length=32,
                    ),
                ),
                ("key", models.CharField(max_length=255)),
                ("message", models.TextField()),
                ("figures", models.JSONField(blank=True, default=dict)),
                ("opened_at", models.DateTimeField()),
                ("cleared_at", models.DateTimeField(blank=True, null=True)),
                ("opened_email_sent_at", models.DateTimeField(blank=True, null=True)),
                ("cleared_email_sent_at", models.DateTimeField(blank=True, null=True)),
                (
                    "channel",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="condition_alerts",
                        to="channels.channel",
                    ),
                ),
            ],
            options={
                "ordering": ["-opened_at", "-pk"],
                "indexes": [
                    models.Index(fields=["-opened_at"], name="alert_opened_time"),
                    models.Index(
                        condition=models.Q(("cleared_at__isnull", True)),
                        fields=["opened_at"],
                        name="alert_open_ones",
                    ),
                ],
                "constraints": [
                    models.UniqueConstraint(
                        condition=models.Q(("cleared_at__isnull", True)),
                        fields=("key",),
                        name="alert_one_open_per_condition",
                    )
                ],
            },
        ),
        migrations.RunPython(
            _schedules.creator(SCHEDULES), _schedules.deleter(SCHEDULES), elidable=False
        ),
    ]
