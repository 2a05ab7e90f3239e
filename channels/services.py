"""Every write to channels, the SKU map and buffer rules, and the pipeline's operator actions.

A channel's settings, its locations, a listing's SKU or a buffer rule change what a channel
should show without any stock moving, which the outbox trigger (it watches stock rows)
cannot see. So each service here that makes such an edit owes exactly the listings it
affects a push (``outbox.mark_listings_owed``) in the edit's own transaction, and their
pushers are woken when it commits. The admin, the API, the CSV import and the management
commands write through these services; no model signal does this work behind them.

Two apps below this one notify it through hooks they define, because they may not import
``channels`` (STYLE.md §4, the import direction): stock changes
(``inventory.services.register_stock_listener``: pushers are woken on commit) and BOM edits
(``bundles.services.register_bom_listener``: ``owe_bundle_listings``). ``ChannelsConfig.ready``
registers both; they are the only notifications the domain flow uses.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from channels import kpis
from channels.models import (
    BufferRule,
    BufferSnapshot,
    Channel,
    ChannelOperation,
    Listing,
    PushRollup,
)
from channels.pipeline import breaker, outbox, workers
from nventory import permissions
from nventory.errors import ApplicationError, Conflict

# -----------------------------------------------------------------------------------------
# Channels
# -----------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ChannelFields:
    """A channel's editable settings. Its webhook secret and its locations are set by
    services of their own; the defaults are the model's."""

    platform: str
    name: str
    slug: str
    api_base_url: str
    mode: str = Channel.Mode.SHADOW
    credentials: Mapping[str, Any] = dataclasses.field(default_factory=dict, repr=False)
    rate_limit_per_s: int = 2
    out_of_stock_threshold: int = 0
    settle_window_s: int = 0
    max_push_attempts: int = 3
    platform_settings: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @classmethod
    def of(cls, channel: Channel) -> ChannelFields:
        """The fields as they are set on ``channel`` (saved or not)."""
        return cls(**{name: getattr(channel, name) for name in _CHANNEL_FIELD_NAMES})


_CHANNEL_FIELD_NAMES = tuple(field.name for field in dataclasses.fields(ChannelFields))

# What a channel is sent, or where it is sent: a change of any of these owes every listing
# of the channel a push. The platform or address may point at another shop now; new
# credentials may succeed where the old ones failed; the mode may have started pushing;
# the threshold and the platform settings (location id, API version) change the figure or
# where it lands. Its name, rate limit, settle window and attempts change none of that.
CHANNEL_FIELDS_OWING_PUSHES = frozenset(
    {
        "platform",
        "api_base_url",
        "credentials",
        "mode",
        "out_of_stock_threshold",
        "platform_settings",
    }
)


class InvalidWebhookSecret(ApplicationError):
    code = "invalid_webhook_secret"


def webhook_secret_problem(secret: str) -> str:
    """Why a new webhook secret may not be used ("" when it may): shorter than
    ``WEBHOOK_SECRET_MIN_LENGTH``, anyone could guess it."""
    minimum: int = settings.WEBHOOK_SECRET_MIN_LENGTH
    if len(secret) < minimum:
        return f"A webhook secret must be at least {minimum} characters long."
    return ""


@transaction.atomic
def create_channel(
    *, fields: ChannelFields, webhook_secret: str = "", location_ids: Iterable[int] = ()
) -> Channel:
    """Create a channel selling from these locations; ValidationError if a field is invalid.

    It has no listings yet, so nothing is owed. Once it commits, running workers are told
    to consume its push queue (best effort: a worker started later finds it anyway).
    A webhook secret shorter than ``WEBHOOK_SECRET_MIN_LENGTH`` is refused
    (InvalidWebhookSecret); none at all leaves the channel accepting no webhook.
    """
    if webhook_secret and (problem := webhook_secret_problem(webhook_secret)):
        raise InvalidWebhookSecret(problem)
    channel = Channel(**_channel_values(fields), webhook_secret=webhook_secret)
    channel.full_clean()
    channel.save()
    channel.locations.set(sorted(set(location_ids)))
    channel_id = channel.pk
    transaction.on_commit(lambda: workers.announce_push_queue(channel_id), robust=True)
    return channel


@transaction.atomic
def update_channel(*, channel_id: int, fields: ChannelFields) -> Channel:
    """Set the channel's settings to ``fields``; ValidationError if one is invalid.

    Locks the channel row. A change of any of ``CHANNEL_FIELDS_OWING_PUSHES`` owes every
    active listing of the channel a push; any other change, or none, owes nothing.
    """
    channel = Channel.objects.select_for_update().get(pk=channel_id)
    before = ChannelFields.of(channel)
    changed = [
        name for name in _CHANNEL_FIELD_NAMES if getattr(before, name) != getattr(fields, name)
    ]
    if not changed:
        return channel
    for name, value in _channel_values(fields).items():
        setattr(channel, name, value)
    channel.full_clean()
    channel.save(update_fields=changed)
    if CHANNEL_FIELDS_OWING_PUSHES.intersection(changed):
        outbox.mark_channel_owed(channel=channel)
    return channel


@transaction.atomic
def set_channel_locations(*, channel_id: int, location_ids: Iterable[int]) -> Channel:
    """Make these the locations the channel sells from (its ATS is their sum).

    Locks the channel row. A different set owes every active listing of the channel a
    push; the same set owes nothing.
    """
    channel = Channel.objects.select_for_update().get(pk=channel_id)
    wanted = set(location_ids)
    held = wanted & set(channel.marketplace_locations.values_list("location_id", flat=True))
    if held:
        # Its stock there is the channel's own count: listing it again would add it twice.
        raise ApplicationError(
            f"Location {min(held)} is stock this channel holds itself: it cannot sell from it."
        )
    if wanted != set(channel.locations.values_list("pk", flat=True)):
        channel.locations.set(sorted(wanted))
        outbox.mark_channel_owed(channel=channel)
    return channel


@transaction.atomic
def rotate_webhook_secret(*, channel_id: int, new_secret: str) -> Channel:
    """Sign-check the channel's webhooks with ``new_secret`` from now on.

    The secret it replaces stays accepted for ``WEBHOOK_SECRET_ROTATION_GRACE_S`` (a day by
    default), while webhooks signed with it are still coming, or until
    ``revoke_previous_webhook_secret``; a secret replaced earlier is dropped. Locks the
    channel row. The secret in use again changes nothing; a blank one, or one shorter than
    ``WEBHOOK_SECRET_MIN_LENGTH``, is refused (InvalidWebhookSecret). Owes no push: only
    what comes in is signed.
    """
    if not new_secret:
        raise InvalidWebhookSecret("A webhook secret may not be blank.")
    channel = Channel.objects.select_for_update().get(pk=channel_id)
    if new_secret == channel.webhook_secret:
        return channel
    if problem := webhook_secret_problem(new_secret):
        raise InvalidWebhookSecret(problem)
    if channel.webhook_secret:
        channel.previous_webhook_secret = channel.webhook_secret
        channel.previous_webhook_secret_until = timezone.now() + dt.timedelta(
            seconds=settings.WEBHOOK_SECRET_ROTATION_GRACE_S
        )
    channel.webhook_secret = new_secret
    channel.save(
        update_fields=[
            "webhook_secret",
            "previous_webhook_secret",
            "previous_webhook_secret_until",
        ]
    )
    return channel


@transaction.atomic
def revoke_previous_webhook_secret(*, channel_id: int) -> Channel:
    """Stop accepting webhooks signed with the secret the current one replaced, now.

    Locks the channel row; a channel with no previous secret is left as it is.
    """
    channel = Channel.objects.select_for_update().get(pk=channel_id)
    if channel.previous_webhook_secret or channel.previous_webhook_secret_until:
        channel.previous_webhook_secret = ""
        channel.previous_webhook_secret_until = None
        channel.save(update_fields=["previous_webhook_secret", "previous_webhook_secret_until"])
    return channel


@transaction.atomic
def switch_channel_mode(*, actor: Any, channel_id: int, mode: str) -> Channel:
    """An operator switches a channel between active, shadow and paused.

    Needs ``permissions.MANAGE_CHANNELS`` (``PermissionDenied`` otherwise); ValidationError
    for an unknown mode. Goes through ``update_channel`` (the channel row locked, its
    listings owed a push when the mode changes) and records the switch with the actor's
    username; switching to the mode it has changes and records nothing.
    """
    permissions.require(actor, permissions.MANAGE_CHANNELS)
    channel = Channel.objects.get(pk=channel_id)
    before = channel.mode
    if mode == before:
        return channel
    fields = dataclasses.replace(ChannelFields.of(channel), mode=mode)
    channel = update_channel(channel_id=channel_id, fields=fields)
    ChannelOperation.objects.create(
        channel=channel,
        action=ChannelOperation.Action.SWITCH_MODE,
        actor=actor.get_username(),
        detail=f"{before} → {mode}",
    )
    return channel


@transaction.atomic
def owe_channel_full_sync(*, channel_id: int) -> None:
    """Owe every active listing of the channel a push: the channel forgot its figures (a
    simulator restarted empty) or an operator wants them all sent again."""
    outbox.mark_channel_owed(channel=Channel.objects.get(pk=channel_id))


@transaction.atomic
def try_channels_again_now(*, channel_ids: Iterable[int]) -> int:
    """An operator's "try it now": open circuit breakers become half-open and the channels'
    pushers are woken once this commits; how many breakers were open."""
    ids = sorted(set(channel_ids))
    opened = breaker.try_again_now(channel_ids=ids)
    transaction.on_commit(lambda: outbox.wake_pushers(channel_ids=ids), robust=True)
    return opened


def _channel_values(fields: ChannelFields) -> dict[str, Any]:
    values = dataclasses.asdict(fields)
    # Copies: the row must not share a dict with a caller that keeps editing its own.
    values["credentials"] = dict(fields.credentials)
    values["platform_settings"] = dict(fields.platform_settings)
    return values


# -----------------------------------------------------------------------------------------
# The SKU map
# -----------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ListingFields:
    """One row of the SKU map: a channel's product and the SKU it is (None: unmapped)."""

    channel_id: int
    external_id: str
    sku_id: int | None = None
    external_sku: str = ""
    extra_identifiers: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    is_active: bool = True
    # The channel holds and ships the stock (Amazon FBA): never pushed.
    fulfilled_by_channel: bool = False

    @classmethod
    def of(cls, listing: Listing) -> ListingFields:
        """The fields as they are set on ``listing`` (saved or not)."""
        return cls(**{name: getattr(listing, name) for name in _LISTING_FIELD_NAMES})


_LISTING_FIELD_NAMES = tuple(field.name for field in dataclasses.fields(ListingFields))

# What the channel is told and about which of its items: the platform ids and the seller's
# SKU code only help find a listing from an order line, and owe nothing.
LISTING_FIELDS_OWING_PUSHES = frozenset(
    {"sku_id", "external_id", "is_active", "fulfilled_by_channel"}
)


class ListingMovesChannel(Conflict):
    code = "listing_moves_channel"


@transaction.atomic
def create_listing(*, fields: ListingFields) -> Listing:
    """Add a listing to the SKU map; ValidationError if a field is invalid or the channel
    has a listing with this external id already.

    An active, mapped listing is owed a push; an unmapped one is a gap whose figure the
    channel keeps until it is mapped. The SKUs found listed nowhere are looked up again
    (``outbox.forget_unlisted``): this SKU, or a bundle's components, may be listed now.
    """
    listing = Listing(**_listing_values(fields))
    listing.full_clean()
    listing.save()
    _forget_unlisted()
    if listing.is_active and listing.sku_id is not None:
        outbox.mark_listings_owed(listing_ids=[listing.pk])
    return listing


@transaction.atomic
def update_listing(*, listing_id: int, fields: ListingFields) -> Listing:
    """Set the listing's fields to ``fields``; ValidationError if one is invalid,
    ListingMovesChannel if they name another channel (the platform ids are the channel's).

    Locks the listing row. A new SKU (or none: the channel is then told 0, as for any
    listing with no SKU behind it), a new external id or an activation owes the listing a
    push if it is active; a new SKU also has the unlisted SKUs looked up again. Any other
    change, or none, owes nothing.
    """
    listing = Listing.objects.select_for_update().get(pk=listing_id)
    if fields.channel_id != listing.channel_id:
        raise ListingMovesChannel(
            "A listing stays on its channel: add one to the other channel instead."
        )
    before = ListingFields.of(listing)
    changed = [
        name for name in _LISTING_FIELD_NAMES if getattr(before, name) != getattr(fields, name)
    ]
    if not changed:
        return listing
    for name, value in _listing_values(fields).items():
        setattr(listing, name, value)
    listing.full_clean()
    listing.save()
    if "sku_id" in changed:
        _forget_unlisted()
    if LISTING_FIELDS_OWING_PUSHES.intersection(changed) and listing.is_active:
        outbox.mark_listings_owed(listing_ids=[listing.pk])
    return listing


def _listing_values(fields: ListingFields) -> dict[str, Any]:
    values = dataclasses.asdict(fields)
    values["extra_identifiers"] = dict(fields.extra_identifiers)
    return values


def _forget_unlisted() -> None:
    outbox.forget_unlisted()
    # Again once committed: a look-up between now and the commit cannot see the listing
    # yet and may have remembered its SKU as unlisted.
    transaction.on_commit(outbox.forget_unlisted, robust=True)


# -----------------------------------------------------------------------------------------
# Buffer rules
# -----------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class BufferRuleFields:
    """A buffer rule: the channel's default, or an override of one SKU or one listing."""

    channel_id: int
    sku_id: int | None = None
    listing_id: int | None = None
    percent: Decimal = Decimal(0)
    fixed_units: int = 0
    max_cap: int | None = None
    cap_starts_at: dt.datetime | None = None
    cap_ends_at: dt.datetime | None = None

    @classmethod
    def of(cls, rule: BufferRule) -> BufferRuleFields:
        """The fields as they are set on ``rule`` (saved or not)."""
        return cls(**{name: getattr(rule, name) for name in _RULE_FIELD_NAMES})


_RULE_FIELD_NAMES = tuple(field.name for field in dataclasses.fields(BufferRuleFields))


@transaction.atomic
def create_buffer_rule(*, fields: BufferRuleFields) -> BufferRule:
    """Add a buffer rule; ValidationError if it is invalid (both a SKU and a listing, a
    listing of another channel, a second rule for the same scope).

    Owes a push to every active, mapped listing in the rule's scope (see
    ``_listings_in_scope``). A SKU rule the velocity guard made only to hold its rise
    becomes this rule, the rise kept.
    """
    rule = BufferRule(**dataclasses.asdict(fields))
    if fields.sku_id is not None and fields.listing_id is None:
        rise_holder = (
            BufferRule.objects.select_for_update()
            .filter(channel_id=fields.channel_id, sku_id=fields.sku_id, velocity_only=True)
            .first()
        )
        if rise_holder is not None:
            return update_buffer_rule(rule_id=rise_holder.pk, fields=fields)
    rule.full_clean()
    rule.save()
    outbox.mark_listings_owed(listing_ids=_listings_in_scope([fields]))
    return rule


@transaction.atomic
def update_buffer_rule(*, rule_id: int, fields: BufferRuleFields) -> BufferRule:
    """Set the rule's fields to ``fields``; ValidationError if the result is invalid.

    Locks the rule row. Any change owes a push to every active, mapped listing in the
    rule's scope before the edit and after it (a rule moved from one SKU to another
    changes both); no change owes nothing.
    """
    rule = BufferRule.objects.select_for_update().get(pk=rule_id)
    before = BufferRuleFields.of(rule)
    if before == fields and not rule.velocity_only:
        return rule
    for name, value in dataclasses.asdict(fields).items():
        setattr(rule, name, value)
    # Edited by an operator, a rule the velocity guard made is an ordinary override; the
    # guard's rise belongs to the SKU it was measured on, so it stays behind on a move.
    rule.velocity_only = False
    if (fields.channel_id, fields.sku_id, fields.listing_id) != (
        before.channel_id,
        before.sku_id,
        before.listing_id,
    ):
        rule.velocity_units, rule.velocity_until = 0, None
    rule.full_clean()
    rule.save()
    outbox.mark_listings_owed(listing_ids=_listings_in_scope([before, fields]))
    return rule


@transaction.atomic
def delete_buffer_rules(*, rule_ids: Iterable[int]) -> int:
    """Delete these buffer rules (ids that do not exist are skipped); how many went.

    Locks the rules in primary-key order, then owes a push to every active, mapped listing
    in their scopes: those listings fall back to a broader rule, or to none.
    """
    rules = list(
        BufferRule.objects.select_for_update().filter(pk__in=set(rule_ids)).order_by("pk")
    )
    if not rules:
        return 0
    outbox.mark_listings_owed(
        listing_ids=_listings_in_scope([BufferRuleFields.of(rule) for rule in rules])
    )
    # One by one, as the admin's delete does: each deletion goes into the rule's history.
    for rule in rules:
        rule.delete()
    return len(rules)


def _listings_in_scope(scopes: Iterable[BufferRuleFields]) -> list[int]:
    """The active, mapped listings each rule could govern: its listing, its SKU's listings
    on its channel, or every listing of its channel.

    Listings inside that scope held by a narrower override are included: their figure
    does not change, and a push that finds it unchanged is cheaper than a second copy of
    the precedence rule here.
    """
    scope = Q()
    for rule in scopes:
        if rule.listing_id is not None:
            scope |= Q(channel_id=rule.channel_id, pk=rule.listing_id)
        elif rule.sku_id is not None:
            scope |= Q(channel_id=rule.channel_id, sku_id=rule.sku_id)
        else:
            scope |= Q(channel_id=rule.channel_id)
    if not scope:
        return []
    return list(
        Listing.objects.filter(scope, is_active=True, sku__isnull=False).values_list(
            "pk", flat=True
        )
    )


# -----------------------------------------------------------------------------------------
# BOM edits (registered with bundles.services.register_bom_listener by ChannelsConfig)
# -----------------------------------------------------------------------------------------


def owe_bundle_listings(*, bundle_ids: frozenset[int]) -> None:
    """Owe a push to every active listing of these bundles, inside the BOM edit's
    transaction: what each can list changed with its components, no stock moving.

    The SKUs found listed nowhere are looked up again: a new component of a listed bundle
    is listed now.
    """
    _forget_unlisted()
    outbox.mark_listings_owed(
        listing_ids=Listing.objects.filter(sku_id__in=bundle_ids, is_active=True).values_list(
            "pk", flat=True
        )
    )


def take_buffer_snapshots(*, now: dt.datetime | None = None) -> int:
    """Store the units each channel holds back now (``kpis.held_back_now``), replacing its
    last snapshot; how many channels were snapshotted. A channel with no pushed listing
    gets zeros. Safe to run twice."""
    now = now or timezone.now()
    channel_ids = list(Channel.objects.values_list("pk", flat=True))
    held_back = kpis.held_back_now(channel_ids=channel_ids)
    nothing = kpis.HeldBack(available_units=0, listed_units=0, held_back_units=0)
    for channel_id in channel_ids:
        figures = held_back.get(channel_id, nothing)
        BufferSnapshot.objects.update_or_create(
            channel_id=channel_id,
            defaults={
                "taken_at": now,
                "available_units": figures.available_units,
                "listed_units": figures.listed_units,
                "held_back_units": figures.held_back_units,
            },
        )
    return len(channel_ids)


ROLLUP_KEPT = kpis.LONGEST_KPI_WINDOW + dt.timedelta(days=1)


def purge_push_rollup(*, now: dt.datetime | None = None) -> int:
    """Delete the push rollup's rows older than any KPI window reaches (``ROLLUP_KEPT``);
    how many. The push attempts themselves are kept."""
    now = now or timezone.now()
    # The backlog first: an attempt rolled up after the purge would bring its row back.
    kpis.roll_up_pushes()
    deleted, _ = PushRollup.objects.filter(start__lt=now - ROLLUP_KEPT).delete()
    return deleted
