"""Cancellations and refunds wait for an order that comes after them; a line that cannot be
used is recorded with its reason while the order's other lines commit."""

from django.db import migrations, models

from channels.migrations import _schedules

SCHEDULES = [
    _schedules.Schedule(
        name="Expire receipts whose order never came",
        task="channels.expire_awaiting_receipts",
        every_s=300,
        description="Cancellations and refunds that came before their order wait for it "
        "for the platform's redelivery window; past it they are shown as 'order never came' "
        "(channels.pipeline.ingest.expire_awaiting_receipts).",
    ),
]


class Migration(migrations.Migration):
    dependencies = [
        ("channels", "0020_notification_pull_schedule"),
    ]

    operations = [
        migrations.AddField(
            model_name="unmappedline",
            name="reason",
            field=models.CharField(
                blank=True, default="No listing has these identifiers.", max_length=500
            ),
        ),
        migrations.AddField(
            model_name="webhookreceipt",
            name="awaited_order",
            field=models.CharField(blank=True, db_default="", max_length=255),
        ),
        migrations.AddField(
            model_name="webhookreceipt",
            name="awaited_until",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AlterField(
            model_name="webhookreceipt",
            name="status",
            field=models.CharField(
                choices=[
                    ("received", "Received"),
                    ("processed", "Processed"),
                    ("ignored", "Ignored (topic not used)"),
                    ("quarantined", "Quarantined (signed but unparseable)"),
                    ("failed", "Failed (tried again by the sweep while tries remain)"),
                    ("awaiting_order", "Waiting for its order"),
                    ("order_missing", "Its order never came (check it)"),
                ],
                default="received",
                max_length=16,
            ),
        ),
        migrations.AddIndex(
            model_name="webhookreceipt",
            index=models.Index(
                condition=models.Q(("status", "awaiting_order")),
                fields=["channel", "awaited_order"],
                name="webhook_awaiting_order",
            ),
        ),
        migrations.RunPython(
            _schedules.creator(SCHEDULES), _schedules.deleter(SCHEDULES), elidable=False
        ),
    ]
