"""A listing held by its platform until a time (eBay's daily revision cap) says why, for
the operator; a database default so the outbox trigger's INSERT need not name it."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("channels", "0029_tiktok_platform"),
    ]

    operations = [
        migrations.AddField(
            model_name="pendingpush",
            name="held_reason",
            field=models.CharField(blank=True, db_default="", max_length=500),
        ),
    ]
