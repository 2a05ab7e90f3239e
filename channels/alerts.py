"""Alerts: watched conditions, opened once when they start and cleared once when they end.

Each condition is one small function of ``now`` returning what holds at that moment (a
``Condition`` per subject: a channel, an incident). ``evaluate_alerts`` (beat, every 30 s)
compares that with the open alerts: a condition with no open alert opens one, an open
alert whose condition no longer holds is cleared, anything else is left alone, so a
condition that lasts an hour is one alert and two emails, not one a minute. The operators
(``ALERT_EMAILS``) get an email at each end; one that failed to send goes with the next
evaluation.

To watch another figure (a KPI of the scorecard), write one function returning its
``Condition`` list and add it to ``CONDITIONS``.
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

from channels import measurements
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


CONDITIONS: list[Callable[[dt.datetime], list[Condition]]] = [
    latency_over_threshold,
    breaker_open,
    dead_letters_growing,
    oversold,
    channel_alert_open,
]

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
