"""Scheduled reconciliation jobs (django-celery-beat, migration 0002): thin wrappers.

Each is idempotent per period: a poll or full sync run twice only repeats harmless work
(runs lock per channel), and a day's report is emailed once.
"""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

# Reading every listing of every channel takes longer than the project's 20 s default.
LONG_SOFT_LIMIT_S = 3600
LONG_HARD_LIMIT_S = 3900


@shared_task(
    name="reconciliation.poll_channels_task",
    soft_time_limit=LONG_SOFT_LIMIT_S,
    time_limit=LONG_HARD_LIMIT_S,
)
def poll_channels_task() -> None:
    """Compare every active and shadow channel with the master; correct active ones."""
    from reconciliation import services

    services.reconcile_channels()


@shared_task(
    name="reconciliation.poll_channel_task",
    soft_time_limit=LONG_SOFT_LIMIT_S,
    time_limit=LONG_HARD_LIMIT_S,
)
def poll_channel_task(channel_id: int) -> None:
    """Compare one channel with the master now (an operator asked from the console)."""
    from reconciliation import services

    services.reconcile_channel(channel_id=channel_id)


@shared_task(name="reconciliation.full_sync_task")
def full_sync_task() -> None:
    """Owe every listing of every active channel a push of its absolute quantity."""
    from reconciliation import services

    services.start_full_sync()


@shared_task(
    name="reconciliation.shadow_compare_task",
    soft_time_limit=LONG_SOFT_LIMIT_S,
    time_limit=LONG_HARD_LIMIT_S,
)
def shadow_compare_task() -> None:
    """Compare every shadow channel for today: scheduled late, as the day ends."""
    from reconciliation import shadow

    shadow.compare_shadow_channels(day=timezone.localdate())


@shared_task(name="reconciliation.daily_report_task", soft_time_limit=300, time_limit=360)
def daily_report_task() -> None:
    """Build today's report of the last 24 hours and email it once."""
    from reconciliation import reports

    reports.generate_and_send_daily_report()
