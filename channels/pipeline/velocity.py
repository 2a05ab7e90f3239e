"""The velocity guard: a SKU selling faster than a channel's limit is held back more there.

A viral spike (a creator's video selling a month of stock in an hour on TikTok Shop) is
exactly when a channel's order events lag, so the channel can sell units the master no
longer has before their orders reach nventory. When a SKU's sales on a channel over the last
``VELOCITY_GUARD_WINDOW_S`` exceed the channel's limit (``VELOCITY_GUARD_UNITS_PER_MIN``, or
its ``platform_settings["velocity_units_per_min"]``), the guard raises that channel's buffer
for the SKU (``BufferRule.velocity_units``: ``channels.buffers.velocity_rise``), and the
SKU's listings on the channel owe a push. ``lower_spent_rises`` (scheduled) lowers it once
the rate is back under the limit, at least ``VELOCITY_GUARD_HOLD_S`` after the rise.

Each rise and fall is a save of the SKU's buffer rule with its reason, so the rule's history
in the admin shows when and why. A SKU without a rule of its own on the channel gets one
that holds the rise only (``velocity_only``: precedence passes over it, ``channels.rules``)
and goes when the rise falls back.

Sales are the ledger's: units committed by the channel's orders (``source`` channel,
``actor`` the channel's slug), through the (SKU, time) index; a bundle's sale is its
components'.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Iterable

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from channels.buffers import velocity_rise
from channels.models import BufferRule, Channel, Listing
from channels.pipeline import outbox
from inventory.models import EventKind, EventSource

logger = logging.getLogger(__name__)

VELOCITY_LIMIT_SETTING = "velocity_units_per_min"


@dataclasses.dataclass(frozen=True)
class GuardSettings:
    """The guard's settings for one channel."""

    units_per_min: float
    window_s: float
    cover_s: float
    hold_s: float

    @property
    def enabled(self) -> bool:
        return self.units_per_min > 0 and self.window_s > 0 and self.cover_s > 0

    @property
    def units_allowed(self) -> float:
        """Units the SKU may sell in one window before the guard rises."""
        return self.units_per_min * self.window_s / 60


def guard_settings(*, channel: Channel) -> GuardSettings:
    """The channel's limit (its ``platform_settings``, else the project's) and the rest."""
    own = (channel.platform_settings or {}).get(VELOCITY_LIMIT_SETTING)
    return GuardSettings(
        units_per_min=float(settings.VELOCITY_GUARD_UNITS_PER_MIN if own is None else own),
        window_s=float(settings.VELOCITY_GUARD_WINDOW_S),
        cover_s=float(settings.VELOCITY_GUARD_COVER_S),
        hold_s=float(settings.VELOCITY_GUARD_HOLD_S),
    )


@dataclasses.dataclass(frozen=True)
class Sales:
    """A SKU's sales on a channel in a window: units, and when the first of them was."""

    units: int
    first_at: dt.datetime | None

    def span_s(self, *, now: dt.datetime, window_s: float) -> float:
        """The seconds the units sold over, for their rate: a spike that began inside the
        window is measured from its first sale, not diluted over the whole window (a tenth
        of the window at least, so a handful of sales at once is not an infinite rate)."""
        if self.first_at is None:
            return window_s
        return min(window_s, max((now - self.first_at).total_seconds(), window_s / 10))


# Raw SQL: it runs after every sale, and building it through the ORM cost more than
# running it. Through the ledger's (SKU, time) index.
_SALES_SQL = """
SELECT sku_id, sum(delta_committed), min(created_at)
  FROM inventory_inventoryevent
 WHERE sku_id = ANY(%(sku_ids)s) AND created_at >= %(since)s
   AND kind = %(kind)s AND source = %(source)s AND actor = %(actor)s
 GROUP BY sku_id
"""


def sales_by_sku(
    *, channel: Channel, sku_ids: Iterable[int], since: dt.datetime
) -> dict[int, Sales]:
    """Units of each SKU the channel's orders committed since then (cancellations are not
    taken off: a spike of orders is a spike, however many are cancelled later)."""
    wanted = sorted(set(sku_ids))
    with connection.cursor() as cursor:
        cursor.execute(
            _SALES_SQL,
            {
                "sku_ids": wanted,
                "since": since,
                "kind": str(EventKind.ORDER_COMMITTED),
                "source": str(EventSource.CHANNEL),
                "actor": channel.slug,
            },
        )
        found = {
            sku_id: Sales(units=int(units or 0), first_at=first_at)
            for sku_id, units, first_at in cursor.fetchall()
        }
    return {sku_id: found.get(sku_id, Sales(units=0, first_at=None)) for sku_id in wanted}


def units_sold(*, channel: Channel, sku_id: int, since: dt.datetime) -> Sales:
    """``sales_by_sku`` for one SKU."""
    return sales_by_sku(channel=channel, sku_ids=[sku_id], since=since)[sku_id]


def observe_sales(*, channel: Channel, sku_ids: Iterable[int]) -> list[int]:
    """Raise the channel's buffer for each of these SKUs (just sold there) that sells faster
    than the channel's limit; the ids of the rules raised.

    Runs outside any transaction, after the sale committed: each rise is a transaction of its
    own that locks the SKU's rule and then owes its listings a push, the lock order of every
    buffer edit (a rise inside the sale's transaction would hold outbox rows while waiting
    for the rule). Safe to run twice and at the same time: a rise never goes down here.

    Cheap on the path of every sale: one statement for the SKUs' sales, and during a spike
    one more for the rises they hold; the rule is locked only when the rise would change.
    """
    guard = guard_settings(channel=channel)
    if not guard.enabled:
        return []
    now = timezone.now()
    since = now - dt.timedelta(seconds=guard.window_s)
    sales = sales_by_sku(channel=channel, sku_ids=sku_ids, since=since)
    spiking = {sku_id: sold for sku_id, sold in sales.items() if sold.units > guard.units_allowed}
    if not spiking:
        return []
    held = dict(
        BufferRule.objects.filter(
            channel_id=channel.pk, sku_id__in=spiking, listing__isnull=True
        ).values_list("sku_id", "velocity_units")
    )
    raised = []
    for sku_id, sold in sorted(spiking.items()):
        current = held.get(sku_id, 0)
        span_s = sold.span_s(now=now, window_s=guard.window_s)
        if (
            velocity_rise(
                units_sold=sold.units, window_s=span_s, cover_s=guard.cover_s, current=current
            )
            == current
        ):
            continue
        rule_id = _raise(channel=channel, sku_id=sku_id, sold=sold, guard=guard, now=now)
        if rule_id is not None:
            raised.append(rule_id)
    return raised


@transaction.atomic
def _raise(
    *, channel: Channel, sku_id: int, sold: Sales, guard: GuardSettings, now: dt.datetime
) -> int | None:
    """Hold back what ``sold`` calls for, under the rule's lock; the rule's id if it rose."""
    rule = _lock_sku_rule(channel_id=channel.pk, sku_id=sku_id)
    new = rule is None
    if rule is None:
        rule = BufferRule(channel_id=channel.pk, sku_id=sku_id, velocity_only=True)
    current = rule.velocity_units
    span_s = sold.span_s(now=now, window_s=guard.window_s)
    rise = velocity_rise(
        units_sold=sold.units, window_s=span_s, cover_s=guard.cover_s, current=current
    )
    if rise == current:
        return None
    rule.velocity_units = rise
    rule.velocity_until = now + dt.timedelta(seconds=guard.hold_s)
    reason = _reason(
        f"{sold.units} units sold in {span_s:.0f} s, limit {guard.units_allowed:g} in "
        f"{guard.window_s:g} s: holds back {rise} (was {current})"
    )
    rule._change_reason = reason  # type: ignore[attr-defined]
    if new:
        try:
            with transaction.atomic():
                rule.save()
        except IntegrityError:
            # Another worker created the SKU's rule meanwhile: rise on it, under its lock.
            return _raise(channel=channel, sku_id=sku_id, sold=sold, guard=guard, now=now)
    else:
        rule.save(update_fields=["velocity_units", "velocity_until", "updated_at"])
    logger.warning("%s (SKU %s on %s)", reason, sku_id, channel.slug)
    outbox.mark_listings_owed(listing_ids=_sku_listings(channel_id=channel.pk, sku_id=sku_id))
    return rule.pk


# simple-history's change reason is a varchar(100).
_MAX_REASON = 100


def _reason(text: str) -> str:
    """A history row's reason: what the guard measured and did (the row names the rule)."""
    return f"Velocity guard: {text}"[:_MAX_REASON]


def _lock_sku_rule(*, channel_id: int, sku_id: int) -> BufferRule | None:
    return (
        BufferRule.objects.select_for_update()
        .filter(channel_id=channel_id, sku_id=sku_id, listing__isnull=True)
        .first()
    )


def _sku_listings(*, channel_id: int, sku_id: int) -> list[int]:
    return list(
        Listing.objects.filter(channel_id=channel_id, sku_id=sku_id, is_active=True).values_list(
            "pk", flat=True
        )
    )


def lower_spent_rises(*, now: dt.datetime | None = None) -> int:
    """Lower every rise held past its time whose SKU now sells within its channel's limit;
    how many fell back. One still needed is held another ``VELOCITY_GUARD_HOLD_S``.

    Each in a transaction of its own, under the rule's lock; the SKU's listings on the
    channel owe a push. A rule that held the rise only is deleted (its history keeps why).
    """
    now = now or timezone.now()
    due = BufferRule.objects.filter(velocity_units__gt=0, velocity_until__lte=now).values_list(
        "pk", flat=True
    )
    return sum(_lower(rule_id=rule_id, now=now) for rule_id in list(due))


@transaction.atomic
def _lower(*, rule_id: int, now: dt.datetime) -> bool:
    rule = (
        BufferRule.objects.select_for_update()
        .select_related("channel")
        .filter(pk=rule_id, velocity_units__gt=0, velocity_until__lte=now)
        .first()
    )
    if rule is None or rule.sku_id is None:
        return False
    guard = guard_settings(channel=rule.channel)
    sold = units_sold(
        channel=rule.channel, sku_id=rule.sku_id, since=now - dt.timedelta(seconds=guard.window_s)
    )
    if guard.enabled and sold.units > guard.units_allowed:
        # Still spiking: held longer. No history row: the rule does not change.
        BufferRule.objects.filter(pk=rule.pk).update(
            velocity_until=now + dt.timedelta(seconds=guard.hold_s)
        )
        return False
    rule._change_reason = _reason(  # type: ignore[attr-defined]
        f"{sold.units} units sold in {guard.window_s:g} s, limit {guard.units_allowed:g}: "
        f"the rise of {rule.velocity_units} falls back"
    )
    listing_ids = _sku_listings(channel_id=rule.channel_id, sku_id=rule.sku_id)
    if rule.velocity_only:
        rule.delete()
    else:
        rule.velocity_units = 0
        rule.velocity_until = None
        rule.save(update_fields=["velocity_units", "velocity_until", "updated_at"])
    outbox.mark_listings_owed(listing_ids=listing_ids)
    return True
