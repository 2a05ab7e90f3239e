"""Reconciliation's figures on the scorecard, against known runs."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from channels import kpis
from reconciliation import scorecard
from reconciliation.models import ReconciliationRun
from tests import factories

pytestmark = pytest.mark.django_db


def _poll(channel, *, checked, skipped, found, hours_ago, status="done"):
    run = ReconciliationRun.objects.create(
        channel=channel,
        kind="poll",
        status=status,
        channel_mode=channel.mode,
        listings_total=checked,
        listings_checked=checked,
        skipped_in_flight=skipped,
        found=found,
        drift_percent=round(100 * found / (checked - skipped), 4),
        finished_at=timezone.now() - dt.timedelta(hours=hours_ago),
    )
    ReconciliationRun.objects.filter(pk=run.pk).update(
        started_at=timezone.now() - dt.timedelta(hours=hours_ago, minutes=1)
    )
    return run


def test_accuracy_is_read_from_each_channels_last_finished_poll() -> None:
    """First: an old poll with 50 off, then 1000 checked, 10 in flight, 6 off: 984/990
    (99.39 %, amber: under the 99.5 % target). Second: 10 off of 200 (95 %, red: drift
    over 2 %). A running poll does not count. Overall: 16 off of 1190."""
    first = factories.make_channel(name="First")
    second = factories.make_channel(name="Second")
    factories.make_channel(name="Never polled")
    _poll(first, checked=1000, skipped=0, found=50, hours_ago=30)
    _poll(first, checked=1000, skipped=10, found=6, hours_ago=2)
    _poll(second, checked=200, skipped=0, found=10, hours_ago=1)
    _poll(second, checked=200, skipped=0, found=0, hours_ago=0, status="running")

    accuracy = scorecard.accuracy_at_last_poll(channel_ids=[first.pk, second.pk])

    assert accuracy[first.pk].share == round(984 / 990, 6)
    assert accuracy[first.pk].status == kpis.Status.AMBER
    assert accuracy[second.pk].share == 0.95
    assert accuracy[second.pk].drift_percent == 5.0
    assert accuracy[second.pk].status == kpis.Status.RED
    assert (accuracy[None].listings_judged, accuracy[None].discrepancies) == (1190, 16)

    card = scorecard.scorecard()
    by_name = {row.channel.name: row for row in card.rows if row.channel is not None}
    assert by_name["Never polled"].accuracy.share is None
    assert by_name["Never polled"].accuracy.status == kpis.Status.GREY
    assert by_name["Second"].worst_status == kpis.Status.RED


def test_drift_per_run_lists_finished_polls_oldest_first() -> None:
    channel = factories.make_channel()
    _poll(channel, checked=100, skipped=0, found=1, hours_ago=5)
    _poll(channel, checked=100, skipped=0, found=4, hours_ago=1)
    _poll(channel, checked=100, skipped=0, found=9, hours_ago=200)  # before the window

    now = timezone.now()
    series = scorecard.drift_by_run(start=now - dt.timedelta(days=7), end=now)

    assert [point.drift_percent for point in series[channel.pk]] == [1.0, 4.0]
