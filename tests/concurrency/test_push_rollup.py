"""The push rollup under writers and roll-ups at once: every attempt recorded is counted
once.

Threads with their own connections record batches of attempts for the same channels in the
same minutes, each batch one channel's in a transaction of its own, as the push flow
records them, while other threads roll the backlog up, as the beat task and the console
do: a roll-up must neither miss an attempt committed after it started nor count one twice.
"""

from __future__ import annotations

import datetime as dt
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection, transaction
from django.db.models import Sum
from django.utils import timezone

from channels import kpis
from channels.models import PushAttempt, PushRollup, PushRollupBacklog
from tests import factories

WORKERS = 8
BATCHES = 15
BATCH = 20
ROLLERS = 2

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


def _roll_up_until(done: threading.Event) -> int:
    rolled = 0
    try:
        while not done.is_set():
            kpis.roll_up_pushes()
            rolled += 1
    finally:
        connection.close()
    return rolled


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

    recorded = threading.Event()
    with ThreadPoolExecutor(WORKERS + ROLLERS) as pool:
        rollers = [pool.submit(_roll_up_until, recorded) for _ in range(ROLLERS)]
        for future in [
            pool.submit(_record_batches, worker, listing_ids, now) for worker in range(WORKERS)
        ]:
            future.result()
        recorded.set()
        roll_ups = sum(roller.result() for roller in rollers)
    assert roll_ups > ROLLERS  # the roll-ups ran while the attempts were being recorded
    kpis.roll_up_pushes()  # what the last of them had not seen committed yet
    assert not PushRollupBacklog.objects.exists()

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
