"""The push rollup is added to in batches, not by every insert of push attempts.

The trigger of migration 0037 now only files the attempts it sees in
``channels_pushrollupbacklog``; ``channels_roll_up_pushes()`` takes the backlog (deleting
what it takes, so each attempt is counted once whatever commits when) and adds it to the
rollup with 0037's upsert. A beat task calls it every few seconds, and the console calls it
before it reads the rollup (``channels.kpis.roll_up_pushes``).

Why: the upsert ran once per push run, inside the transaction holding the run's outbox
rows, and at 100 orders a second it cost PostgreSQL about a millisecond an order, more
than the push run's other statements together; a stock change owing the same listings
waited for those rows, holding its stock row.
"""

import importlib

from django.db import migrations, models

from channels.migrations import _schedules

_ROLLUP_UPSERT = importlib.import_module(
    "channels.migrations.0037_push_rollup_and_buffer_snapshot"
)._ROLLUP_UPSERT

# The backlog taken as it is now: rows filed by transactions not committed yet are not
# seen, and wait for the next roll-up.
_TAKE_BACKLOG = """
WITH taken AS (DELETE FROM channels_pushrollupbacklog RETURNING attempt_id),
attempt AS (
    SELECT pushattempt.*
      FROM channels_pushattempt AS pushattempt
      JOIN taken ON taken.attempt_id = pushattempt.id
),"""

_FORWARD = f"""
CREATE OR REPLACE FUNCTION channels_rollup_pushes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO channels_pushrollupbacklog (attempt_id) SELECT id FROM inserted;
    RETURN NULL;
END
$$;

CREATE FUNCTION channels_roll_up_pushes() RETURNS void LANGUAGE sql AS $$
{_ROLLUP_UPSERT.replace("WITH attempt AS (SELECT * FROM {source}),", _TAKE_BACKLOG, 1).format()}
$$;
"""

_BACKWARD = f"""
SELECT channels_roll_up_pushes();
DROP FUNCTION channels_roll_up_pushes();
CREATE OR REPLACE FUNCTION channels_rollup_pushes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    {_ROLLUP_UPSERT.format(source="inserted")};
    RETURN NULL;
END
$$;
"""

SCHEDULES = [
    _schedules.Schedule(
        name="Roll up push attempts",
        task="channels.roll_up_pushes",
        every_s=5,
        description="Adds the push attempts recorded since the last roll-up to the push "
        "rollup the console reads (channels.kpis.roll_up_pushes); the console also rolls "
        "them up before it reads.",
    ),
]


class Migration(migrations.Migration):
    dependencies = [
        ("channels", "0042_receipt_channel_index_in_delivery_key"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        migrations.CreateModel(
            name="PushRollupBacklog",
            fields=[("attempt_id", models.BigIntegerField(primary_key=True, serialize=False))],
        ),
        migrations.RunSQL(_FORWARD, _BACKWARD),
        migrations.RunPython(
            _schedules.creator(SCHEDULES), _schedules.deleter(SCHEDULES), elidable=False
        ),
    ]
