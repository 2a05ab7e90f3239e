"""Only platforms with a connector are offered; the others return with their connectors."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("channels", "0016_channel_previous_webhook_secret"),
    ]

    operations = [
        migrations.AlterField(
            model_name="channel",
            name="platform",
            field=models.CharField(choices=[("shopify", "Shopify")], max_length=16),
        ),
    ]
