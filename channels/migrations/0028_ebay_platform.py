"""eBay is offered now that it has a connector (channels.connectors.ebay)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("channels", "0027_marketplace_locations"),
    ]

    operations = [
        migrations.AlterField(
            model_name="channel",
            name="platform",
            field=models.CharField(
                choices=[
                    ("shopify", "Shopify"),
                    ("walmart", "Walmart Marketplace"),
                    ("amazon", "Amazon"),
                    ("ebay", "eBay"),
                ],
                max_length=16,
            ),
        ),
    ]
