"""The daily reconciliation report: the last 24 hours, stored, shown and emailed.

Sections: corrections by channel, by hour of day (local time of detection) and by product
category (the SKU's category when it drifted), causes, repeated offenders, drift alerts,
oversell incidents, shadow comparisons, and the four sync KPIs of the article's scorecard:

- sync latency p50 / p99 (ms): ``PushAttempt.latency_ms`` of the pushes acknowledged in the
  window, from the change that caused the push to the channel's acknowledgement;
- inventory accuracy: 1 - discrepancies / listings judged, over the polls of active
  channels finished in the window (judged: compared, less those with a push in flight);
- overselling rate: orders with an oversell incident / orders, in the window (an order is
  a distinct source, actor and reference among ``order_committed`` events);
- sync error rate: failed + rejected attempts / attempts sent in the window (shadow and
  throttled attempts are not sends; a compare-and-set ``stale`` is a send, and not an
  error: it is drift, corrected at once).

A KPI with nothing to measure is ``None`` ("n/a"), never 0 or 100%.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

from django.core.mail import EmailMultiAlternatives
from django.db import connection, transaction
from django.db.models import Count, Q, Sum
from django.template.loader import render_to_string
from django.utils import timezone

from channels.models import Channel, OversellIncident, PushAttempt
from inventory.models import EventKind, InventoryEvent
from reconciliation import services
from reconciliation.models import DailyReport, Discrepancy, ReconciliationRun

WINDOW = dt.timedelta(hours=24)
MAX_LISTED_ROWS = 50


def generate_daily_report(*, now: dt.datetime | None = None, force: bool = False) -> DailyReport:
    """Build (or rebuild) the report of the 24 hours up to ``now``; one per local date.

    An already emailed report of the date is returned as it is unless ``force``: beat
    firing twice sends one email.
    """
    now = now or timezone.now()
    date = timezone.localdate(now)
    existing = DailyReport.objects.filter(date=date).first()
    if existing is not None and existing.emailed_at is not None and not force:
        return existing
    figures = report_figures(start=now - WINDOW, end=now)
    context = report_context(figures=figures, date=date)
    report, _ = DailyReport.objects.update_or_create(
        date=date,
        defaults={
            "window_start": now - WINDOW,
            "window_end": now,
            "generated_at": now,
            "figures": figures,
            "html": render_to_string("reconciliation/daily_report_email.html", context),
            "text": render_to_string("reconciliation/daily_report_email.txt", context),
            "emailed_at": None,
        },
    )
    return report


def send_daily_report(*, report: DailyReport) -> bool:
    """Email the report (HTML with a plain-text part) to the operators; False if none."""
    recipients = services.operator_emails()
    if not recipients:
        return False
    message = EmailMultiAlternatives(
        subject=f"[nventory] Reconciliation report {report.date:%Y-%m-%d}",
        body=report.text,
        to=recipients,
    )
    message.attach_alternative(report.html, "text/html")
    message.send()
    DailyReport.objects.filter(pk=report.pk).update(
        emailed_at=timezone.now(), recipients=recipients
    )
    report.refresh_from_db()
    return True


# pg_advisory_xact_lock's first key: the daily report's (the second is the date's ordinal).
_REPORT_LOCK_KEY = 0x6E76_7270  # "nvrp"


def generate_and_send_daily_report(*, now: dt.datetime | None = None) -> DailyReport | None:
    """The scheduled job: build today's report and email it once; None if another run of
    it holds the day.

    Under a transaction-level advisory lock per date, taken without waiting: two beat ticks
    (or two beats) together send one email, the second returning at once. The email goes
    out before the commit that records it: a commit lost after a send can repeat the email
    on a later run, never skip it.
    """
    date = timezone.localdate(now or timezone.now())
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_try_advisory_xact_lock(%s, %s)", [_REPORT_LOCK_KEY, date.toordinal()]
            )
            (locked,) = cursor.fetchone()
        if not locked:
            return None
        report = generate_daily_report(now=now)
        if report.emailed_at is None:
            send_daily_report(report=report)
        return report


def report_context(*, figures: dict[str, Any], date: dt.date) -> dict[str, Any]:
    """What the templates show: the stored figures plus their display forms."""
    kpis = figures["kpis"]
    hours = figures["corrections"]["by_hour"]
    busiest = max((row["count"] for row in hours), default=0) or 1
    return {
        "date": date,
        "figures": figures,
        "kpi_rows": [
            ("Sync latency p50", _ms(kpis["sync_latency_p50_ms"]), "under 30 s"),
            ("Sync latency p99", _ms(kpis["sync_latency_p99_ms"]), "under 60 s"),
            ("Inventory accuracy", _percent(kpis["inventory_accuracy"]), "above 99.5%"),
            ("Overselling rate", _percent(kpis["overselling_rate"]), "0%"),
            ("Sync error rate", _percent(kpis["sync_error_rate"]), "below 0.1%"),
        ],
        "hour_bars": [{**row, "width": round(100 * row["count"] / busiest)} for row in hours],
    }


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f} ms"


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def report_figures(*, start: dt.datetime, end: dt.datetime) -> dict[str, Any]:
    """Every figure of the report, JSON-ready."""
    found = Discrepancy.objects.filter(detected_at__gte=start, detected_at__lt=end)
    corrections = found.filter(corrected=True)
    by_hour = Counter(
        timezone.localtime(moment).hour
        for moment in corrections.values_list("detected_at", flat=True)
    )
    return {
        "window": {"start": start.isoformat(), "end": end.isoformat()},
        "discrepancies": found.count(),
        "corrections": {
            "total": corrections.count(),
            "by_channel": _counted(corrections, "channel__name"),
            "by_hour": [{"hour": hour, "count": by_hour.get(hour, 0)} for hour in range(24)],
            "by_category": _counted(corrections, "category"),
        },
        "by_cause": [
            {"cause": Discrepancy.Cause(row["key"]).label, "count": row["count"]}
            for row in _counted(found, "cause")
        ],
        "repeated_offenders": _repeated_offenders(found),
        "alerts": [
            {
                "channel": run.channel.name,
                "drift_percent": run.drift_percent,
                "at": run.alerted_at.isoformat() if run.alerted_at else "",
            }
            for run in ReconciliationRun.objects.filter(
                alerted_at__gte=start, alerted_at__lt=end
            ).select_related("channel")
        ],
        "oversells": [
            {
                "channel": incident.channel.name,
                "sku": incident.sku.code,
                "order": incident.order_reference,
                "shortfall": incident.shortfall,
                "at": incident.created_at.isoformat(),
            }
            for incident in OversellIncident.objects.filter(
                created_at__gte=start, created_at__lt=end
            ).select_related("channel", "sku")[:MAX_LISTED_ROWS]
        ],
        "shadow": _shadow_comparisons(start=start, end=end),
        "kpis": sync_kpis(start=start, end=end),
    }


def _counted(queryset: Any, field: str) -> list[dict[str, Any]]:
    rows = queryset.values(field).annotate(count=Count("pk")).order_by("-count", field)
    return [{"key": row[field] or "", "count": row["count"]} for row in rows]


def _repeated_offenders(found: Any) -> list[dict[str, Any]]:
    latest: dict[int, Discrepancy] = {}
    for discrepancy in (
        found.filter(repeated=True)
        .select_related("channel", "listing", "sku")
        .order_by("detected_at", "pk")
    ):
        latest[discrepancy.listing_id] = discrepancy
    rows = sorted(latest.values(), key=lambda d: (-d.consecutive_runs, d.channel.name))
    return [
        {
            "channel": d.channel.name,
            "sku": d.sku.code if d.sku else "",
            "external_id": d.listing.external_id,
            "consecutive_runs": d.consecutive_runs,
            "expected": d.expected,
            "actual": d.actual,
            "cause": d.get_cause_display(),
        }
        for d in rows[:MAX_LISTED_ROWS]
    ]


def _shadow_comparisons(*, start: dt.datetime, end: dt.datetime) -> list[dict[str, Any]]:
    rows = []
    for run in ReconciliationRun.objects.filter(
        kind=ReconciliationRun.Kind.SHADOW_COMPARE,
        status=ReconciliationRun.Status.DONE,
        finished_at__gte=start,
        finished_at__lt=end,
    ).select_related("channel"):
        end_of_day = run.figures.get("end_of_day", {})
        replay = run.figures.get("replay", {})
        rows.append(
            {
                "channel": run.channel.name,
                "day": run.period_date.isoformat() if run.period_date else "",
                "match_rate": end_of_day.get("match_rate"),
                "within_one_percent": end_of_day.get("within_one_percent"),
                "would_have_oversold": replay.get("would_have_oversold"),
                "exposed_orders": len(replay.get("exposed_orders", [])),
            }
        )
    return rows


_LATENCY_SQL = """
SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms),
       percentile_cont(0.99) WITHIN GROUP (ORDER BY latency_ms)
  FROM channels_pushattempt
 WHERE outcome = 'applied' AND latency_ms IS NOT NULL
   AND acked_at >= %(start)s AND acked_at < %(end)s
"""


def sync_kpis(*, start: dt.datetime, end: dt.datetime) -> dict[str, Any]:
    """The four sync KPIs over a window (definitions in the module docstring)."""
    with connection.cursor() as cursor:
        cursor.execute(_LATENCY_SQL, {"start": start, "end": end})
        p50, p99 = cursor.fetchone() or (None, None)

    polls = ReconciliationRun.objects.filter(
        kind=ReconciliationRun.Kind.POLL,
        status=ReconciliationRun.Status.DONE,
        channel_mode=Channel.Mode.ACTIVE,
        finished_at__gte=start,
        finished_at__lt=end,
    ).aggregate(
        checked=Sum("listings_checked"), skipped=Sum("skipped_in_flight"), found=Sum("found")
    )
    judged = (polls["checked"] or 0) - (polls["skipped"] or 0)
    drifted = polls["found"] or 0

    orders = (
        InventoryEvent.objects.filter(
            kind=EventKind.ORDER_COMMITTED, created_at__gte=start, created_at__lt=end
        )
        .values("source", "actor", "external_reference")
        .distinct()
        .count()
    )
    oversold_orders = (
        OversellIncident.objects.filter(created_at__gte=start, created_at__lt=end)
        .values("channel_id", "order_reference")
        .distinct()
        .count()
    )

    attempts = PushAttempt.objects.filter(sent_at__gte=start, sent_at__lt=end).exclude(
        outcome__in=[PushAttempt.Outcome.SHADOW, PushAttempt.Outcome.THROTTLED]
    )
    counted = attempts.aggregate(
        sent=Count("pk"),
        errors=Count(
            "pk",
            filter=Q(outcome__in=[PushAttempt.Outcome.FAILED, PushAttempt.Outcome.REJECTED]),
        ),
    )
    return {
        "sync_latency_p50_ms": _rounded(p50),
        "sync_latency_p99_ms": _rounded(p99),
        "pushes_acknowledged": PushAttempt.objects.filter(
            outcome=PushAttempt.Outcome.APPLIED, acked_at__gte=start, acked_at__lt=end
        ).count(),
        "inventory_accuracy": _rounded(1 - drifted / judged, 5) if judged else None,
        "listings_judged": judged,
        "discrepancies_in_polls": drifted,
        "overselling_rate": _rounded(oversold_orders / orders, 5) if orders else None,
        "orders": orders,
        "oversold_orders": oversold_orders,
        "sync_error_rate": _rounded(counted["errors"] / counted["sent"], 5)
        if counted["sent"]
        else None,
        "push_attempts": counted["sent"],
        "push_errors": counted["errors"],
    }


def _rounded(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(float(value), digits)
