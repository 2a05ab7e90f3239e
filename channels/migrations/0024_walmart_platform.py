"""Walmart Marketplace is offered: its connector is registered (system check channels.E001)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("channels", "0023_order_polls"),
    ]

    operations = [
        migrations.AlterField(
            model_name="channel",
            name="platform",
            field=models.CharField(
                choices=[("shopify", "Shopify"), ("walmart", "Walmart Marketplace")],
                max_length=16,
            ),
        ),
    ]
