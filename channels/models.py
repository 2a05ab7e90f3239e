"""Sales channels, the SKU map (listings) and the buffer rules that shape listed quantities.

The arithmetic of a listed quantity lives in ``channels.buffers``; the reads that feed it in
``channels.selectors``.
"""

from __future__ import annotations

from decimal import Decimal

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q


class Channel(models.Model):
    """One storefront or marketplace account the stock is listed on."""

    class Platform(models.TextChoices):
        SHOPIFY = "shopify", "Shopify"
        AMAZON = "amazon", "Amazon"
        WALMART = "walmart", "Walmart"
        TIKTOK = "tiktok", "TikTok Shop"
        EBAY = "ebay", "eBay"

    class Mode(models.TextChoices):
        ACTIVE = "active", "Active (push quantities)"
        # Compute and log what would be pushed, next to what the channel shows; push nothing.
        SHADOW = "shadow", "Shadow (compute and log, push nothing)"
        PAUSED = "paused", "Paused"

    platform = models.CharField(max_length=16, choices=Platform.choices)
    name = models.CharField(max_length=255)
    slug = models.SlugField(max_length=64, unique=True)
    mode = models.CharField(max_length=16, choices=Mode.choices, default=Mode.SHADOW)
    # The connector talks to whatever this points at: the real platform or its simulator.
    api_base_url = models.URLField(max_length=500)
    # Secrets: never shown in admin list views.
    credentials = models.JSONField(default=dict, blank=True)
    webhook_secret = models.CharField(max_length=255, blank=True)
    locations = models.ManyToManyField(
        "inventory.Location",
        related_name="channels",
        blank=True,
        help_text="The locations this channel sells from: its ATS is their sum.",
    )
    rate_limit_per_s = models.PositiveIntegerField(default=2)
    out_of_stock_threshold = models.PositiveIntegerField(
        default=0, help_text="A listed quantity below this is pushed as 0."
    )
    settle_window_s = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.name


class Listing(models.Model):
    """One product on one channel, mapped to one internal SKU (the SKU map)."""

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="listings")
    sku = models.ForeignKey("inventory.Sku", on_delete=models.PROTECT, related_name="listings")
    # The platform's main id for the stock-bearing item (e.g. Shopify inventory item id).
    external_id = models.CharField(max_length=255)
    external_sku = models.CharField(max_length=255, blank=True)
    # The platform's other identifiers: variant id, ASIN, FNSKU, item id, SKU id...
    extra_identifiers = models.JSONField(default=dict, blank=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["channel", "external_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["channel", "external_id"], name="listing_one_per_channel_external_id"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.channel_id}:{self.external_id}"


class BufferRule(models.Model):
    """How much of the ATS a channel lists: one per channel, overridable per SKU or listing."""

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="buffer_rules")
    sku = models.ForeignKey(
        "inventory.Sku",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="buffer_rules",
        help_text="Set for a per-SKU override.",
    )
    listing = models.ForeignKey(
        Listing,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="buffer_rules",
        help_text="Set for a per-listing override.",
    )
    percent = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        default=Decimal(0),
        validators=[MinValueValidator(Decimal(0)), MaxValueValidator(Decimal(100))],
        help_text="Share of the ATS held back, 0 to 100.",
    )
    fixed_units = models.PositiveIntegerField(default=0)
    max_cap = models.PositiveIntegerField(null=True, blank=True)
    # A time-boxed cap lifts itself outside its window; no window means always.
    cap_starts_at = models.DateTimeField(null=True, blank=True)
    cap_ends_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["channel", "pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(sku__isnull=True) | Q(listing__isnull=True),
                name="bufferrule_not_both_sku_and_listing",
            ),
            models.CheckConstraint(
                condition=Q(percent__gte=0) & Q(percent__lte=100),
                name="bufferrule_percent_0_to_100",
            ),
            models.CheckConstraint(
                condition=Q(cap_starts_at__isnull=True)
                | Q(cap_ends_at__isnull=True)
                | Q(cap_ends_at__gt=models.F("cap_starts_at")),
                name="bufferrule_cap_window_ordered",
            ),
            models.UniqueConstraint(
                fields=["channel"],
                condition=Q(sku__isnull=True, listing__isnull=True),
                name="bufferrule_one_per_channel",
            ),
            models.UniqueConstraint(
                fields=["channel", "sku"],
                condition=Q(sku__isnull=False),
                name="bufferrule_one_per_channel_sku",
            ),
            models.UniqueConstraint(
                fields=["channel", "listing"],
                condition=Q(listing__isnull=False),
                name="bufferrule_one_per_channel_listing",
            ),
        ]

    def __str__(self) -> str:
        if self.listing_id is not None:
            scope = f"listing {self.listing_id}"
        elif self.sku_id is not None:
            scope = f"SKU {self.sku_id}"
        else:
            scope = "channel default"
        return f"{self.channel_id}: {scope}"

    def clean(self) -> None:
        super().clean()
        if self.listing_id is not None and self.sku_id is not None:
            raise ValidationError("A rule overrides either one SKU or one listing, not both.")
        listing = self.listing if self.listing_id is not None else None
        if (
            listing is not None
            and self.channel_id is not None
            and listing.channel_id != self.channel_id
        ):
            raise ValidationError({"listing": "The listing belongs to another channel."})
