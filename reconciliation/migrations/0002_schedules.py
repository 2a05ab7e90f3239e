"""Schedule reconciliation in django-celery-beat (editable in the admin afterwards).

Polls every 3 hours (the article's 2 to 4); the full sync at 04:00, the quiet hour before
the morning traffic; the shadow comparison as the day ends; the report at 06:00, so the
operators read it with the night's corrections in it. Crontab times are in CELERY_TIMEZONE.
"""

from typing import Any

from django.db import migrations

from channels.migrations import _schedules

POLL = _schedules.Schedule(
    name="Reconciliation poll",
    task="reconciliation.poll_channels_task",
    every_s=3 * 3600,
    description="Compares every active and shadow channel's listed quantities with the "
    "master; corrects active channels (reconciliation.services.reconcile_channels).",
)
# name, task, hour, minute, description
DAILY = [
    (
        "Reconciliation full sync",
        "reconciliation.full_sync_task",
        "4",
        "0",
        "Owes every listing of every active channel a push of its absolute quantity "
        "(reconciliation.services.start_full_sync).",
    ),
    (
        "Shadow-mode comparison",
        "reconciliation.shadow_compare_task",
        "23",
        "45",
        "Compares each shadow channel with what would have been pushed today, and replays "
        "the day for oversells (reconciliation.shadow).",
    ),
    (
        "Daily reconciliation report",
        "reconciliation.daily_report_task",
        "6",
        "0",
        "Builds, stores and emails the report of the last 24 hours (reconciliation.reports).",
    ),
]


def create_daily(apps: Any, schema_editor: Any) -> None:
    crontab_schedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    periodic_task = apps.get_model("django_celery_beat", "PeriodicTask")
    for name, task, hour, minute, description in DAILY:
        crontab = (
            crontab_schedule.objects.filter(
                minute=minute, hour=hour, day_of_week="*", day_of_month="*", month_of_year="*"
            )
            .order_by("pk")
            .first()
        ) or crontab_schedule.objects.create(
            minute=minute, hour=hour, day_of_week="*", day_of_month="*", month_of_year="*"
        )
        periodic_task.objects.get_or_create(
            name=name,
            defaults={
                "task": task,
                "crontab": crontab,
                # A daily job still queued after 12 hours has missed its moment.
                "expire_seconds": 12 * 3600,
                "description": description,
            },
        )
    _schedules.creator([POLL])(apps, schema_editor)


def delete_daily(apps: Any, schema_editor: Any) -> None:
    periodic_task = apps.get_model("django_celery_beat", "PeriodicTask")
    periodic_task.objects.filter(name__in=[name for name, *_ in DAILY]).delete()
    _schedules.deleter([POLL])(apps, schema_editor)


class Migration(migrations.Migration):
    dependencies = [
        ("reconciliation", "0001_runs_discrepancies_reports"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_daily, delete_daily, elidable=False)]
