"""The outbox trigger: a stock change marks its listings owed in the same transaction.

A trigger rather than a call in the services keeps ``inventory`` unaware of channels, puts
the outbox write inside the statement that changes stock (no extra round trip while the
row is locked), and catches every change, whoever makes it.

Times are ``statement_timestamp()``, as Django's ``Now()`` is on PostgreSQL, so rows
written by the trigger, the ORM and ``channels.pipeline.push`` are judged on one clock.
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
     WHERE listing.sku_id = NEW.sku_id
       AND listing.is_active
     ORDER BY listing.id  -- one lock order for every writer of these rows
    ON CONFLICT (listing_id) DO UPDATE
       SET generation = pending.generation + 1,
           last_change_at = statement_timestamp();
    RETURN NULL;
END;
$$;
"""

CREATE_TRIGGERS = """
CREATE TRIGGER stocklevel_marks_listings_owed_on_insert
AFTER INSERT ON inventory_stocklevel
FOR EACH ROW
WHEN (NEW.on_hand - NEW.committed - NEW.reserved <> 0)
EXECUTE FUNCTION channels_mark_listings_owed();

CREATE TRIGGER stocklevel_marks_listings_owed_on_update
AFTER UPDATE OF on_hand, committed, reserved ON inventory_stocklevel
FOR EACH ROW
WHEN (NEW.on_hand - NEW.committed - NEW.reserved
      IS DISTINCT FROM OLD.on_hand - OLD.committed - OLD.reserved)
EXECUTE FUNCTION channels_mark_listings_owed();
"""

DROP_TRIGGERS = """
DROP TRIGGER IF EXISTS stocklevel_marks_listings_owed_on_insert ON inventory_stocklevel;
DROP TRIGGER IF EXISTS stocklevel_marks_listings_owed_on_update ON inventory_stocklevel;
DROP FUNCTION IF EXISTS channels_mark_listings_owed();
"""


class Migration(migrations.Migration):
    dependencies = [
        ("channels", "0002_sync_pipeline"),
        ("inventory", "0003_ledger_indexes_without_pattern_ops"),
    ]

    operations = [
        migrations.RunSQL(
            sql=MARK_LISTINGS_OWED_FUNCTION + CREATE_TRIGGERS, reverse_sql=DROP_TRIGGERS
        ),
    ]
