"""Message lines find listings by any platform's identifier keys: one GIN containment index
over extra_identifiers replaces the expression index on Shopify's variant id alone."""

import django.contrib.postgres.indexes
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("channels", "0017_platforms_with_a_connector"),
        ("inventory", "0004_ledger_without_database_foreign_keys"),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name="listing",
            name="listing_variant_id",
        ),
        migrations.AddIndex(
            model_name="listing",
            index=django.contrib.postgres.indexes.GinIndex(
                fields=["extra_identifiers"],
                name="listing_extra_identifiers",
                opclasses=["jsonb_path_ops"],
            ),
        ),
    ]
