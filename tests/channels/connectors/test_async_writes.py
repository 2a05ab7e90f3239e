"""Asynchronous writes through the pipeline: submit, wait as pending, settle."""

from __future__ import annotations

import time

import pytest

from channels.models import (
    Channel,
    DeadLetter,
    ListingSyncState,
    PendingPush,
    PushAttempt,
    SubmittedWrite,
)
from channels.pipeline import push, ratelimit
from reconciliation import services as reconciliation
from reconciliation.models import Discrepancy
from tests import factories
from tests.channels.connectors.reference_platform import PLATFORM


@pytest.mark.django_db
def test_a_feed_waits_as_submitted_is_no_drift_meanwhile_and_settles_once_applied(
    reference_platform,
):
    """Accepted items wait as submitted writes: owed no more, not drift to reconciliation,
    not yet what the channel is expected to hold. Once the platform applies the feed, they
    settle as applied, and an item the feed refused becomes a dead letter."""
    location = factories.make_location()
    channel = factories.make_channel(
        locations=[location],
        platform=PLATFORM,
        mode=Channel.Mode.ACTIVE,
        api_base_url=reference_platform.url,
        rate_limit_per_s=1000,
    )
    ratelimit.reset(channel_id=channel.pk)
    listings = []
    for code in ("A-1", "A-2", "NOT-THERE"):
        sku = factories.make_sku()
        factories.stock(sku, location, 10)
        listings.append(factories.make_listing(channel=channel, sku=sku, external_id=code))
    known, _, unknown = listings

    deadline = time.monotonic() + 10
    while PendingPush.objects.filter(channel=channel).exists():
        assert time.monotonic() < deadline
        push.push_owed(channel_id=channel.pk)

    assert SubmittedWrite.objects.filter(channel=channel).count() == 3
    assert PushAttempt.objects.filter(channel=channel, outcome="submitted").count() == 3
    assert not ListingSyncState.objects.filter(listing=known, last_pushed_quantity=10).exists()
    run = reconciliation.reconcile_channel(channel_id=channel.pk)
    assert run is not None and run.status == "done", run and run.error
    assert not Discrepancy.objects.filter(run=run).exists()
    assert push.settle_submissions(channel_id=channel.pk) == 0

    reference_platform.process()
    assert push.settle_submissions(channel_id=channel.pk) == 3

    assert not SubmittedWrite.objects.filter(channel=channel).exists()
    state = ListingSyncState.objects.get(listing=known)
    assert state.last_pushed_quantity == state.expected_channel_quantity == 10
    applied = PushAttempt.objects.get(listing=known, outcome="applied")
    assert applied.latency_ms is not None and applied.latency_ms >= 0
    dead = DeadLetter.objects.get(listing=unknown)
    assert "Unknown SKU" in dead.attempts[0]["error"]
    run = reconciliation.reconcile_channel(channel_id=channel.pk)
    assert run is not None
    assert list(Discrepancy.objects.filter(run=run).values_list("listing_id", flat=True)) == [
        unknown.pk
    ]
