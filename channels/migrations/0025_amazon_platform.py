"""Amazon is offered now that it has a connector (channels.connectors.amazon)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("channels", "0024_walmart_platform"),
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
                ],
                max_length=16,
            ),
        ),
    ]
