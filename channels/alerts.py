"""Alerts: watched conditions, opened once when they start and cleared once when they end.

Each condition is one small function of ``now`` returning what holds at that moment (a
``Condition`` per subject: a channel, an incident). ``evaluate_alerts`` (beat, every 30 s)
compares that with the open alerts: a condition with no open alert opens one, an open
alert whose condition no longer holds is cleared, anything else is left alone, so a
condition that lasts an hour is one alert and two emails, not one a minute. The operators
(``ALERT_EMAILS``) get an email at each end; one that failed to send goes with the next
evaluation.

Each KPI of the scorecard is watched per channel over the scorecard's window: a channel
whose KPI misses its target (amber or red on the scorecard, judged by the KPI's own
``status``, so the targets live in one place) has an alert open. Sync accuracy lives in
``reconciliation``, which registers its condition (``register_condition``) at start-up.

To watch another figure, write one function returning its ``Condition`` list and add it to
``CONDITIONS`` (or register it from the app that owns the figure).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db import connection, transaction
from django.db.models import Count, QuerySet
from django.utils import timezone

from channels import kpis, measurements
from channels.models import (
    Alert,
    Channel,
    ChannelAlert,
    ChannelBreaker,
    DeadLetter,
    OversellIncident,
)

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Condition:
    """One watched condition holding now, for one subject."""

    kind: str
    key: str
    message: str
    channel_id: int | None = None
    figures: dict[str, Any] = dataclasses.field(default_factory=dict)


def latency_over_threshold(now: dt.datetime) -> list[Condition]:
    """A channel whose p95 propagation latency is past ``ALERT_LATENCY_P95_MS``."""
    threshold_ms = settings.ALERT_LATENCY_P95_MS
    names = dict(Channel.objects.values_list("pk", "name"))
    return [
        Condition(
            kind=Alert.Kind.LATENCY,
            key=f"latency:{latency.channel_id}",
            channel_id=latency.channel_id,
            message=f"{names.get(latency.channel_id)}: sync latency p95 "
            f"{latency.p95_ms / 1000:.1f} s, over {threshold_ms / 1000:.0f} s.",
            figures={"p95_ms": round(latency.p95_ms, 1), "threshold_ms": threshold_ms},
        )
        for latency in measurements.latency_p95_by_channel(now=now).values()
        if latency.p95_ms > threshold_ms and latency.channel_id in names
    ]


def breaker_open(now: dt.datetime) -> list[Condition]:
    """A channel whose pushes are held back by its open (or half-open) circuit breaker."""
    return [
        Condition(
            kind=Alert.Kind.BREAKER_OPEN,
            key=f"breaker_open:{breaker.channel_id}",
            channel_id=breaker.channel_id,
            message=f"{breaker.channel.name}: circuit breaker open after "
            f"{breaker.failures} failed push calls ({breaker.last_error[:200]}).",
            figures={"failures": breaker.failures, "trips": breaker.trips},
        )
        for breaker in ChannelBreaker.objects.filter(open_until__isnull=False).select_related(
            "channel"
        )
    ]


def dead_letters_growing(now: dt.datetime) -> list[Condition]:
    """A channel with more open dead letters than ``ALERT_DEAD_LETTERS_THRESHOLD``."""
    threshold = settings.ALERT_DEAD_LETTERS_THRESHOLD
    counts = (
        DeadLetter.objects.filter(status=DeadLetter.Status.OPEN)
        .values("channel_id", "channel__name")
        .annotate(open_count=Count("pk"))
        .filter(open_count__gt=threshold)
    )
    return [
        Condition(
            kind=Alert.Kind.DEAD_LETTERS,
            key=f"dead_letters:{row['channel_id']}",
            channel_id=row["channel_id"],
            message=f"{row['channel__name']}: {row['open_count']} open dead letters "
            f"(threshold {threshold}).",
            figures={"open": row["open_count"], "threshold": threshold},
        )
        for row in counts
    ]


def oversold(now: dt.datetime) -> list[Condition]:
    """An oversell incident nobody has resolved yet: each is an alert of its own."""
    return [
        Condition(
            kind=Alert.Kind.OVERSELL,
            key=f"oversell:{incident.pk}",
            channel_id=incident.channel_id,
            message=f"{incident.channel.name}: order {incident.order_reference} oversold "
            f"{incident.shortfall} of {incident.sku.code}.",
            figures={"shortfall": incident.shortfall, "sku": incident.sku.code},
        )
        for incident in OversellIncident.objects.filter(resolved_at__isnull=True).select_related(
            "channel", "sku"
        )
    ]


def channel_alert_open(now: dt.datetime) -> list[Condition]:
    """A channel alert the pipeline raised (``ChannelAlert``) that nobody resolved yet."""
    return [
        Condition(
            kind=Alert.Kind.CHANNEL_ALERT,
            key=f"channel_alert:{raised.pk}",
            channel_id=raised.channel_id,
            message=f"{raised.channel.name}: {raised.message}",
            figures={"occurrences": raised.occurrences},
        )
        for raised in ChannelAlert.objects.filter(resolved_at__isnull=True).select_related(
            "channel"
        )
    ]


def misses_target(status: kpis.Status) -> bool:
    """A KPI the scorecard shows amber or red: the line its alert opens at."""
    return status in (kpis.Status.AMBER, kpis.Status.RED)


def _window(now: dt.datetime) -> tuple[dt.datetime, dt.datetime, str]:
    hours = round(kpis.KPI_WINDOW.total_seconds() / 3600)
    return now - kpis.KPI_WINDOW, now, f"{hours} h"


def error_rate_over_target(now: dt.datetime) -> list[Condition]:
    """A channel whose push error rate over the scorecard's window misses its target."""
    start, end, window = _window(now)
    channels = list(kpis.channels_in_console_order())
    rates = kpis.error_rates(start=start, end=end, channel_ids=[c.pk for c in channels])
    return [
        Condition(
            kind=Alert.Kind.ERROR_RATE,
            key=f"error_rate:{channel.pk}",
            channel_id=channel.pk,
            message=f"{channel.name}: push error rate {rate.rate:.2%} over {window} "
            f"({rate.errors} of {rate.sent} sends), target under "
            f"{kpis.ERROR_RATE_TARGET:.1%}.",
            figures={"rate": rate.rate, "errors": rate.errors, "sent": rate.sent},
        )
        for channel in channels
        if misses_target((rate := rates[channel.pk]).status) and rate.rate is not None
    ]


def uptime_under_target(now: dt.datetime) -> list[Condition]:
    """A channel whose uptime over the scorecard's window misses its target."""
    start, end, window = _window(now)
    channels = list(kpis.channels_in_console_order())
    uptimes = kpis.uptimes(start=start, end=end, channel_ids=[c.pk for c in channels])
    return [
        Condition(
            kind=Alert.Kind.UPTIME,
            key=f"uptime:{channel.pk}",
            channel_id=channel.pk,
            message=f"{channel.name}: uptime {uptime.share:.2%} over {window} "
            f"({uptime.down_minutes} minutes down), target {kpis.UPTIME_TARGET:.1%}.",
            figures={"share": uptime.share, "down_minutes": uptime.down_minutes},
        )
        for channel in channels
        if misses_target((uptime := uptimes[channel.pk]).status) and uptime.share is not None
    ]


def webhook_health_under_target(now: dt.datetime) -> list[Condition]:
    """A channel whose webhook deliveries over the scorecard's window are handled less
    often than the target (failed, quarantined, never matched or overdue)."""
    start, end, window = _window(now)
    channels = list(kpis.channels_in_console_order())
    health = kpis.webhook_health(start=start, end=end, channel_ids=[c.pk for c in channels])
    return [
        Condition(
            kind=Alert.Kind.WEBHOOK_HEALTH,
            key=f"webhook_health:{channel.pk}",
            channel_id=channel.pk,
            message=f"{channel.name}: {webhooks.share_healthy:.2%} of webhooks handled over "
            f"{window} ({webhooks.troubled} in trouble), target "
            f"{kpis.WEBHOOK_HEALTH_TARGET:.1%}.",
            figures={
                "share": webhooks.share_healthy,
                "failed": webhooks.failed,
                "quarantined": webhooks.quarantined,
                "order_never_came": webhooks.order_never_came,
                "overdue": webhooks.overdue,
            },
        )
        for channel in channels
        if misses_target((webhooks := health[channel.pk]).status)
        and webhooks.share_healthy is not None
    ]


CONDITIONS: list[Callable[[dt.datetime], list[Condition]]] = [
    latency_over_threshold,
    breaker_open,
    dead_letters_growing,
    oversold,
    channel_alert_open,
    error_rate_over_target,
    uptime_under_target,
    webhook_health_under_target,
]


def register_condition(check: Callable[[dt.datetime], list[Condition]]) -> None:
    """Watch a condition an app above this one owns (``AppConfig.ready``); once."""
    if check not in CONDITIONS:
        CONDITIONS.append(check)


# One evaluation at a time (two beat runs overlapping must not both open an alert).
_EVALUATION_LOCK_ID = 0x6E76_616C_6572_7473


@dataclasses.dataclass(frozen=True)
class Evaluation:
    opened: list[Alert]
    cleared: list[Alert]
    emailed: int


def evaluate_alerts(*, now: dt.datetime | None = None) -> Evaluation:
    """Open an alert per condition that started, clear each whose condition ended, then
    email the operators about every opening and clearing not emailed yet.

    Serialised by a transaction-level advisory lock; safe to run twice (a second run finds
    nothing new). Email failures are logged and retried by the next run.
    """
    now = now or timezone.now()
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_EVALUATION_LOCK_ID])
        holding = {condition.key: condition for check in CONDITIONS for condition in check(now)}
        open_alerts = {alert.key: alert for alert in Alert.objects.filter(cleared_at__isnull=True)}
        opened = Alert.objects.bulk_create(
            Alert(
                kind=condition.kind,
                key=key,
                channel_id=condition.channel_id,
                message=condition.message,
                figures=condition.figures,
                opened_at=now,
            )
            for key, condition in holding.items()
            if key not in open_alerts
        )
        cleared = [alert for key, alert in open_alerts.items() if key not in holding]
        Alert.objects.filter(pk__in=[alert.pk for alert in cleared]).update(cleared_at=now)
    return Evaluation(opened=opened, cleared=cleared, emailed=send_alert_emails(now=now))


def send_alert_emails(*, now: dt.datetime | None = None) -> int:
    """Email the operators about each opening and clearing not yet emailed; how many
    emails went. With no ``ALERT_EMAILS`` nothing is sent and nothing is marked."""
    recipients = settings.ALERT_EMAILS
    if not recipients:
        return 0
    now = now or timezone.now()
    sent = 0
    for alert in Alert.objects.filter(opened_email_sent_at__isnull=True).order_by("pk"):
        if _email(alert, recipients, f"[nventory] Alert: {alert.message}"):
            Alert.objects.filter(pk=alert.pk).update(opened_email_sent_at=now)
            sent += 1
    for alert in Alert.objects.filter(
        cleared_at__isnull=False, cleared_email_sent_at__isnull=True
    ).order_by("pk"):
        if _email(alert, recipients, f"[nventory] Cleared: {alert.message}"):
            Alert.objects.filter(pk=alert.pk).update(cleared_email_sent_at=now)
            sent += 1
    return sent


def _email(alert: Alert, recipients: list[str], subject: str) -> bool:
    lines = [
        alert.message,
        "",
        f"Kind: {alert.get_kind_display()}",
        f"Opened: {alert.opened_at:%Y-%m-%d %H:%M:%S %Z}",
    ]
    if alert.cleared_at is not None:
        lines.append(f"Cleared: {alert.cleared_at:%Y-%m-%d %H:%M:%S %Z}")
    lines += [f"{name}: {value}" for name, value in alert.figures.items()]
    try:
        send_mail(
            subject=subject[:200].replace("\n", " "),
            message="\n".join(lines),
            from_email=None,
            recipient_list=recipients,
        )
    except Exception:
        logger.exception("alert email for %s failed; the next evaluation tries again", alert.key)
        return False
    return True


# -----------------------------------------------------------------------------------------
# Reads: the banner and the alerts page
# -----------------------------------------------------------------------------------------


def open_alerts(*, limit: int = 5) -> list[Alert]:
    """The newest open alerts (the banner shows these), in one query."""
    return list(Alert.objects.filter(cleared_at__isnull=True).order_by("-opened_at")[:limit])


def open_alert_count() -> int:
    return Alert.objects.filter(cleared_at__isnull=True).count()


def alert_history(*, kind: str = "", only_open: bool = False) -> QuerySet[Alert]:
    """Every alert, newest first, with its channel; filtered by kind and by being open."""
    alerts = Alert.objects.select_related("channel").order_by("-opened_at", "-pk")
    if kind:
        alerts = alerts.filter(kind=kind)
    if only_open:
        alerts = alerts.filter(cleared_at__isnull=True)
    return alerts
