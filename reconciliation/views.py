"""The daily reconciliation report as a page (staff with the report's view permission)."""

from __future__ import annotations

import datetime as dt

from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.decorators import permission_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from reconciliation import reports, selectors


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
