"""Reconciliation: runs against each channel, the discrepancies they find, the daily report.

The rules live in ``reconciliation.services`` (runs, cause inference, corrections) and
``reconciliation.reports`` (the daily report and its KPIs).
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.db.models.functions import Now


class ReconciliationRun(models.Model):
    """One pass of one kind over one channel; its progress is visible while it runs."""

    class Kind(models.TextChoices):
        POLL = "poll", "Reconciliation poll"
        FULL_SYNC = "full_sync", "Full sync"
        SHADOW_COMPARE = "shadow_compare", "Shadow-mode comparison"

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    channel = models.ForeignKey(
        "channels.Channel", on_delete=models.CASCADE, related_name="reconciliation_runs"
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    # The channel's mode when the run started: shadow runs compare and never correct.
    channel_mode = models.CharField(max_length=16)
    started_at = models.DateTimeField(db_default=Now())
    finished_at = models.DateTimeField(null=True, blank=True)
    # The day a shadow comparison covers (one per channel and day).
    period_date = models.DateField(null=True, blank=True)
    listings_total = models.PositiveIntegerField(default=0)
    listings_checked = models.PositiveIntegerField(default=0)
    skipped_in_flight = models.PositiveIntegerField(
        default=0, help_text="Listings not compared because a push to them was in flight."
    )
    found = models.PositiveIntegerField(default=0)
    corrected = models.PositiveIntegerField(default=0)
    drift_percent = models.FloatField(null=True, blank=True)
    # Set when the drift went over the alert threshold and the operators were emailed.
    alerted_at = models.DateTimeField(null=True, blank=True)
    # Full sync: pushes owed at the start; shadow comparison: match rate and replay.
    figures = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at", "-pk"]
        indexes = [
            models.Index(fields=["channel", "kind", "-started_at"], name="recon_run_channel_kind"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(listings_checked__lte=models.F("listings_total")),
                name="recon_run_checked_within_total",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} of channel {self.channel_id} ({self.status})"

    @property
    def progress_percent(self) -> float:
        if not self.listings_total:
            return 100.0 if self.status == self.Status.DONE else 0.0
        return round(100.0 * self.listings_checked / self.listings_total, 1)


class Discrepancy(models.Model):
    """A listing whose channel figure differed from the master's listed quantity."""

    class Cause(models.TextChoices):
        MANUAL_EDIT = "manual_edit", "Manual edit on the channel"
        MISSED_WEBHOOK = "missed_webhook", "Missed webhook"
        FAILED_PUSH = "failed_push", "Failed or dead-lettered push"
        NOT_APPLIED = "not_applied", "Accepted by the channel but not applied"
        BUNDLE_MISCOUNT = "bundle_miscount", "Bundle miscount"
        NOT_ON_CHANNEL = "not_on_channel", "Listing not found on the channel"
        UNKNOWN = "unknown", "Unknown"

    class Settlement(models.TextChoices):
        ACCEPTED_CHANNEL = "accepted_channel", "Channel's figure accepted (stock adjusted)"
        PUSHED_MASTER = "pushed_master", "Master's figure pushed"

    run = models.ForeignKey(
        ReconciliationRun, on_delete=models.CASCADE, related_name="discrepancies"
    )
    channel = models.ForeignKey(
        "channels.Channel", on_delete=models.CASCADE, related_name="discrepancies"
    )
    listing = models.ForeignKey(
        "channels.Listing", on_delete=models.CASCADE, related_name="discrepancies"
    )
    sku = models.ForeignKey(
        "inventory.Sku",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="discrepancies",
    )
    # Copied, so the report groups by the category the SKU had when it drifted.
    category = models.CharField(max_length=100, blank=True)
    expected = models.IntegerField(help_text="The master's listed quantity.")
    actual = models.IntegerField(
        null=True, blank=True, help_text="What the channel showed (empty: item not found)."
    )
    last_pushed_quantity = models.IntegerField(null=True, blank=True)
    last_pushed_at = models.DateTimeField(
        null=True, blank=True, help_text="The last push the channel acknowledged."
    )
    cause = models.CharField(max_length=32, choices=Cause.choices)
    evidence = models.TextField(blank=True, help_text="What the cause was inferred from.")
    # Runs in a row (this one included) in which this listing drifted.
    consecutive_runs = models.PositiveIntegerField(default=1)
    repeated = models.BooleanField(default=False)
    corrected = models.BooleanField(default=False)
    detected_at = models.DateTimeField(db_default=Now())
    # An operator's decision on it (reconciliation.services.accept_channel_figure,
    # push_master_figure): who, when, and the ledger event of an accepted figure.
    settlement = models.CharField(max_length=32, choices=Settlement.choices, blank=True)
    settled_at = models.DateTimeField(null=True, blank=True)
    settled_by = models.CharField(max_length=255, blank=True)
    adjustment_event = models.ForeignKey(
        "inventory.InventoryEvent",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )

    class Meta:
        ordering = ["-detected_at", "-pk"]
        verbose_name_plural = "discrepancies"
        indexes = [
            models.Index(fields=["channel", "detected_at"], name="discrepancy_channel_time"),
            models.Index(fields=["listing", "-detected_at"], name="discrepancy_listing_time"),
            models.Index(fields=["detected_at"], name="discrepancy_time"),
            # The console's discrepancies to settle, newest first.
            models.Index(
                fields=["-detected_at", "-id"],
                name="discrepancy_unsettled",
                condition=Q(settlement=""),
            ),
        ]

    def __str__(self) -> str:
        return f"listing {self.listing_id}: expected {self.expected}, channel {self.actual}"


class DailyReport(models.Model):
    """The daily reconciliation report: figures, both renderings, and when it was sent."""

    date = models.DateField(unique=True)
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    generated_at = models.DateTimeField(db_default=Now())
    figures = models.JSONField(default=dict)
    html = models.TextField()
    text = models.TextField()
    recipients = models.JSONField(default=list, blank=True)
    emailed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-date"]

    def __str__(self) -> str:
        return f"reconciliation report of {self.date}"
