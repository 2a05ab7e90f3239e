"""Sales channels, the SKU map (listings) and the buffer rules that shape listed quantities.

The arithmetic of a listed quantity lives in ``channels.buffers``; the reads that feed it in
``channels.selectors``.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.contrib.postgres.indexes import GinIndex
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.db.models.functions import Now
from simple_history.models import HistoricalRecords

from nventory.encryption import EncryptedJSONField, EncryptedTextField


class Channel(models.Model):
    """One storefront or marketplace account the stock is listed on."""

    class Platform(models.TextChoices):
        # Only platforms with a connector (channels.connectors.registry; system check
        # channels.E001): a channel saved with any other could never be pushed to.
        SHOPIFY = "shopify", "Shopify"
        WALMART = "walmart", "Walmart Marketplace"
        AMAZON = "amazon", "Amazon"
        EBAY = "ebay", "eBay"
        TIKTOK = "tiktok", "TikTok Shop"

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
    # Secrets: never shown in admin list views; encrypted in the database
    # (nventory.encryption: a key from the environment, rotatable).
    credentials = EncryptedJSONField(default=dict, blank=True)
    webhook_secret = EncryptedTextField(blank=True)
    # While a secret is rotated, webhooks may still come signed with the one it replaced
    # (Shopify: until the old client secret is revoked); that one is accepted until then.
    previous_webhook_secret = EncryptedTextField(blank=True)
    previous_webhook_secret_until = models.DateTimeField(null=True, blank=True)
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
    settle_window_s = models.PositiveIntegerField(
        default=0,
        help_text="Hold an increase this many seconds after the change that caused it, so a "
        "unit the channel sold but has not told us about yet is not relisted. 0: push at once.",
    )
    max_push_attempts = models.PositiveIntegerField(
        default=3, help_text="Attempts before a push becomes a dead letter."
    )
    # Non-secret platform settings: API version, the platform's location id, batch size...
    platform_settings = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        """The API base URL, and any URL among the platform settings, must be one of the
        platform's API hosts over https (``channels.connectors.outbound``)."""
        super().clean()
        # Imported here: the connectors import this module's names for their types.
        from channels.connectors import outbound
        from channels.connectors.registry import UnknownPlatform, connector_class_for

        try:
            api_domains = connector_class_for(self.platform).api_domains
        except UnknownPlatform:
            return  # the platform field reports it
        errors: dict[str, str] = {}
        if self.api_base_url:
            refusal = outbound.url_refusal(self.api_base_url, api_domains=api_domains)
            if refusal:
                errors["api_base_url"] = refusal
        for name, value in sorted((self.platform_settings or {}).items()):
            if name.endswith("_url") and value:
                refusal = outbound.url_refusal(str(value), api_domains=api_domains)
                if refusal:
                    errors["platform_settings"] = f"{name}: {refusal}"
                    break
        if errors:
            raise ValidationError(errors)

    def webhook_secrets(self, now: dt.datetime) -> list[str]:
        """The secrets a webhook may be signed with now: the current one, and the one it
        replaced while its rotation lasts."""
        secrets = [self.webhook_secret]
        until = self.previous_webhook_secret_until
        if self.previous_webhook_secret and until is not None and until > now:
            secrets.append(self.previous_webhook_secret)
        return [secret for secret in secrets if secret]


class Listing(models.Model):
    """One product on one channel, mapped to one internal SKU (the SKU map)."""

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="listings")
    # Empty for a listing the channel has and nobody has mapped yet: a mapping gap.
    sku = models.ForeignKey(
        "inventory.Sku",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="listings",
    )
    # The platform's main id for the stock-bearing item (e.g. Shopify inventory item id).
    external_id = models.CharField(max_length=255)
    external_sku = models.CharField(max_length=255, blank=True)
    # The platform's other identifiers: variant id, ASIN, FNSKU, item id, SKU id...
    extra_identifiers = models.JSONField(default=dict, blank=True)
    is_active = models.BooleanField(default=True)
    # The channel holds and ships this listing's stock (Amazon FBA): its quantity is the
    # channel's to set, so the listing is never pushed.
    fulfilled_by_channel = models.BooleanField(
        default=False,
        help_text="The channel holds and ships this item's stock (e.g. Amazon FBA): "
        "never pushed; its stock is read into the channel's marketplace location.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["channel", "external_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["channel", "external_id"], name="listing_one_per_channel_external_id"
            ),
        ]
        # How message lines find their listing (channels.pipeline.ingest): by the external
        # id, the seller's SKU code, or any platform's own keys in extra_identifiers (a
        # variant id, an ASIN, a listing id...), which one containment index serves.
        indexes = [
            GinIndex(
                fields=["extra_identifiers"],
                opclasses=["jsonb_path_ops"],
                name="listing_extra_identifiers",
            ),
            models.Index(fields=["channel", "external_sku"], name="listing_external_sku"),
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
    # The velocity guard's (channels.pipeline.velocity): set and cleared by it, never by a
    # form.
    velocity_units = models.PositiveIntegerField(
        default=0,
        help_text="Units the velocity guard holds back for this SKU on this channel, on top "
        "of whichever rule governs each listing, while the SKU sells faster than "
        "VELOCITY_GUARD_UNITS_PER_MIN. Set and cleared automatically.",
    )
    velocity_until = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the velocity guard looks again at the SKU's rate and lowers its "
        "rise if the spike is over.",
    )
    velocity_only = models.BooleanField(
        default=False,
        help_text="Created by the velocity guard only to hold its rise: its percent, fixed "
        "units and cap are not used (the channel's rule governs), and it goes when the rise "
        "falls back. Saving it as an operator makes it an ordinary SKU override.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    history = HistoricalRecords()

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
            # The rise is a SKU's: only a SKU override holds it, or exists for it alone.
            models.CheckConstraint(
                condition=(Q(velocity_units=0) & Q(velocity_only=False))
                | (Q(sku__isnull=False) & Q(listing__isnull=True)),
                name="bufferrule_velocity_on_sku_rules_only",
            ),
            models.CheckConstraint(
                condition=Q(velocity_only=False)
                | (Q(percent=0) & Q(fixed_units=0) & Q(max_cap__isnull=True)),
                name="bufferrule_velocity_only_has_no_buffer",
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
            scope = f"SKU {self.sku_id}" + (" (velocity guard)" if self.velocity_only else "")
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


# How long moves found and written over (sales in flight, mostly) wait for their webhooks.
UNEXPLAINED_MOVES_WAIT_S = 60


class ListingSyncState(models.Model):
    """What we last told the channel about a listing, and what we believe it shows now."""

    listing = models.OneToOneField(
        Listing, primary_key=True, on_delete=models.CASCADE, related_name="sync_state"
    )
    last_pushed_quantity = models.IntegerField(null=True, blank=True)
    last_pushed_at = models.DateTimeField(null=True, blank=True)
    # The figure a compare-and-set write expects to find on the channel: the last pushed
    # quantity less the units the channel has sold since (its own sales move it too).
    expected_channel_quantity = models.IntegerField(null=True, blank=True)
    # Running sum of what the channel's own sales, cancels and restocks moved (ingest).
    # A push remembers its figure plus what moved since its claim, not its figure alone:
    # a sale ingested while the push was in flight must not be forgotten.
    channel_moves_total = models.BigIntegerField(default=0)
    # Moves the channel had made that we had not ingested when a compare-and-set found
    # them and our figure was written over them (sales in flight, mostly). Their webhooks
    # must not move the expected figure again: ingest takes them out of this first, until
    # ``unexplained_moves_until``; after that an unmatched rest was a real edit.
    unexplained_channel_moves = models.IntegerField(default=0)
    unexplained_moves_until = models.DateTimeField(null=True, blank=True)
    # When the newest of the channel's own moves we ingested happened, by the channel's
    # clock (an order's created_at): a level the channel reports from before it is old news.
    last_channel_move_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"sync state of listing {self.listing_id}"


class ChannelBreaker(models.Model):
    """The circuit breaker of a channel's pushes (``pipeline.breaker``): state, not settings.

    Kept apart from ``Channel`` so that an operator saving the channel never writes over it.
    """

    class State(models.TextChoices):
        CLOSED = "closed", "Closed"
        FAILING = "failing", "Closed, failing"
        OPEN = "open", "Open"
        HALF_OPEN = "half_open", "Half-open (next push probes)"

    channel = models.OneToOneField(
        Channel, primary_key=True, on_delete=models.CASCADE, related_name="breaker"
    )
    # Push calls in a row that failed as a whole (5xx, timeout, no connection).
    failures = models.IntegerField(default=0)
    # Start of the spell of failures: its dead letters are replayed when the channel answers.
    failing_since = models.DateTimeField(null=True, blank=True)
    # No push calls the channel until then; after it, one run probes.
    open_until = models.DateTimeField(null=True, blank=True)
    # Trips in a row, each doubling the time the breaker stays open.
    trips = models.IntegerField(default=0)
    last_error = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"circuit breaker of channel {self.channel_id}"

    def state(self, now: dt.datetime) -> State:
        if self.open_until is not None:
            return self.State.OPEN if self.open_until > now else self.State.HALF_OPEN
        return self.State.FAILING if self.failures else self.State.CLOSED


class PendingPush(models.Model):
    """The outbox: one row per listing that owes its channel a new quantity.

    Written by a database trigger in the same transaction as the stock change (and by
    ``channels.pipeline.outbox.mark_listings_owed`` for changes of buffers or the map), coalesced:
    a second change before the push only bumps ``generation``. The quantity is worked out
    when the push is sent, from the master as it is then, so it is always the newest.
    """

    # No database-level foreign keys: a stock change of a component shared by 1,000 bundles
    # writes thousands of these rows in its statement, and deferred key checks doubled its
    # commit (bench/cascade.py). The trigger only writes ids it has just read from the
    # listing table, and deletes cascade here in Django.
    listing = models.OneToOneField(
        Listing, on_delete=models.CASCADE, related_name="pending_push", db_constraint=False
    )
    # Indexed first in ``pending_channel_due``; an index of its own would be upkeep only.
    channel = models.ForeignKey(
        Channel,
        on_delete=models.CASCADE,
        related_name="pending_pushes",
        db_constraint=False,
        db_index=False,
    )
    # Bumped by every change; a push removes the row only if no change came in meanwhile.
    generation = models.BigIntegerField(default=1)
    first_change_at = models.DateTimeField(db_default=Now())
    last_change_at = models.DateTimeField(db_default=Now())
    not_before = models.DateTimeField(db_default=Now())
    # A worker's claim; a claim past its lease is free again (the worker died).
    claimed_until = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    # The quantity the last failed attempt tried to set (a push in flight has none yet).
    target_quantity = models.IntegerField(null=True, blank=True)
    errors = models.JSONField(default=list, blank=True)
    # Why the platform will not take this listing's figure before ``not_before`` (a daily
    # revision cap): shown to the operator; empty when nothing holds it.
    held_reason = models.CharField(max_length=500, blank=True, db_default="")

    class Meta:
        indexes = [models.Index(fields=["channel", "not_before"], name="pending_channel_due")]

    def __str__(self) -> str:
        return f"listing {self.listing_id} owes a push (generation {self.generation})"


class PushAttempt(models.Model):
    """One quantity sent (or, in shadow mode, not sent) to a channel for one listing."""

    class Outcome(models.TextChoices):
        APPLIED = "applied", "Applied"
        STALE = "stale", "Compare-and-set stale (drift)"
        REJECTED = "rejected", "Rejected by the channel"
        FAILED = "failed", "Failed (channel error)"
        THROTTLED = "throttled", "Throttled"
        SHADOW = "shadow", "Shadow (not sent)"
        # An asynchronous write the channel accepted; applied (or not) later.
        SUBMITTED = "submitted", "Submitted (accepted, not applied yet)"

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="push_attempts")
    listing = models.ForeignKey(Listing, on_delete=models.CASCADE, related_name="push_attempts")
    target_quantity = models.IntegerField()
    compare_quantity = models.IntegerField(null=True, blank=True)
    # In shadow mode: what the channel showed next to what would have been pushed.
    channel_quantity = models.IntegerField(null=True, blank=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    error = models.TextField(blank=True)
    attempt_number = models.PositiveIntegerField(default=1)
    change_at = models.DateTimeField(help_text="When the first change this push carries happened.")
    sent_at = models.DateTimeField()
    acked_at = models.DateTimeField(null=True, blank=True)
    latency_ms = models.FloatField(
        null=True, blank=True, help_text="From the originating change to the acknowledgement."
    )

    class Meta:
        ordering = ["-sent_at"]
        indexes = [
            models.Index(fields=["channel", "-sent_at"], name="pushattempt_channel_time"),
            models.Index(fields=["listing", "-sent_at"], name="pushattempt_listing_time"),
            # The rollup trigger's look-up: is an applied attempt the settlement of an
            # accepted submission (same listing and sent_at)?
            models.Index(
                fields=["listing", "sent_at"],
                condition=Q(outcome="submitted"),
                name="pushattempt_submissions",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.target_quantity} to listing {self.listing_id}: {self.outcome}"


class PushRollup(models.Model):
    """What a channel's push attempts came to in one minute or one quarter hour: sends,
    errors and latency histograms, so the console reads a window's figures from at most a
    few hundred rows however many pushes it held. A database trigger files every attempt
    inserted in ``PushRollupBacklog``; ``channels.kpis.roll_up_pushes`` adds the
    backlog in (migrations 0037 and 0043).

    Counts are filed by ``sent_at``; latencies by ``acked_at``. A histogram maps a bucket
    (``channels.kpis.latency_bucket``) to the pushes in it.
    """

    MINUTE_S = 60
    QUARTER_S = 900

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="+")
    span_s = models.PositiveSmallIntegerField(help_text="60: a minute; 900: a quarter hour.")
    start = models.DateTimeField()
    # Attempts that reached the channel (shadow and throttled ones did not).
    sends = models.IntegerField(default=0)
    # Sends the channel failed or refused.
    errors = models.IntegerField(default=0)
    # Sends that failed (a minute whose every send failed is a minute down).
    failed_sends = models.IntegerField(default=0)
    # Attempts other than shadow ones (the throughput chart's pushes).
    pushes = models.IntegerField(default=0)
    acknowledged_ms = models.JSONField(default=dict)
    applied_ms = models.JSONField(default=dict)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["channel", "span_s", "start"], name="pushrollup_one_per_span"
            )
        ]
        indexes = [models.Index(fields=["span_s", "start"], name="pushrollup_span_time")]

    def __str__(self) -> str:
        return f"{self.sends} sends of channel {self.channel_id} from {self.start:%H:%M}"


class PushRollupBacklog(models.Model):
    """A push attempt not yet in ``PushRollup``, filed by the trigger on its insert.

    Rolled up in batches (``channels.kpis.roll_up_pushes``: every few seconds, and
    before the console reads the rollup), not by the trigger itself: adding a push run's
    few attempts to the rollup's rows cost more PostgreSQL time than the push run's other
    statements together, inside the transaction that holds its outbox rows. A roll-up
    deletes the rows it adds in, so an attempt is counted once, whatever commits when.
    """

    attempt_id = models.BigIntegerField(primary_key=True)

    def __str__(self) -> str:
        return f"push attempt {self.attempt_id}, not rolled up yet"


class BufferSnapshot(models.Model):
    """Units a channel held back at ``taken_at``: its ATS less what it was last told, over
    its pushed listings (``channels.kpis.buffer_utilization``). Taken by a beat task so
    the console does not work the ATS of every listing out on each request."""

    channel = models.OneToOneField(Channel, on_delete=models.CASCADE, related_name="+")
    taken_at = models.DateTimeField()
    available_units = models.BigIntegerField()
    listed_units = models.BigIntegerField()
    held_back_units = models.BigIntegerField()

    def __str__(self) -> str:
        return f"{self.held_back_units} units held back from channel {self.channel_id}"


class OrderPoll(models.Model):
    """How far back a channel's orders have been read (the backup to its order events).

    Kept apart from ``Channel`` so that an operator saving the channel never writes over it.
    """

    channel = models.OneToOneField(
        Channel, primary_key=True, on_delete=models.CASCADE, related_name="order_poll"
    )
    # Orders changed before this were read; the next poll starts a little earlier.
    polled_until = models.DateTimeField()
    last_error = models.TextField(blank=True)

    def __str__(self) -> str:
        return f"orders of channel {self.channel_id} read until {self.polled_until}"


class Alert(models.Model):
    """One spell of a watched condition (``channels.alerts``): opened when the condition
    starts, cleared when it ends; the operators are emailed once at each end."""

    class Kind(models.TextChoices):
        LATENCY = "latency", "Sync latency over its threshold"
        BREAKER_OPEN = "breaker_open", "Circuit breaker open"
        DEAD_LETTERS = "dead_letters", "Dead letters piling up"
        OVERSELL = "oversell", "Oversell"
        # A ChannelAlert raised by the pipeline (quarantined webhooks at their cap...) and
        # not resolved yet: emailed and shown like the others.
        CHANNEL_ALERT = "channel_alert", "A channel alert to look at"
        # A scorecard KPI of a channel missing its target (channels.kpis, and
        # reconciliation.scorecard for accuracy) over the scorecard's window.
        SYNC_ACCURACY = "sync_accuracy", "Sync accuracy under its target"
        ERROR_RATE = "error_rate", "Push error rate over its target"
        UPTIME = "uptime", "Uptime under its target"
        WEBHOOK_HEALTH = "webhook_health", "Webhook delivery health under its target"

    kind = models.CharField(max_length=32, choices=Kind.choices)
    # Names the condition (kind and subject: "breaker_open:3"); one open alert per key.
    key = models.CharField(max_length=255)
    channel = models.ForeignKey(
        Channel, null=True, blank=True, on_delete=models.CASCADE, related_name="condition_alerts"
    )
    message = models.TextField()
    # The figures that opened it (the measured value and its threshold).
    figures = models.JSONField(default=dict, blank=True)
    opened_at = models.DateTimeField()
    cleared_at = models.DateTimeField(null=True, blank=True)
    # Set once each email went out; an email that failed is sent by the next evaluation.
    opened_email_sent_at = models.DateTimeField(null=True, blank=True)
    cleared_email_sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-opened_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["key"],
                condition=Q(cleared_at__isnull=True),
                name="alert_one_open_per_condition",
            ),
        ]
        indexes = [
            models.Index(fields=["-opened_at"], name="alert_opened_time"),
            models.Index(
                fields=["opened_at"],
                condition=Q(cleared_at__isnull=True),
                name="alert_open_ones",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.key}"

    @property
    def is_open(self) -> bool:
        return self.cleared_at is None


class MarketplaceLocation(models.Model):
    """A location whose stock a channel holds (Amazon FBA, one per marketplace): its on hand
    is read from the channel (``channels.pipeline.marketplace_stock``), never pushed to it.

    Other channels may sell from the location like any other; the channel that holds it
    lists its own stock there itself.
    """

    channel = models.ForeignKey(
        Channel, on_delete=models.CASCADE, related_name="marketplace_locations"
    )
    # The channel's region the stock is held for (Amazon's marketplace id).
    marketplace_id = models.CharField(max_length=64)
    location = models.OneToOneField(
        "inventory.Location", on_delete=models.PROTECT, related_name="marketplace_of"
    )
    # The scheduled read asks for counts changed since a little before this.
    counted_until = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["channel", "marketplace_id"], name="marketplacelocation_one_per_region"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.marketplace_id} stock of channel {self.channel_id}"


class SubmittedWrite(models.Model):
    """A write the channel accepted but has not applied yet (an item of a feed or a job).

    Only platforms with asynchronous writes have these. One per listing: a newer submission
    replaces the older. While it waits the listing is not drift (reconciliation skips it);
    ``channels.pipeline.push.settle_submissions`` asks the channel how it ended.
    """

    listing = models.OneToOneField(
        Listing, primary_key=True, on_delete=models.CASCADE, related_name="submitted_write"
    )
    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="submitted_writes")
    # The platform's handle (feed id, job id) to ask about the outcome.
    submission_id = models.CharField(max_length=255)
    quantity = models.IntegerField()
    # The first change the write carries, for the latency to "applied".
    change_at = models.DateTimeField()
    submitted_at = models.DateTimeField()
    attempt_number = models.PositiveIntegerField(default=1)

    class Meta:
        indexes = [
            models.Index(fields=["channel", "submitted_at"], name="submittedwrite_channel_age")
        ]

    def __str__(self) -> str:
        return f"{self.quantity} to listing {self.listing_id} in {self.submission_id}"


class DeadLetter(models.Model):
    """A push that failed every attempt; kept with its whole story, replayable."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        REPLAYED = "replayed", "Replayed"
        DISCARDED = "discarded", "Discarded"

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="dead_letters")
    listing = models.ForeignKey(Listing, on_delete=models.CASCADE, related_name="dead_letters")
    target_quantity = models.IntegerField()
    # Every attempt: {"at": iso time, "error": text}.
    attempts = models.JSONField(default=list)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    created_at = models.DateTimeField(auto_now_add=True)
    replayed_at = models.DateTimeField(null=True, blank=True)
    replayed_by = models.CharField(max_length=255, blank=True)
    # An operator decided the push is not wanted (the listing is gone from the channel...).
    discarded_at = models.DateTimeField(null=True, blank=True)
    discarded_by = models.CharField(max_length=255, blank=True)
    discard_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["status", "channel"], name="deadletter_status_channel"),
            # The console's list: a status, newest first, one page at a time.
            models.Index(fields=["status", "-created_at", "-id"], name="deadletter_status_time"),
        ]

    def __str__(self) -> str:
        return f"dead letter: {self.target_quantity} to listing {self.listing_id}"


class DriftRecord(models.Model):
    """A channel figure that differed from what we expected it to hold."""

    class DetectedBy(models.TextChoices):
        COMPARE_AND_SET = "compare_and_set", "Compare-and-set at write time"
        WEBHOOK = "webhook", "Inventory change webhook"

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="drifts")
    listing = models.ForeignKey(Listing, on_delete=models.CASCADE, related_name="drifts")
    expected_quantity = models.IntegerField(null=True, blank=True)
    channel_quantity = models.IntegerField(null=True, blank=True)
    master_quantity = models.IntegerField(null=True, blank=True)
    detected_by = models.CharField(max_length=32, choices=DetectedBy.choices)
    # Units of the move that the channel's own webhooks accounted for afterwards (a sale in
    # flight: the channel had sold them before its order webhook reached us), and which.
    explained_units = models.IntegerField(default=0)
    explained_by = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"drift on listing {self.listing_id}: {self.channel_quantity}"

    @property
    def moved(self) -> int | None:
        """What the channel's figure had moved from the expected one."""
        if self.channel_quantity is None or self.expected_quantity is None:
            return None
        return self.channel_quantity - self.expected_quantity

    @property
    def explained(self) -> bool:
        """Wholly a sale (or cancel, or restock) in flight: no drift after all."""
        return self.moved is not None and self.explained_units >= abs(self.moved) > 0


class WebhookReceipt(models.Model):
    """A webhook as it arrived, stored before it is acknowledged."""

    class Status(models.TextChoices):
        RECEIVED = "received", "Received"
        PROCESSED = "processed", "Processed"
        IGNORED = "ignored", "Ignored (topic not used)"
        QUARANTINED = "quarantined", "Quarantined (signed but unparseable)"
        FAILED = "failed", "Failed (tried again by the sweep while tries remain)"
        # A cancellation or refund that came before its order: applied when the order
        # comes, if it comes by ``awaited_until``.
        AWAITING_ORDER = "awaiting_order", "Waiting for its order"
        # Its order never came within the platform's redelivery window: nothing applied,
        # for an operator to look into.
        ORDER_NEVER_CAME = "order_missing", "Its order never came (check it)"

    # No index of its own: "webhook_one_per_delivery" starts with the channel, and every
    # receipt would otherwise write one index entry more at each of its three writes.
    channel = models.ForeignKey(
        Channel, on_delete=models.PROTECT, related_name="webhooks", db_index=False
    )
    topic = models.CharField(max_length=128)
    # The platform's delivery id (Shopify: X-Shopify-Webhook-Id), kept for good.
    dedupe_key = models.CharField(max_length=255)
    # Deliveries through the webhook receiver: the SHA-256 of the topic and body
    # (Connector.webhook_content_key). The delivery id is not signed, so one body resent
    # under fresh ids is stored once, like one delivery id sent twice.
    content_hash = models.CharField(max_length=64, null=True, blank=True)
    headers = models.JSONField(default=dict)
    body = models.BinaryField()
    received_at = models.DateTimeField(db_default=Now())
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RECEIVED)
    error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    processed_at = models.DateTimeField(null=True, blank=True)
    # AWAITING_ORDER: the order it is about, and until when that order may still come.
    awaited_order = models.CharField(max_length=255, blank=True, db_default="")
    awaited_until = models.DateTimeField(null=True, blank=True)
    # The last time an operator sent it through ingest again (failed, quarantined...).
    reprocessed_at = models.DateTimeField(null=True, blank=True)
    reprocessed_by = models.CharField(max_length=255, blank=True, db_default="")

    class Meta:
        ordering = ["-received_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["channel", "dedupe_key"], name="webhook_one_per_delivery"
            ),
            models.UniqueConstraint(
                fields=["channel", "content_hash"],
                condition=models.Q(content_hash__isnull=False),
                name="webhook_one_per_content",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "received_at"], name="webhook_status_time"),
            # Every order ingested looks for what waits for it: few rows, looked up often.
            models.Index(
                fields=["channel", "awaited_order"],
                name="webhook_awaiting_order",
                condition=models.Q(status="awaiting_order"),
            ),
            # The console's receipts to reprocess (REPROCESSABLE_RECEIPT_STATUSES, below),
            # newest first: few rows among millions.
            models.Index(
                fields=["-received_at", "-id"],
                name="webhook_to_reprocess",
                condition=models.Q(status__in=["failed", "quarantined", "order_missing"]),
            ),
            # The ingest worker claims the receipts never tried, oldest first, several
            # times a second: through the pending few, not the pages of every receipt
            # ever processed (a scan of the primary key that grew with the table).
            models.Index(
                fields=["id"],
                name="webhook_never_tried",
                condition=models.Q(status="received", attempts=0),
            ),
            # The quarantine cap counts a channel's quarantined receipts.
            models.Index(
                fields=["channel"],
                name="webhook_quarantined",
                condition=models.Q(status="quarantined"),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.topic} {self.dedupe_key}"


# Receipts an operator may send through ingest again: nothing of any of them was applied
# (a failed or quarantined receipt's transaction rolled back whole; a cancellation whose
# order never came applied nothing), so applying one now applies it once.
REPROCESSABLE_RECEIPT_STATUSES = (
    WebhookReceipt.Status.FAILED,
    WebhookReceipt.Status.QUARANTINED,
    WebhookReceipt.Status.ORDER_NEVER_CAME,
)


class ChannelAlert(models.Model):
    """Something about a channel an operator must look at; one open row per channel and
    kind, its count and last time brought up to date while the cause lasts."""

    class Kind(models.TextChoices):
        # The channel holds WEBHOOK_QUARANTINE_CAP quarantined receipts: more signed
        # deliveries that cannot be used are not stored (someone may be replaying captured
        # ones, or the platform changed its format).
        QUARANTINE_FULL = "quarantine_full", "Quarantined webhooks at their cap"
        # The seller withdrew the app's authorization (TikTok Shop type 6): the channel is
        # paused until it is authorized again.
        AUTHORIZATION_REVOKED = "authorization_revoked", "Authorization withdrawn"
        # The authorization ends soon (TikTok Shop type 7): authorize the app again before.
        AUTHORIZATION_EXPIRING = "authorization_expiring", "Authorization ending soon"

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="alerts")
    kind = models.CharField(max_length=32, choices=Kind.choices)
    message = models.TextField()
    # How many times the cause came up since the alert was raised.
    occurrences = models.PositiveIntegerField(default=1)
    raised_at = models.DateTimeField(db_default=Now())
    last_seen_at = models.DateTimeField(db_default=Now())
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-last_seen_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["channel", "kind"],
                condition=Q(resolved_at__isnull=True),
                name="channelalert_one_open_per_kind",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} on channel {self.channel_id}"


class OversellIncident(models.Model):
    """An order the channel took for stock we no longer had."""

    channel = models.ForeignKey(Channel, on_delete=models.PROTECT, related_name="oversells")
    sku = models.ForeignKey("inventory.Sku", on_delete=models.PROTECT, related_name="oversells")
    listing = models.ForeignKey(
        Listing, null=True, blank=True, on_delete=models.SET_NULL, related_name="oversells"
    )
    order_reference = models.CharField(max_length=255)
    shortfall = models.PositiveIntegerField()
    event = models.OneToOneField(
        "inventory.InventoryEvent", on_delete=models.PROTECT, related_name="oversell_incident"
    )
    receipt = models.ForeignKey(
        WebhookReceipt, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # An operator's handling: seen, why it happened, closed.
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.CharField(max_length=255, blank=True)
    root_cause = models.TextField(blank=True)
    root_cause_noted_at = models.DateTimeField(null=True, blank=True)
    root_cause_noted_by = models.CharField(max_length=255, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"oversold {self.shortfall} of SKU {self.sku_id} on {self.channel_id}"


NO_LISTING = "No listing has these identifiers."


class UnmappedLine(models.Model):
    """An order line that could not be used: its identifiers match no listing (a gap), or
    the platform sent something unusable (``reason``). Shown, never dropped; the order's
    other lines are applied."""

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="unmapped_lines")
    receipt = models.ForeignKey(WebhookReceipt, on_delete=models.CASCADE, related_name="gaps")
    line_reference = models.CharField(max_length=255)
    identifiers = models.JSONField(default=dict)
    quantity = models.IntegerField()
    reason = models.CharField(max_length=500, blank=True, default=NO_LISTING)
    created_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    # Who mapped it, and the listing it was applied through once mapped.
    resolved_by = models.CharField(max_length=255, blank=True)
    listing = models.ForeignKey(
        Listing, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["receipt", "line_reference"], name="unmapped_line_once_per_receipt"
            ),
        ]
        indexes = [
            # The console's waiting lines, newest first.
            models.Index(
                fields=["-created_at", "-id"],
                name="unmapped_line_waiting",
                condition=models.Q(resolved_at__isnull=True),
            ),
        ]

    def __str__(self) -> str:
        return f"unmapped line {self.line_reference} on {self.channel_id}"


class ChannelOperation(models.Model):
    """An operator's action on a whole channel from the console (a mode switch, a poll or a
    full sync run now): who did it, when, and what it was."""

    class Action(models.TextChoices):
        SWITCH_MODE = "switch_mode", "Switched mode"
        POLL_NOW = "poll_now", "Ran a reconciliation poll"
        FULL_SYNC_NOW = "full_sync_now", "Ran a full sync"

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="operations")
    action = models.CharField(max_length=32, choices=Action.choices)
    # The username of who did it (kept if the account is deleted later).
    actor = models.CharField(max_length=150)
    detail = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["channel", "-created_at"], name="channeloperation_recent"),
        ]

    def __str__(self) -> str:
        return f"{self.get_action_display()} on {self.channel_id} by {self.actor}"
