"""The console's figures read at a bounded cost however long the history: a rollup of
push attempts per channel per minute and per quarter hour, kept by a trigger as attempts are
inserted (and filled from the attempts already there), and a snapshot of each channel's
buffered units, taken by a beat task.

The rollup is kept by the database, not by the services, so that every writer of
``channels_pushattempt`` (the push flow's raw insert, the bulk inserts, the settlement of
asynchronous writes) is counted the same way. The trigger is statement-level with a
transition table: one upsert per (channel, span, start) a batch touches, not one per attempt.
Those rows stay locked until the batch's transaction ends: the push flow records one
channel's batch per transaction, so two transactions never take them in opposite orders.
"""

import django.db.models.deletion
from django.db import migrations, models

from channels.migrations import _schedules

# A latency's bucket: eight per doubling from 30 s (the latency target), so that 30 s and
# 60 s (the alert line) are bucket edges and a p95 read from the histogram is on the right
# side of both. channels.kpis.latency_bucket_bounds gives a bucket's edges back.
_BUCKET_FUNCTION = """
CREATE FUNCTION channels_latency_bucket(ms double precision) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT floor(8 * ln(greatest(ms, 1) / 30000) / ln(2))::integer $$;

CREATE FUNCTION channels_histogram_add(a jsonb, b jsonb) RETURNS jsonb
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
    SELECT coalesce(jsonb_object_agg(bucket, total), '{}'::jsonb)
      FROM (SELECT bucket, sum(pushes::bigint) AS total
              FROM (SELECT * FROM jsonb_each_text(a) UNION ALL SELECT * FROM jsonb_each_text(b))
                   AS entry(bucket, pushes)
             GROUP BY bucket) AS summed
    $$;
"""

# What a set of attempts adds to the rollup, as an upsert; {source} is the attempts. The
# rules are the scorecard's (channels.kpis): a send is any attempt but shadow and throttled
# ones, an error a failed or rejected send; "acknowledged" is a submission's acceptance or
# an applied write that settles no submission; "applied" is an applied write's latency_ms.
_ROLLUP_UPSERT = """
WITH attempt AS (SELECT * FROM {source}),
spans AS (SELECT unnest(ARRAY[60, 900]) AS span_s),
counts AS (
    SELECT attempt.channel_id, spans.span_s,
           date_bin(make_interval(secs => spans.span_s), attempt.sent_at,
                    TIMESTAMPTZ '2000-01-01 00:00+00') AS start,
           count(*) FILTER (WHERE attempt.outcome NOT IN ('shadow', 'throttled')) AS sends,
           count(*) FILTER (WHERE attempt.outcome IN ('failed', 'rejected')) AS errors,
           count(*) FILTER (WHERE attempt.outcome = 'failed') AS failed_sends,
           count(*) FILTER (WHERE attempt.outcome <> 'shadow') AS pushes
      FROM attempt CROSS JOIN spans
     GROUP BY 1, 2, 3
),
latencies AS (
    SELECT 'acknowledged' AS stage, attempt.channel_id, attempt.acked_at,
           channels_latency_bucket(
               extract(epoch FROM (attempt.acked_at - attempt.change_at)) * 1000) AS bucket
      FROM attempt
     WHERE attempt.acked_at IS NOT NULL
       AND (attempt.outcome = 'submitted'
            OR (attempt.outcome = 'applied'
                AND NOT EXISTS (
                    SELECT 1 FROM channels_pushattempt submission
                     WHERE submission.listing_id = attempt.listing_id
                       AND submission.sent_at = attempt.sent_at
                       AND submission.outcome = 'submitted')))
    UNION ALL
    SELECT 'applied', attempt.channel_id, attempt.acked_at,
           channels_latency_bucket(attempt.latency_ms)
      FROM attempt
     WHERE attempt.outcome = 'applied' AND attempt.latency_ms IS NOT NULL
       AND attempt.acked_at IS NOT NULL
),
bucketed AS (
    SELECT stage, channel_id, spans.span_s,
           date_bin(make_interval(secs => spans.span_s), acked_at,
                    TIMESTAMPTZ '2000-01-01 00:00+00') AS start,
           bucket, count(*) AS pushes
      FROM latencies CROSS JOIN spans
     GROUP BY 1, 2, 3, 4, 5
),
histograms AS (
    SELECT channel_id, span_s, start,
           coalesce(jsonb_object_agg(bucket::text, pushes)
                        FILTER (WHERE stage = 'acknowledged'), '{{}}') AS acknowledged_ms,
           coalesce(jsonb_object_agg(bucket::text, pushes)
                        FILTER (WHERE stage = 'applied'), '{{}}') AS applied_ms
      FROM bucketed
     GROUP BY 1, 2, 3
)
INSERT INTO channels_pushrollup
       (channel_id, span_s, start, sends, errors, failed_sends, pushes, acknowledged_ms,
        applied_ms)
SELECT channel_id, span_s, start, coalesce(counts.sends, 0), coalesce(counts.errors, 0),
       coalesce(counts.failed_sends, 0), coalesce(counts.pushes, 0),
       coalesce(histograms.acknowledged_ms, '{{}}'), coalesce(histograms.applied_ms, '{{}}')
  FROM counts FULL JOIN histograms USING (channel_id, span_s, start)
 -- One order for every writer: two batches touching the same rows lock them alike.
 ORDER BY channel_id, span_s, start
ON CONFLICT (channel_id, span_s, start) DO UPDATE SET
       sends = channels_pushrollup.sends + EXCLUDED.sends,
       errors = channels_pushrollup.errors + EXCLUDED.errors,
       failed_sends = channels_pushrollup.failed_sends + EXCLUDED.failed_sends,
       pushes = channels_pushrollup.pushes + EXCLUDED.pushes,
       acknowledged_ms = channels_histogram_add(channels_pushrollup.acknowledged_ms,
                                                EXCLUDED.acknowledged_ms),
       applied_ms = channels_histogram_add(channels_pushrollup.applied_ms, EXCLUDED.applied_ms)
"""

_TRIGGER = f"""
CREATE FUNCTION channels_rollup_pushes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    {_ROLLUP_UPSERT.format(source="inserted")};
    RETURN NULL;
END
$$;

CREATE TRIGGER channels_pushattempt_rollup
    AFTER INSERT ON channels_pushattempt
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION channels_rollup_pushes();
"""

_DROP = """
DROP TRIGGER IF EXISTS channels_pushattempt_rollup ON channels_pushattempt;
DROP FUNCTION IF EXISTS channels_rollup_pushes();
DROP FUNCTION IF EXISTS channels_histogram_add(jsonb, jsonb);
DROP FUNCTION IF EXISTS channels_latency_bucket(double precision);
"""

SCHEDULES = [
    _schedules.Schedule(
        name="Take buffer snapshots",
        task="channels.take_buffer_snapshots",
        every_s=300,
        description="Works out the units each channel holds back now, for the scorecard "
        "and the charts (channels.services.take_buffer_snapshots).",
    ),
    _schedules.Schedule(
        name="Purge the push rollup",
        task="channels.purge_push_rollup",
        every_s=3600,
        description="Deletes the push rollup's rows older than the longest KPI window and "
        "a day (channels.services.purge_push_rollup).",
    ),
]


class Migration(migrations.Migration):
    dependencies = [
        ("channels", "0036_alerts"),
    ]

    operations = [
        migrations.CreateModel(
            name="BufferSnapshot",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("taken_at", models.DateTimeField()),
                ("available_units", models.BigIntegerField()),
                ("listed_units", models.BigIntegerField()),
                ("held_back_units", models.BigIntegerField()),
            ],
        ),
        migrations.CreateModel(
            name="PushRollup",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "span_s",
                    models.PositiveSmallIntegerField(
                        help_text="60: a minute; 900: a quarter hour."
                    ),
                ),
                ("start", models.DateTimeField()),
                ("sends", models.IntegerField(default=0)),
                ("errors", models.IntegerField(default=0)),
                ("failed_sends", models.IntegerField(default=0)),
                ("pushes", models.IntegerField(default=0)),
                ("acknowledged_ms", models.JSONField(default=dict)),
                ("applied_ms", models.JSONField(default=dict)),
            ],
        ),
        migrations.AddIndex(
            model_name="pushattempt",
            index=models.Index(
                condition=models.Q(("outcome", "submitted")),
                fields=["listing", "sent_at"],
                name="pushattempt_submissions",
            ),
        ),
        migrations.AddField(
            model_name="buffersnapshot",
            name="channel",
            field=models.OneToOneField(
                on_delete=django.db.models.deletion.CASCADE,
                related_name="+",
                to="channels.channel",
            ),
        ),
        migrations.AddField(
            model_name="pushrollup",
            name="channel",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE,
                related_name="+",
                to="channels.channel",
            ),
        ),
        migrations.AddIndex(
            model_name="pushrollup",
            index=models.Index(fields=["span_s", "start"], name="pushrollup_span_time"),
        ),
        migrations.AddConstraint(
            model_name="pushrollup",
            constraint=models.UniqueConstraint(
                fields=("channel", "span_s", "start"), name="pushrollup_one_per_span"
            ),
        ),
        migrations.RunSQL(_BUCKET_FUNCTION + _TRIGGER, _DROP),
        # The attempts already there, in one statement (the trigger sees only new ones).
        migrations.RunSQL(
            _ROLLUP_UPSERT.format(source="channels_pushattempt"),
            "DELETE FROM channels_pushrollup",
        ),
        migrations.RunPython(
            _schedules.creator(SCHEDULES), _schedules.deleter(SCHEDULES), elidable=False
        ),
    ]
