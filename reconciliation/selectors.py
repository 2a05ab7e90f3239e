"""Reads the dashboard, the report page and the API share about reconciliation."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from typing import NamedTuple, TypeAlias

from django.db.models import QuerySet

from bundles.selectors import available_by_sku
from channels.buffers import BufferRuleValues, listed_quantity
from channels.models import BufferRule, Channel
from channels.rules import ScopedRules
from channels.selectors import buffer_rule_values, scoped_rule
from reconciliation.models import DailyReport, Discrepancy, ReconciliationRun


class ListingRow(NamedTuple):
    """What a reconciliation run needs of a listing (no model instance: 100,000 of them)."""

    pk: int
    sku_id: int | None
    external_id: str
    extra_identifiers: dict[str, object]


def listing_rows(*, channel: Channel) -> list[ListingRow]:
    """The channel's active listings it is pushed, in primary-key order.

    A listing whose stock the channel holds itself (``fulfilled_by_channel``: Amazon FBA) is
    never pushed, so there is no figure of nventory's to compare it with: its count is read
    into the marketplace location instead.
    """
    return [
        ListingRow(*row)
        for row in channel.listings.filter(is_active=True, fulfilled_by_channel=False)
        .order_by("pk")
        .values_list("pk", "sku_id", "external_id", "extra_identifiers")
    ]


# A channel's buffer rules by scope, read once per run. A rule edited during the run owes
# its listings a push, so they are skipped as in flight rather than judged against the rule
# read here.
ChannelRules: TypeAlias = ScopedRules[BufferRuleValues]


def channel_rules(*, channel: Channel) -> ChannelRules:
    """Every buffer rule of the channel, by scope (precedence: ``channels.rules``)."""
    return ScopedRules.of(
        scoped_rule(rule, values)
        for rule in BufferRule.objects.filter(channel=channel)
        if (values := buffer_rule_values(rule)) is not None
    )


def expected_listed_quantities(
    *,
    channel: Channel,
    location_ids: Sequence[int],
    rules: ChannelRules,
    rows: Sequence[ListingRow],
    now: dt.datetime,
    per_location: bool = False,
) -> dict[int, int]:
    """``channels.selectors.listed_quantities`` for many rows in a few queries.

    The arithmetic is ``channels.buffers.listed_quantity``'s, worked out once per distinct
    (ATS, rule): a catalog has far fewer of those than listings. ``per_location`` (a
    channel that holds a figure per location, as the push sends it): the sum of each
    location's figure worked out on its own.
    """
    if per_location:
        totals = dict.fromkeys((row.pk for row in rows), 0)
        for location_id in location_ids:
            at_location = expected_listed_quantities(
                channel=channel, location_ids=[location_id], rules=rules, rows=rows, now=now
            )
            for pk, figure in at_location.items():
                totals[pk] += figure
        return totals
    ats_by_sku = available_by_sku(
        sku_ids=[row.sku_id for row in rows if row.sku_id is not None],
        location_ids=location_ids,
    )
    worked_out: dict[tuple[int, BufferRuleValues | None], int] = {}
    quantities: dict[int, int] = {}
    for row in rows:
        if row.sku_id is None:
            quantities[row.pk] = 0  # a mapping gap lists nothing
            continue
        rule = rules.effective(listing_id=row.pk, sku_id=row.sku_id)
        velocity_units = rules.velocity_units(sku_id=row.sku_id)
        if velocity_units:
            rule = dataclasses.replace(rule or BufferRuleValues(), velocity_units=velocity_units)
        key = (ats_by_sku.get(row.sku_id, 0), rule)
        listed = worked_out.get(key)
        if listed is None:
            listed = worked_out[key] = listed_quantity(
                ats=key[0],
                rule=key[1],
                out_of_stock_threshold=channel.out_of_stock_threshold,
                now=now,
            )
        quantities[row.pk] = listed
    return quantities


def latest_runs(*, kind: str | None = None, limit: int = 20) -> QuerySet[ReconciliationRun]:
    runs = ReconciliationRun.objects.select_related("channel").order_by("-started_at", "-pk")
    if kind is not None:
        runs = runs.filter(kind=kind)
    return runs[:limit]


def latest_run_per_channel(*, kind: str = ReconciliationRun.Kind.POLL) -> list[ReconciliationRun]:
    """Each channel's most recent run of the kind (running ones included, for progress)."""
    return list(
        ReconciliationRun.objects.filter(kind=kind)
        .select_related("channel")
        .order_by("channel_id", "-started_at", "-pk")
        .distinct("channel_id")
    )


def channels_in_drift_alert() -> list[ReconciliationRun]:
    """Channels whose latest finished comparison went over the drift threshold."""
    latest = (
        ReconciliationRun.objects.filter(
            kind__in=[ReconciliationRun.Kind.POLL, ReconciliationRun.Kind.SHADOW_COMPARE],
            status=ReconciliationRun.Status.DONE,
        )
        .order_by("channel_id", "-started_at", "-pk")
        .distinct("channel_id")
        .values("pk")
    )
    return list(
        ReconciliationRun.objects.filter(pk__in=latest, alerted_at__isnull=False)
        .select_related("channel")
        .order_by("-drift_percent")
    )


def discrepancy_history(*, listing_id: int, limit: int = 20) -> QuerySet[Discrepancy]:
    """A listing's discrepancies, newest first: the history behind a repeated flag."""
    return (
        Discrepancy.objects.filter(listing_id=listing_id)
        .select_related("run", "channel")
        .order_by("-detected_at", "-pk")[:limit]
    )


def repeated_offenders(*, since: dt.datetime, limit: int = 50) -> QuerySet[Discrepancy]:
    return (
        Discrepancy.objects.filter(repeated=True, detected_at__gte=since)
        .select_related("channel", "listing", "sku")
        .order_by("-consecutive_runs", "-detected_at")[:limit]
    )


def report_for(*, date: dt.date | None = None) -> DailyReport | None:
    """The report of a date, else the newest one."""
    reports = DailyReport.objects.order_by("-date")
    if date is not None:
        reports = reports.filter(date=date)
    return reports.first()


def recent_reports(*, limit: int = 14) -> QuerySet[DailyReport]:
    return DailyReport.objects.order_by("-date").only("date")[:limit]
