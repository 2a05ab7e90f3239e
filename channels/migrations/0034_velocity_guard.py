"""The velocity guard: its rise on buffer rules (recorded in their history) and the
schedule that lowers rises whose spike is over (editable in the admin)."""

from django.db import migrations, models

from channels.migrations import _schedules

SCHEDULES = [
    _schedules.Schedule(
        name="Lower the velocity guard's spent rises",
        task="channels.lower_velocity_rises",
        every_s=15,
        description="Lowers each buffer rise of the velocity guard held past its time whose "
        "SKU sells within its channel's limit again (channels.pipeline.velocity).",
    ),
]


class Migration(migrations.Migration):
    dependencies = [
        ("channels", "0033_webhook_content_dedupe_and_channel_alerts"),
        ("inventory", "0005_marketplace_stock"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        migrations.AddField(
            model_name="bufferrule",
            name="velocity_only",
            field=models.BooleanField(
                default=False,
                help_text="Created by the velocity guard only to hold its rise: its percent, fixed units and cap are not used (the channel's rule governs), and it goes when the rise falls back. Saving it as an operator makes it an ordinary SKU override.",
            ),
        ),
        migrations.AddField(
            model_name="bufferrule",
            name="velocity_units",
            field=models.PositiveIntegerField(
                default=0,
                help_text="Units the velocity guard holds back for this SKU on this channel, on top of whichever rule governs each listing, while the SKU sells faster than VELOCITY_GUARD_UNITS_PER_MIN. Set and cleared automatically.",
            ),
        ),
        migrations.AddField(
            model_name="bufferrule",
            name="velocity_until",
            field=models.DateTimeField(
                blank=True,
                help_text="When the velocity guard looks again at the SKU's rate and lowers its rise if the spike is over.",
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="historicalbufferrule",
            name="velocity_only",
            field=models.BooleanField(
                default=False,
                help_text="Created by the velocity guard only to hold its rise: its percent, fixed units and cap are not used (the channel's rule governs), and it goes when the rise falls back. Saving it as an operator makes it an ordinary SKU override.",
            ),
        ),
        migrations.AddField(
            model_name="historicalbufferrule",
            name="velocity_units",
            field=models.PositiveIntegerField(
                default=0,
                help_text="Units the velocity guard holds back for this SKU on this channel, on top of whichever rule governs each listing, while the SKU sells faster than VELOCITY_GUARD_UNITS_PER_MIN. Set and cleared automatically.",
            ),
        ),
        migrations.AddField(
            model_name="historicalbufferrule",
            name="velocity_until",
            field=models.DateTimeField(
                blank=True,
                help_text="When the velocity guard looks again at the SKU's rate and lowers its rise if the spike is over.",
                null=True,
            ),
        ),
        migrations.AddConstraint(
            model_name="bufferrule",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(("velocity_units", 0), ("velocity_only", False)),
                    models.Q(("sku__isnull", False), ("listing__isnull", True)),
                    _connector="OR",
                ),
                name="bufferrule_velocity_on_sku_rules_only",
            ),
        ),
        migrations.AddConstraint(
            model_name="bufferrule",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("velocity_only", False),
                    models.Q(("percent", 0), ("fixed_units", 0), ("max_cap__isnull", True)),
                    _connector="OR",
                ),
                name="bufferrule_velocity_only_has_no_buffer",
            ),
        ),
        migrations.RunPython(
            _schedules.creator(SCHEDULES), _schedules.deleter(SCHEDULES), elidable=False
        ),
    ]
