"""The outbox trigger also owes a push to every listing of every bundle containing the SKU.

A bundle has no stock of its own: a change to any of its leaf components changes what it
can list. ``bundles_bundlecomponent`` holds every bundle's leaf components (nesting
resolved), so the dependants are one indexed lookup inside the same statement.
"""

from django.db import migrations

MARK_LISTINGS_OWED_FUNCTION = """
CREATE OR REPLACE FUNCTION channels_mark_listings_owed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO channels_pendingpush AS pending (listing_id, channel_id, generation,
                                                 attempts, errors)
    SELECT listing.id, listing.channel_id, 1, 0, '[]'::jsonb
      FROM channels_listing AS listing
      JOIN channels_channel_locations AS sells_from
        ON sells_from.channel_id = listing.channel_id
       AND sells_from.location_id = NEW.location_id
     WHERE (listing.sku_id = NEW.sku_id
            OR listing.sku_id IN (SELECT bundle_id FROM bundles_bundlecomponent
                                   WHERE component_id = NEW.sku_id))
       AND listing.is_active
     ORDER BY listing.id  -- one lock order for every writer of these rows
    ON CONFLICT (listing_id) DO UPDATE
       SET generation = pending.generation + 1,
           last_change_at = statement_timestamp();
    RETURN NULL;
END;
$$;
"""

PREVIOUS_FUNCTION = """
CREATE OR REPLACE FUNCTION channels_mark_listings_owed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO channels_pendingpush AS pending (listing_id, channel_id, generation,
                                                 attempts, errors)
    SELECT listing.id, listing.channel_id, 1, 0, '[]'::jsonb
      FROM channels_listing AS listing
      JOIN channels_channel_locations AS sells_from
        ON sells_from.channel_id = listing.channel_id
       AND sells_from.location_id = NEW.location_id
     WHERE listing.sku_id = NEW.sku_id
       AND listing.is_active
     ORDER BY listing.id
    ON CONFLICT (listing_id) DO UPDATE
       SET generation = pending.generation + 1,
           last_change_at = statement_timestamp();
    RETURN NULL;
END;
$$;
"""


class Migration(migrations.Migration):
    dependencies = [
        ("channels", "0006_webhook_sweep_schedule"),
        ("bundles", "0001_bills_of_materials"),
    ]

    operations = [
        migrations.RunSQL(sql=MARK_LISTINGS_OWED_FUNCTION, reverse_sql=PREVIOUS_FUNCTION)
    ]
