"""The outbox trigger's function is re-installed from ``channels.rules``, its one home.

"Which listings a SKU change affects" was written in this trigger (migrations 0003, 0007,
0012) and again in ``channels.pipeline.outbox``; both are now built from the fragments of
``channels.rules``, so a change to the rule reaches both. The text installed here is the
same function as 0012's. A later change to the rule's SQL needs a migration of its own that
runs ``CREATE OR REPLACE`` again and records the new text's checksum as
``INSTALLED_SHA256`` does below (tests/channels/test_rules_properties.py compares the rules
module's text with the checksum recorded last).

The reverse restores 0012's text, copied here as it was: history does not follow the rules
module.
"""

from django.db import migrations

from channels.rules import MARK_LISTINGS_OWED_FUNCTION

# sha256 of MARK_LISTINGS_OWED_FUNCTION as this migration was written.
INSTALLED_SHA256 = "bd8041eb4fb96499e57f0f285a2996b7fa0ceb7ca4ea4d9ffc745f87be7a392f"

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
    dependencies = [("channels", "0021_orders_out_of_order_and_unusable_lines")]

    operations = [
        migrations.RunSQL(sql=MARK_LISTINGS_OWED_FUNCTION, reverse_sql=PREVIOUS_FUNCTION)
    ]
