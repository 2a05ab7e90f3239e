"""TikTok Shop is offered now that it has a connector (channels.connectors.tiktok)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("channels", "0028_ebay_platform"),
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
                    ("tiktok", "TikTok Shop"),
                ],
                max_length=16,
            ),
        ),
    ]
