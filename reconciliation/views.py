"""The daily reconciliation report as a page (staff with the report's view permission),
and the console's page of discrepancies to settle."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.decorators import login_required, permission_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from channels.models import Channel
from channels.views.access import console_page
from channels.views.workflows import HtmxHttpRequest
from nventory.errors import ApplicationError
from reconciliation import reports, selectors, services
from reconciliation.models import Discrepancy

ROWS_PER_PAGE = 50


@staff_member_required
@permission_required("reconciliation.view_dailyreport", raise_exception=True)
def report_view(request: HttpRequest, date: str | None = None) -> HttpResponse:
    """The report of a date (ISO), or the newest one."""
    day = None
    if date is not None:
        try:
            day = dt.date.fromisoformat(date)
        except ValueError:
            raise Http404("Not a date.") from None
    report = selectors.report_for(date=day)
    if report is None:
        if day is not None:
            raise Http404("No report for that date.")
        return render(request, "reconciliation/no_report.html")
    context = reports.report_context(figures=report.figures, date=report.date)
    context |= {"report": report, "recent": selectors.recent_reports()}
    return render(request, "reconciliation/reports.html", context)


# --- the console's discrepancies page ------------------------------------------------------


@require_GET
@console_page(read_permission="reconciliation.view_discrepancy")
def discrepancies_view(request: HtmxHttpRequest) -> HttpResponse:
    """Discrepancies nobody has settled (the newest of each listing), with what each side
    says; settle one by taking the channel's figure or pushing the master's."""
    return _discrepancies_page(request, partial="discrepancy-rows" if request.htmx else "")


def _discrepancies_page(
    request: HtmxHttpRequest, *, partial: str = "", outcome: dict[str, str] | None = None
) -> HttpResponse:
    value = request.GET.get("channel", "")
    channel_id = int(value) if value.isdigit() else None
    rows = selectors.discrepancies_to_settle(channel_id=channel_id)
    page = Paginator(rows, ROWS_PER_PAGE).get_page(request.GET.get("page"))
    locations = selectors.channel_locations(
        channel_ids={row.channel_id for row in page.object_list}
    )
    context = {
        "page": page,
        "rows": [(row, locations[row.channel_id]) for row in page.object_list],
        "channels": Channel.objects.only("pk", "name").order_by("name"),
        "channel_id": channel_id,
        "outcome": outcome,
    }
    template = "reconciliation/discrepancies.html"
    return render(request, f"{template}#{partial}" if partial else template, context)


def _settle(
    request: HtmxHttpRequest, discrepancy_id: int, action: Callable[[], str]
) -> HttpResponse:
    get_object_or_404(Discrepancy, pk=discrepancy_id)
    try:
        outcome = {"level": "success", "text": action()}
    except ApplicationError as error:
        outcome = {"level": "error", "text": error.message}
    if request.htmx:
        return _discrepancies_page(request, partial="discrepancy-rows", outcome=outcome)
    level = messages.SUCCESS if outcome["level"] == "success" else messages.ERROR
    messages.add_message(request, level, outcome["text"])
    return redirect("reconciliation_console:discrepancies")


@require_POST
@login_required
def accept_channel_figure_view(request: HtmxHttpRequest, discrepancy_id: int) -> HttpResponse:
    value = request.POST.get("location", "")

    def act() -> str:
        settled = services.accept_channel_figure(
            discrepancy_id=discrepancy_id,
            location_id=int(value) if value.isdigit() else None,
            actor=request.user,
        )
        event = settled.adjustment_event
        assert event is not None
        return (
            f"The channel's figure is taken: on hand adjusted by {event.delta_on_hand:+d} "
            f"({settled.sku.code if settled.sku else 'SKU'})."
        )

    return _settle(request, discrepancy_id, act)


@require_POST
@login_required
def push_master_figure_view(request: HtmxHttpRequest, discrepancy_id: int) -> HttpResponse:
    def act() -> str:
        services.push_master_figure(discrepancy_id=discrepancy_id, actor=request.user)
        return "The master's figure is owed to the channel: it is pushed in a moment."

    return _settle(request, discrepancy_id, act)
