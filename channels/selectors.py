"""Reads about channels shared by the push pipeline, the dashboard and reconciliation."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from django.db import connection
from django.db.models import QuerySet
from django.utils import timezone

from bundles import selectors as bundle_selectors
from channels import rules
from channels.buffers import (
    BufferRuleValues,
    Explanation,
    Step,
    explain_listed_quantity,
    listed_quantity,
)
from channels.models import (
    NO_LISTING,
    REPROCESSABLE_RECEIPT_STATUSES,
    BufferRule,
    Channel,
    DeadLetter,
    Listing,
    OversellIncident,
    PendingPush,
    PushAttempt,
    UnmappedLine,
    WebhookReceipt,
)
from inventory.models import Sku, StockLevel


def effective_buffer_rule(*, listing: Listing) -> BufferRule | None:
    """The rule that governs the listing (precedence: ``channels.rules``), else None."""
    candidates = BufferRule.objects.filter(
        rules.candidate_rules(
            listing_ids=[listing.pk],
            sku_ids=[] if listing.sku_id is None else [listing.sku_id],
        ),
        channel_id=listing.channel_id,
    )
    return _scoped(candidates).effective(listing_id=listing.pk, sku_id=listing.sku_id)


def _scoped(buffer_rules: Iterable[BufferRule]) -> rules.ScopedRules[BufferRule]:
    return rules.ScopedRules.of(scoped_rule(rule, rule) for rule in buffer_rules)


RuleT = TypeVar("RuleT")


def scoped_rule(rule: BufferRule, value: RuleT) -> rules.Scoped[RuleT]:
    """``value`` standing for the rule, with the rule's scope and velocity guard's rise."""
    return rules.Scoped(
        rule.listing_id, rule.sku_id, value, rule.velocity_units, rule.velocity_only
    )


def buffer_rule_values(
    rule: BufferRule | None, *, velocity_units: int = 0
) -> BufferRuleValues | None:
    """The rule's numbers, detached from the model, with the velocity guard's rise for the
    listing's SKU (``ScopedRules.velocity_units``); None for no rule and no rise."""
    if rule is None:
        return BufferRuleValues(velocity_units=velocity_units) if velocity_units else None
    return BufferRuleValues(
        percent=rule.percent,
        fixed_units=rule.fixed_units,
        max_cap=rule.max_cap,
        cap_starts_at=rule.cap_starts_at,
        cap_ends_at=rule.cap_ends_at,
        velocity_units=velocity_units,
    )


def available_to_sell(*, sku_id: int, location_ids: Iterable[int]) -> int:
    """Available (on hand - committed - reserved) over the given locations; for a bundle,
    as many as its scarcest leaf component allows there (``bundles.rules``)."""
    ats_by_sku = bundle_selectors.available_by_sku(sku_ids=[sku_id], location_ids=location_ids)
    return ats_by_sku.get(sku_id, 0)


def explain_listing(*, listing: Listing, now: dt.datetime | None = None) -> Explanation:
    """How the listing's quantity is derived from the ATS over its channel's locations.

    A bundle's explanation starts with its BOM arithmetic: each leaf component's ATS,
    divided by its units per bundle; the smallest is the bundle's ATS.
    """
    return explain_listings(listings=[listing], now=now)[listing.pk]


def explain_listings(
    *, listings: Sequence[Listing], now: dt.datetime | None = None
) -> dict[int, Explanation]:
    """``explain_listing`` of each listing, by id, in a number of queries that grows with
    the distinct channels and SKUs among them, not with the listings (a SKU's page)."""
    now = now or timezone.now()
    mapped = [listing for listing in listings if listing.sku_id is not None]
    explanations = {
        listing.pk: Explanation(
            steps=(Step("no SKU mapped: a mapping gap lists nothing", 0),), listed=0
        )
        for listing in listings
        if listing.sku_id is None
    }
    if not mapped:
        return explanations
    channel_ids = {listing.channel_id for listing in mapped}
    locations_of: dict[int, set[int]] = {channel_id: set() for channel_id in channel_ids}
    for channel_id, location_id in Channel.locations.through.objects.filter(
        channel_id__in=channel_ids
    ).values_list("channel_id", "location_id"):
        locations_of[channel_id].add(location_id)
    sku_ids = {listing.sku_id for listing in mapped if listing.sku_id is not None}
    bundle_ids = bundle_selectors.bundle_ids_among(sku_ids=sku_ids)
    rules_of: dict[int, list[BufferRule]] = {channel_id: [] for channel_id in channel_ids}
    for rule in BufferRule.objects.filter(
        rules.candidate_rules(listing_ids=[listing.pk for listing in mapped], sku_ids=sku_ids),
        channel_id__in=channel_ids,
    ):
        rules_of[rule.channel_id].append(rule)
    scoped = {channel_id: _scoped(found) for channel_id, found in rules_of.items()}
    # Channels selling from the same locations share their ATS (and BOM arithmetic).
    ats_at: dict[frozenset[int], tuple[dict[int, tuple[Step, ...]], dict[int, int]]] = {}
    for location_set in {frozenset(locations) for locations in locations_of.values()}:
        bom_steps: dict[int, tuple[Step, ...]] = {}
        ats_by_sku = bundle_selectors.available_by_sku(
            sku_ids=sku_ids - bundle_ids, location_ids=location_set
        )
        for bundle_id in bundle_ids:
            bom = bundle_selectors.explain_bundle(bundle_id=bundle_id, location_ids=location_set)
            bom_steps[bundle_id] = tuple(Step(step.label, step.bundles) for step in bom.steps)
            ats_by_sku[bundle_id] = bom.available
        ats_at[location_set] = (bom_steps, ats_by_sku)
    for listing in mapped:
        assert listing.sku_id is not None
        bom_steps, ats_by_sku = ats_at[frozenset(locations_of[listing.channel_id])]
        explanation = explain_listed_quantity(
            ats=ats_by_sku.get(listing.sku_id, 0),
            rule=buffer_rule_values(
                scoped[listing.channel_id].effective(listing_id=listing.pk, sku_id=listing.sku_id),
                velocity_units=scoped[listing.channel_id].velocity_units(sku_id=listing.sku_id),
            ),
            out_of_stock_threshold=listing.channel.out_of_stock_threshold,
            now=now,
        )
        explanations[listing.pk] = Explanation(
            steps=bom_steps.get(listing.sku_id, ()) + explanation.steps,
            listed=explanation.listed,
        )
    return explanations


def listed_quantities(
    *, channel: Channel, listings: Sequence[Listing], now: dt.datetime | None = None
) -> dict[int, int]:
    """Each listing's quantity for its channel, in five queries at most whatever the count.

    A listing without a SKU lists nothing (it is a mapping gap, not a product).
    """
    now = now or timezone.now()
    sku_ids = {listing.sku_id for listing in listings if listing.sku_id is not None}
    location_ids = list(channel.locations.values_list("pk", flat=True))
    ats_by_sku = bundle_selectors.available_by_sku(sku_ids=sku_ids, location_ids=location_ids)
    scoped = _scoped(
        BufferRule.objects.filter(
            rules.candidate_rules(
                listing_ids=[listing.pk for listing in listings], sku_ids=sku_ids
            ),
            channel=channel,
        )
    )
    quantities: dict[int, int] = {}
    for listing in listings:
        if listing.sku_id is None:
            quantities[listing.pk] = 0
            continue
        quantities[listing.pk] = listed_quantity(
            ats=ats_by_sku.get(listing.sku_id, 0),
            rule=buffer_rule_values(
                scoped.effective(listing_id=listing.pk, sku_id=listing.sku_id),
                velocity_units=scoped.velocity_units(sku_id=listing.sku_id),
            ),
            out_of_stock_threshold=channel.out_of_stock_threshold,
            now=now,
        )
    return quantities


# Raw, as the rule's SQL is (channels.rules): one SKU over one channel's locations.
_ATS_ON_CHANNEL_SQL = (
    f"SELECT {rules.ats_on_channel_sql(sku_id='%(sku_id)s', channel_id='%(channel_id)s')}"
)


def ats_on_channel(*, sku_id: int, channel_id: int) -> int:
    """The SKU's ATS over the locations the channel sells from (a bundle's by its leaf
    components), as the push pipeline's claim works it out."""
    with connection.cursor() as cursor:
        cursor.execute(_ATS_ON_CHANNEL_SQL, {"sku_id": sku_id, "channel_id": channel_id})
        (ats,) = cursor.fetchone()
    return int(ats)


@dataclass(frozen=True)
class MappingGaps:
    """What stops a channel's map from being complete."""

    channel: Channel
    # Listings the channel has that point at no SKU.
    unmapped_listings: list[Listing]
    # Active SKUs with stock at the channel's locations but no active listing on it.
    unlisted_skus: list[Sku]


def mapping_gaps(*, channel: Channel) -> MappingGaps:
    unmapped = list(channel.listings.filter(sku__isnull=True).order_by("external_id"))
    listed_sku_ids = channel.listings.filter(is_active=True, sku__isnull=False).values("sku_id")
    sellable_here = StockLevel.objects.filter(
        location__in=channel.locations.all(), on_hand__gt=0
    ).values("sku_id")
    unlisted = list(
        Sku.objects.filter(is_active=True, pk__in=sellable_here)
        .exclude(pk__in=listed_sku_ids)
        .order_by("code")
    )
    return MappingGaps(channel=channel, unmapped_listings=unmapped, unlisted_skus=unlisted)


@dataclass(frozen=True)
class RulePreviewRow:
    listing: Listing
    current: int
    previewed: Explanation


def preview_buffer_rule(*, rule: BufferRule, limit: int = 25) -> list[RulePreviewRow]:
    """What an unsaved rule would list for the listings it governs, next to today's figure.

    Listings governed by a narrower override keep it; they are left out.
    """
    listings = Listing.objects.filter(
        channel_id=rule.channel_id, is_active=True, sku__isnull=False
    ).select_related("channel")
    if rule.listing_id is not None:
        listings = listings.filter(pk=rule.listing_id)
    elif rule.sku_id is not None:
        listings = listings.filter(sku_id=rule.sku_id).exclude(buffer_rules__isnull=False)
    else:
        overridden_skus = BufferRule.objects.filter(
            channel_id=rule.channel_id, sku__isnull=False, velocity_only=False
        ).values("sku_id")
        listings = listings.exclude(sku_id__in=overridden_skus).exclude(buffer_rules__isnull=False)
    now = timezone.now()
    rows = []
    for listing in listings.order_by("external_id")[:limit]:
        assert listing.sku_id is not None
        ats = available_to_sell(
            sku_id=listing.sku_id,
            location_ids=listing.channel.locations.values_list("pk", flat=True),
        )
        rows.append(
            RulePreviewRow(
                listing=listing,
                current=explain_listing(listing=listing, now=now).listed,
                previewed=explain_listed_quantity(
                    ats=ats,
                    rule=buffer_rule_values(rule),
                    out_of_stock_threshold=listing.channel.out_of_stock_threshold,
                    now=now,
                ),
            )
        )
    return rows


# -----------------------------------------------------------------------------------------
# What an operator has to handle (the console's workflow pages and the API)
# -----------------------------------------------------------------------------------------


def dead_letters_to_handle(
    *, status: str = DeadLetter.Status.OPEN, channel_id: int | None = None
) -> QuerySet[DeadLetter]:
    """Dead letters of a status (all: ``""``), newest first, with their channel, listing and
    SKU in the same query."""
    letters = DeadLetter.objects.select_related("channel", "listing__sku").order_by(
        "-created_at", "-pk"
    )
    if status:
        letters = letters.filter(status=status)
    if channel_id is not None:
        letters = letters.filter(channel_id=channel_id)
    return letters


@dataclass(frozen=True)
class DeadLetterContext:
    """Everything that explains a dead letter: its attempts (on the row), the listing's
    latest pushes, what the master would list now, and whether a push is owed already."""

    dead_letter: DeadLetter
    recent_pushes: list[PushAttempt]
    listed_now: Explanation
    push_owed: bool


def dead_letter_context(*, dead_letter_id: int, pushes: int = 10) -> DeadLetterContext:
    letter = DeadLetter.objects.select_related("channel", "listing__sku").get(pk=dead_letter_id)
    return DeadLetterContext(
        dead_letter=letter,
        recent_pushes=list(
            PushAttempt.objects.filter(listing_id=letter.listing_id).order_by("-sent_at")[:pushes]
        ),
        listed_now=explain_listing(listing=letter.listing),
        push_owed=PendingPush.objects.filter(listing_id=letter.listing_id).exists(),
    )


def oversell_incidents_to_handle(*, state: str = "open") -> QuerySet[OversellIncident]:
    """Incidents newest first: ``open`` (not resolved), ``resolved`` or ``all``."""
    incidents = OversellIncident.objects.select_related("channel", "sku", "listing").order_by(
        "-created_at", "-pk"
    )
    if state == "open":
        incidents = incidents.filter(resolved_at__isnull=True)
    elif state == "resolved":
        incidents = incidents.filter(resolved_at__isnull=False)
    return incidents


def waiting_lines(*, channel_id: int | None = None) -> QuerySet[UnmappedLine]:
    """Order lines waiting for a listing (a gap: mapping it applies them), newest first;
    lines the platform sent unusable are not among them."""
    lines = (
        UnmappedLine.objects.filter(resolved_at__isnull=True, reason=NO_LISTING)
        .select_related("channel", "receipt")
        .defer("receipt__body", "receipt__headers")
        .order_by("-created_at", "-pk")
    )
    if channel_id is not None:
        lines = lines.filter(channel_id=channel_id)
    return lines


def unusable_lines(*, channel_id: int | None = None) -> QuerySet[UnmappedLine]:
    """Order lines the platform sent something unusable in (their ``reason``), newest first."""
    lines = (
        UnmappedLine.objects.filter(resolved_at__isnull=True)
        .exclude(reason=NO_LISTING)
        .select_related("channel")
        .order_by("-created_at", "-pk")
    )
    if channel_id is not None:
        lines = lines.filter(channel_id=channel_id)
    return lines


def unmapped_listings(*, channel_id: int | None = None) -> QuerySet[Listing]:
    """Listings a channel has that point at no SKU (mapping gaps), by channel."""
    listings = (
        Listing.objects.filter(sku__isnull=True)
        .select_related("channel")
        .order_by("channel__slug", "external_id")
    )
    if channel_id is not None:
        listings = listings.filter(channel_id=channel_id)
    return listings


def receipts_to_handle(
    *, status: str = "", channel_id: int | None = None
) -> QuerySet[WebhookReceipt]:
    """Receipts an operator may reprocess (failed, quarantined, order never came), or of one
    of those statuses, newest first, without their bodies."""
    receipts = (
        WebhookReceipt.objects.filter(
            status__in=[status] if status else REPROCESSABLE_RECEIPT_STATUSES
        )
        .select_related("channel")
        .defer("body", "headers")
        .order_by("-received_at", "-pk")
    )
    if channel_id is not None:
        receipts = receipts.filter(channel_id=channel_id)
    return receipts


# A body is shown up to this size: a megabyte of JSON is no use on a page, and the cap keeps
# a hostile body from weighing on the page that shows it.
RECEIPT_BODY_SHOWN_BYTES = 64 * 1024


@dataclass(frozen=True)
class ReceiptBody:
    """The start of a receipt's raw body, as text (undecodable bytes replaced)."""

    text: str
    size_bytes: int
    truncated: bool


def receipt_body(*, receipt_id: int, limit: int = RECEIPT_BODY_SHOWN_BYTES) -> ReceiptBody:
    """The first ``limit`` bytes of the receipt's body and its whole size, read without
    loading the rest (DoesNotExist if there is no such receipt)."""
    # Raw SQL: the ORM would read the whole body to cut it.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT substring(body FROM 1 FOR %s), octet_length(body) "
            "FROM channels_webhookreceipt WHERE id = %s",
            [limit, receipt_id],
        )
        row = cursor.fetchone()
    if row is None:
        raise WebhookReceipt.DoesNotExist(f"No webhook receipt {receipt_id}.")
    start, size = bytes(row[0]), int(row[1])
    return ReceiptBody(
        text=start.decode("utf-8", errors="replace"), size_bytes=size, truncated=size > limit
    )
