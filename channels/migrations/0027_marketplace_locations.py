"""Stock a channel holds itself (Amazon FBA): marketplace locations read, listings it fulfils
never pushed; the stock read scheduled every 5 minutes (editable in the admin)."""

import django.db.models.deletion
from django.db import migrations, models

from channels.migrations import _schedules

SCHEDULES = [
    _schedules.Schedule(
        name="Read stock held by marketplaces",
        task="channels.wake_marketplace_stock_reads",
        every_s=300,
        description="Reads the stock each channel holds itself (Amazon FBA summaries) into "
        "its marketplace locations, catching counts whose notification never came "
        "(channels.pipeline.marketplace_stock.read_marketplace_stock).",
    ),
]


class Migration(migrations.Migration):
    dependencies = [
        ("channels", "0026_notification_pulls_by_the_consumer"),
        ("inventory", "0005_marketplace_stock"),
    ]

    operations = [
        migrations.AddField(
            model_name="historicallisting",
            name="fulfilled_by_channel",
            field=models.BooleanField(
                default=False,
                help_text="The channel holds and ships this item's stock (e.g. Amazon FBA): never pushed; its stock is read into the channel's marketplace location.",
            ),
        ),
        migrations.AddField(
            model_name="listing",
            name="fulfilled_by_channel",
            field=models.BooleanField(
                default=False,
                help_text="The channel holds and ships this item's stock (e.g. Amazon FBA): never pushed; its stock is read into the channel's marketplace location.",
            ),
        ),
        migrations.CreateModel(
            name="MarketplaceLocation",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("marketplace_id", models.CharField(max_length=64)),
                ("counted_until", models.DateTimeField(blank=True, null=True)),
                ("last_error", models.TextField(blank=True)),
                (
                    "channel",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="marketplace_locations",
                        to="channels.channel",
                    ),
                ),
                (
                    "location",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="marketplace_of",
                        to="inventory.location",
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("channel", "marketplace_id"),
                        name="marketplacelocation_one_per_region",
                    )
                ],
            },
        ),
        migrations.RunPython(
            _schedules.creator(SCHEDULES), _schedules.deleter(SCHEDULES), elidable=False
        ),
    ]
