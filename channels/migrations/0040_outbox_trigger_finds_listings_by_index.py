"""The outbox trigger's function installed again: "which listings a stock change affects"
(``channels.rules.affected_by_sku_sql``) now finds them through the listings' SKU index.

Written as "the SKU OR one of its bundles", the condition read every listing for every
stock change of a listed SKU, inside the stock row's lock. The reverse restores the text
migration 0022 installed, copied here as it was.
"""

from django.db import migrations

from channels.rules import MARK_LISTINGS_OWED_FUNCTION

# sha256 of MARK_LISTINGS_OWED_FUNCTION as this migration was written.
INSTALLED_SHA256 = "d2f2c2df265f1fb3c25c82a4a2961d989a8c4bd3cb8056235144b32b5be8fc17"

PREVIOUS_FUNCTION = """
CREATE OR REPLACE FUNCTION channels_mark_listings_owed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM channels_listing WHERE sku_id = NEW.sku_id)
       AND NOT EXISTS (SELECT 1 FROM bundles_bundlecomponent
                        WHERE component_id = NEW.sku_id) THEN
        RETURN NULL;
    END IF;
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


class Migration(migrations.Migration):
    dependencies = [("channels", "0039_webhook_receipts_never_tried_index")]

    operations = [
        migrations.RunSQL(sql=MARK_LISTINGS_OWED_FUNCTION, reverse_sql=PREVIOUS_FUNCTION)
    ]
