"""The push rollup under writers at once: every attempt recorded is counted once.

Threads with their own connections record batches of attempts for the same channels in the
same minutes, each batch one channel's in a transaction of its own, as the push flow
records them; the rollup's upserts on the same rows must not lose an update.
"""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection, transaction
from django.db.models import Sum
from django.utils import timezone

from channels import kpis
from channels.models import PushAttempt, PushRollup
from tests import factories

WORKERS = 8
BATCHES = 15
BATCH = 20

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def _record_batches(worker: int, listing_ids: list[tuple[int, int]], now: dt.datetime) -> None:
    try:
        for batch in range(BATCHES):
            # The channels in opposite orders from one worker to the next.
            order = listing_ids if (worker + batch) % 2 else list(reversed(listing_ids))
            for channel_id, listing_id in order:
                with transaction.atomic():
                    PushAttempt.objects.bulk_create(
                        PushAttempt(
                            channel_id=channel_id,
                            listing_id=listing_id,
                            target_quantity=1,
                            outcome="failed" if number == 0 else "applied",
                            change_at=now - dt.timedelta(seconds=2),
                            sent_at=now,
                            acked_at=now,
                            latency_ms=None if number == 0 else 2_000.0,
                        )
                        for number in range(BATCH)
                    )
    finally:
        connection.close()


def test_attempts_recorded_at_once_are_each_counted_once(sku) -> None:
    """8 workers, 15 batches of 20 attempts each on each of two channels, in one minute:
    each channel's minute and quarter rows count 2,400 attempts, 120 of them failed, and
    the latency histogram holds the 2,280 applied ones."""
    listings = [
        factories.make_listing(channel=factories.make_channel(name=f"Busy {n}"), sku=sku)
        for n in range(2)
    ]
    listing_ids = [(listing.channel_id, listing.pk) for listing in listings]
    now = timezone.now().replace(second=20, microsecond=0)

    with ThreadPoolExecutor(WORKERS) as pool:
        for future in [
            pool.submit(_record_batches, worker, listing_ids, now) for worker in range(WORKERS)
        ]:
            future.result()

    attempts = WORKERS * BATCHES * BATCH
    failed = WORKERS * BATCHES
    for channel_id, _ in listing_ids:
        for span_s in (PushRollup.MINUTE_S, PushRollup.QUARTER_S):
            row = PushRollup.objects.get(channel_id=channel_id, span_s=span_s)
            assert (row.sends, row.errors, row.failed_sends, row.pushes) == (
                attempts,
                failed,
                failed,
                attempts,
            )
            assert sum(row.applied_ms.values()) == attempts - failed
            assert sum(row.acknowledged_ms.values()) == attempts - failed
    assert PushRollup.objects.aggregate(sends=Sum("sends"))["sends"] == 2 * 2 * attempts
    errors = kpis.error_rates(
        start=now - dt.timedelta(minutes=5),
        end=now + dt.timedelta(minutes=1),
        channel_ids=[channel_id for channel_id, _ in listing_ids],
    )
    assert (errors[None].sent, errors[None].errors) == (2 * attempts, 2 * failed)
