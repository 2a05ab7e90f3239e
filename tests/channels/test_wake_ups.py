"""Wake-ups of the ingest: one queued in a process and not started yet takes along the
wake-ups of the receipts committed meanwhile; once it has started, the next is queued."""

from __future__ import annotations

import threading
import time
from unittest import mock

import pytest

from channels.pipeline import enqueue


@pytest.fixture(autouse=True)
def _flag_not_trusted():
    enqueue._ingest_flag_trusted_until = 0.0
    yield
    enqueue._ingest_flag_trusted_until = 0.0


def _hold_the_wakers() -> threading.Event:
    """Keep both wake-up threads busy until the returned event is set."""
    release = threading.Event()
    both_busy = threading.Barrier(3)

    def busy() -> None:
        both_busy.wait()
        release.wait(10)

    for _ in range(2):
        enqueue._executor().submit(busy)
    both_busy.wait(10)
    return release


def _drain() -> None:
    """Wait for every wake-up queued so far to have run."""
    done = [enqueue._executor().submit(lambda: None) for _ in range(2)]
    for future in done:
        future.result(10)


def test_wake_ups_queued_behind_a_busy_waker_go_out_once(settings):
    settings.WAKE_UP_WAIT_S = 0.01
    release = _hold_the_wakers()
    woken = threading.Event()
    with mock.patch.object(enqueue, "_wake_ingest", side_effect=woken.set) as wake_ingest:
        for receipt_id in range(5):
            enqueue.enqueue_webhook_processing(receipt_id)
        assert wake_ingest.call_count == 0  # queued, not started
        release.set()
        assert woken.wait(10)
        _drain()
        _drain()
    assert wake_ingest.call_count == 1
    enqueue._impatient_until = 0.0


def test_a_receipt_after_the_wake_up_started_queues_another(settings):
    started = threading.Event()
    finish = threading.Event()
    second = threading.Event()
    calls: list[int] = []

    def slow_wake() -> None:
        calls.append(1)
        if len(calls) == 2:
            second.set()
        started.set()
        finish.wait(10)

    with mock.patch.object(enqueue, "_wake_ingest", side_effect=slow_wake):
        settings.WAKE_UP_WAIT_S = 0.01
        enqueue.enqueue_webhook_processing(1)
        assert started.wait(10)
        enqueue.enqueue_webhook_processing(2)  # the first has started: this one is queued
        finish.set()
        assert second.wait(10)
    assert len(calls) == 2
    enqueue._impatient_until = 0.0


def test_after_seeing_the_flag_taken_a_process_skips_redis_for_a_moment(settings):
    settings.WAKE_UP_WAIT_S = 1
    with (
        mock.patch.object(enqueue.ratelimit, "claim_ingest_wake", return_value=False) as claim,
        mock.patch.object(enqueue.app, "send_task") as send_task,
    ):
        enqueue.enqueue_webhook_processing(1)
        _drain()
        assert claim.call_count == 1
        enqueue.enqueue_webhook_processing(2)  # the flag seen taken is trusted
        _drain()
        assert claim.call_count == 1
        enqueue._ingest_flag_trusted_until = time.monotonic() - 0.001  # trusted no more
        enqueue.enqueue_webhook_processing(3)
        _drain()
        assert claim.call_count == 2
    send_task.assert_not_called()  # a run holds the flag: no task of our own
