"""Admin for reconciliation runs, discrepancies and daily reports (read-only records)."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html

from reconciliation.models import DailyReport, Discrepancy, ReconciliationRun


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(ReconciliationRun)
class ReconciliationRunAdmin(ReadOnlyAdmin):
    list_display = (
        "started_at",
        "channel",
        "kind",
        "status",
        "channel_mode",
        "listings_checked",
        "listings_total",
        "skipped_in_flight",
        "found",
        "corrected",
        "drift_percent",
        "alerted_at",
    )
    list_filter = ("kind", "status", "channel_mode", "channel")
    date_hierarchy = "started_at"


@admin.register(Discrepancy)
class DiscrepancyAdmin(ReadOnlyAdmin):
    list_display = (
        "detected_at",
        "channel",
        "sku",
        "listing",
        "expected",
        "actual",
        "cause",
        "consecutive_runs",
        "repeated",
        "corrected",
        "last_pushed_at",
        "settlement",
        "settled_by",
        "settled_at",
    )
    list_filter = ("cause", "repeated", "corrected", "settlement", "channel", "category")
    search_fields = ("sku__code", "listing__external_id", "listing__external_sku", "evidence")
    list_select_related = ("channel", "sku", "listing")
    date_hierarchy = "detected_at"


@admin.register(DailyReport)
class DailyReportAdmin(ReadOnlyAdmin):
    list_display = ("date", "generated_at", "emailed_at", "page_link")
    exclude = ("html",)

    @admin.display(description="Report")
    def page_link(self, obj: DailyReport) -> str:
        return format_html('<a href="/reconciliation/reports/{}/">open</a>', obj.date.isoformat())
