"""Console pages of sync health: the scorecard, the channels page (with its actions) and
the charts. Thin views over ``reconciliation.scorecard`` and the services; the actions'
permissions are checked by the services."""

from __future__ import annotations

import datetime as dt

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from channels import kpis
from channels import services as channel_services
from channels.models import Channel
from channels.views.access import HtmxHttpRequest, console_page
from nventory import permissions
from nventory.errors import ApplicationError
from reconciliation import scorecard, services

READ_CHANNELS = "channels.view_channel"
LATENCY_CHART_WINDOW = dt.timedelta(hours=24)
LATENCY_CHART_BUCKET = dt.timedelta(minutes=15)
THROUGHPUT_WINDOW = dt.timedelta(hours=1)
DRIFT_CHART_WINDOW = dt.timedelta(days=7)


@console_page(read_permission=READ_CHANNELS)
def scorecard_view(request: HtmxHttpRequest) -> HttpResponse:
    """The scorecard of every channel and overall; htmx polls its body."""
    template = "reconciliation/scorecard.html"
    if request.htmx:
        template += "#scorecard-body"
    return render(request, template, {"scorecard": scorecard.scorecard()})


@console_page(read_permission=READ_CHANNELS)
def channels_view(request: HtmxHttpRequest) -> HttpResponse:
    """A row per channel with its pipeline state and actions; htmx polls the rows."""
    template = "reconciliation/channels.html"
    if request.htmx:
        template += "#channel-rows"
    return render(
        request,
        template,
        {
            "rows": scorecard.channel_rows(),
            "modes": Channel.Mode.choices,
            "may_manage": request.user.has_perm(permissions.MANAGE_CHANNELS),
        },
    )


@console_page(read_permission=READ_CHANNELS)
@require_POST
def channel_mode_view(request: HttpRequest, channel_id: int) -> HttpResponse:
    """Switch the channel to the mode posted (the page asks for a confirmation first)."""
    channel = get_object_or_404(Channel, pk=channel_id)
    mode = request.POST.get("mode", "")
    with _reported(request):
        channel_services.switch_channel_mode(actor=request.user, channel_id=channel.pk, mode=mode)
        messages.success(request, f"{channel.name} is now {mode}.")
    return redirect("dashboard:channels")


@console_page(read_permission=READ_CHANNELS)
@require_POST
def channel_poll_view(request: HttpRequest, channel_id: int) -> HttpResponse:
    """Run a reconciliation poll of the channel now."""
    channel = get_object_or_404(Channel, pk=channel_id)
    with _reported(request):
        services.run_poll_now(actor=request.user, channel_id=channel.pk)
        messages.success(request, f"A poll of {channel.name} was started.")
    return redirect("dashboard:channels")


@console_page(read_permission=READ_CHANNELS)
@require_POST
def channel_full_sync_view(request: HttpRequest, channel_id: int) -> HttpResponse:
    """Send the channel every listing's quantity now."""
    channel = get_object_or_404(Channel, pk=channel_id)
    with _reported(request):
        run = services.run_full_sync_now(actor=request.user, channel_id=channel.pk)
        messages.success(
            request, f"A full sync of {channel.name} was started ({run.listings_total} listings)."
        )
    return redirect("dashboard:channels")


@console_page(read_permission=READ_CHANNELS)
def charts_view(request: HttpRequest) -> HttpResponse:
    """Latency over time per channel, orders and pushes per minute, drift per run and
    buffer utilization, drawn by Chart.js from the series embedded in the page."""
    now = timezone.now()
    channels = list(kpis.channels_in_console_order())
    names = {channel.pk: channel.name for channel in channels}
    latency = kpis.latency_series(
        start=now - LATENCY_CHART_WINDOW, end=now, bucket=LATENCY_CHART_BUCKET
    )
    throughput = kpis.throughput_per_minute(start=now - THROUGHPUT_WINDOW, end=now)
    drift = scorecard.drift_by_run(start=now - DRIFT_CHART_WINDOW, end=now)
    buffers = kpis.buffer_utilization(start=now - kpis.KPI_WINDOW, end=now, channels=channels)
    series = {
        "latency": [
            {
                "label": names.get(channel_id, str(channel_id)),
                "points": [
                    {"x": point.bucket_start.isoformat(), "y": point.p95_ms / 1000}
                    for point in points
                ],
            }
            for channel_id, points in latency.items()
        ],
        "throughput": {
            "minutes": [point.minute.isoformat() for point in throughput],
            "orders": [point.orders for point in throughput],
            "pushes": [point.pushes for point in throughput],
        },
        "drift": [
            {
                "label": names.get(channel_id, str(channel_id)),
                "points": [
                    {"x": point.finished_at.isoformat(), "y": point.drift_percent}
                    for point in points
                ],
            }
            for channel_id, points in drift.items()
        ],
        "buffers": {
            "channels": [channel.name for channel in channels],
            "held_back": [buffers[channel.pk].held_back_units for channel in channels],
            "listed": [buffers[channel.pk].listed_units for channel in channels],
            "sold": [buffers[channel.pk].sold_units for channel in channels],
        },
    }
    return render(request, "reconciliation/charts.html", {"series": series})


class _reported:
    """Turn a refused action into a message on the page instead of an error page: the
    user keeps the page and learns why."""

    def __init__(self, request: HttpRequest) -> None:
        self.request = request

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, error: BaseException | None, traceback: object) -> bool:
        if isinstance(error, PermissionDenied):
            messages.error(self.request, "You do not have the permission to do that.")
            return True
        if isinstance(error, ApplicationError):
            messages.error(self.request, str(error))
            return True
        if isinstance(error, ValidationError | ValueError):
            messages.error(self.request, "That is not a mode a channel can have.")
            return True
        return False
