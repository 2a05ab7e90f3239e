"""Waking the pipeline's workers, by task name.

Services and pipeline stages schedule work through these helpers; the tasks in
``channels.tasks`` import the services they call, so a stage that imported the tasks back
would close an import cycle. Celery's ``send_task`` needs only the name and the queue.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from concurrent import futures

from django.conf import settings

from channels.pipeline import ratelimit
from nventory.celery import app

PUSH_CHANNEL_TASK = "channels.push_channel"
PROCESS_NEW_WEBHOOKS_TASK = "channels.process_new_webhooks"
PROCESS_WEBHOOK_TASK = "channels.process_webhook"
SETTLE_SUBMISSIONS_TASK = "channels.settle_submissions"
POLL_ORDERS_TASK = "channels.poll_orders"
READ_MARKETPLACE_STOCK_TASK = "channels.read_marketplace_stock"
WEBHOOKS_QUEUE = "webhooks"

logger = logging.getLogger(__name__)


def push_queue_name(channel_id: int) -> str:
    # One queue per channel, so a slow channel never holds up a fast one.
    return f"push.{channel_id}"


def enqueue_push(*, channel_id: int, countdown: float | None = None) -> None:
    """Wake the channel's pusher: soon (at most one wake queued at a time), or later.

    "Soon" is after the coalescing window, so that the changes of that window go out as
    one batch: at 50 orders/s a run per order per channel would cost more than the pushes.
    """
    if countdown is None or countdown <= 0:
        wake_pushers(channel_ids=[channel_id])
        return
    _queue_push_run(channel_id, countdown)


def wake_pushers(*, channel_ids: Iterable[int]) -> None:
    """Queue a run for each channel that has none queued (one Redis round trip for all).

    Waits at most ``WAKE_UP_WAIT_S`` for Redis and the broker (``_without_hanging``).
    """
    if ids := sorted(set(channel_ids)):
        _without_hanging(lambda: _wake_pushers(ids))


def _wake_pushers(channel_ids: list[int]) -> None:
    for channel_id in ratelimit.claim_wakes(channel_ids=channel_ids):
        _queue_push_run(channel_id, settings.PUSH_COALESCE_WINDOW_S)


def _queue_push_run(channel_id: int, countdown: float) -> None:
    app.send_task(
        PUSH_CHANNEL_TASK,
        kwargs={"channel_id": channel_id},
        queue=push_queue_name(channel_id),
        countdown=countdown,
    )


def enqueue_settlement(*, channel_id: int, countdown: float) -> None:
    """Ask about the channel's asynchronous writes after ``countdown`` seconds.

    On the channel's push queue: settling is part of its pushing, and waits behind it.
    """
    app.send_task(
        SETTLE_SUBMISSIONS_TASK,
        kwargs={"channel_id": channel_id},
        queue=push_queue_name(channel_id),
        countdown=countdown,
    )


def enqueue_order_poll(*, channel_id: int) -> None:
    """Read the channel's recent orders soon.

    On the default queue, not the webhook intake's: a busy channel's poll reads thousands
    of orders, and the intake's latency must not wait behind it.
    """
    app.send_task(POLL_ORDERS_TASK, kwargs={"channel_id": channel_id})


def enqueue_marketplace_stock_read(*, channel_id: int) -> None:
    """Read the stock the channel holds itself soon (on the default queue, as order polls)."""
    app.send_task(READ_MARKETPLACE_STOCK_TASK, kwargs={"channel_id": channel_id})


def enqueue_webhook_processing(receipt_id: int) -> None:
    """A new receipt is stored: wake an ingest run, unless one is queued already.

    The run takes every receipt not tried yet, this one included; a receipt that has been
    tried (failed, or left behind) goes through ``retry_webhook_processing`` instead.
    Waits at most ``WAKE_UP_WAIT_S`` for Redis and the broker (``_without_hanging``), and
    not at all when a wake-up of the ingest is queued in this process and not started: it
    runs after this receipt's commit, so the run it wakes (or the run it finds working,
    which looks once more before it ends) takes this receipt too. At 500 webhooks/s the
    requests no longer queue behind each other's wake-ups. Nor does it ask Redis while
    the flag it last saw taken is trusted (``ratelimit.INGEST_FLAG_TRUSTED_S``).
    """
    if time.monotonic() < _ingest_flag_trusted_until:
        return  # a run holds the flag and looks again after it gives it back
    if (wake := _unless_queued("ingest", _wake_ingest)) is not None:
        _without_hanging(wake)


# Until when this process trusts the ingest wake flag it last saw taken (monotonic).
_ingest_flag_trusted_until = 0.0


def _wake_ingest() -> None:
    global _ingest_flag_trusted_until
    asked_at = time.monotonic()
    claimed = ratelimit.claim_ingest_wake()
    # Taken now, by this call or by a run: ratelimit.INGEST_FLAG_TRUSTED_S.
    _ingest_flag_trusted_until = asked_at + ratelimit.INGEST_FLAG_TRUSTED_S
    if claimed:
        app.send_task(PROCESS_NEW_WEBHOOKS_TASK, queue=WEBHOOKS_QUEUE)


def retry_webhook_processing(receipt_id: int, countdown: float = 0.0) -> None:
    """Process one receipt in a task of its own, with the task's retries."""
    app.send_task(
        PROCESS_WEBHOOK_TASK,
        kwargs={"receipt_id": receipt_id},
        queue=WEBHOOKS_QUEUE,
        countdown=countdown,
    )


# --- wake-ups that never hold their caller ----------------------------------------------
# A wake-up is a signal, never the record: the receipt or the owed row is committed, and
# the sweeps find it if the signal is lost. So a Redis (or broker) that accepts connections
# and does not answer must not hold the webhook's acknowledgement or the API write that
# owes it: the wake-up runs on a thread of its own, its caller waits for it at most
# WAKE_UP_WAIT_S, and after a wake-up that outlasted that, callers do not wait at all for
# WAKE_UP_BACKOFF_S (the calls still go out, and complete when Redis answers again).
_waker_lock = threading.Lock()
_waker: tuple[int, futures.ThreadPoolExecutor, set[str]] | None = None
_impatient_until = 0.0


def _executor() -> futures.ThreadPoolExecutor:
    return _this_process_waker()[1]


def _this_process_waker() -> tuple[int, futures.ThreadPoolExecutor, set[str]]:
    """The wake-up thread pool and the names of the wake-ups queued on it, not started."""
    global _waker
    with _waker_lock:
        if _waker is None or _waker[0] != os.getpid():  # a forked process starts its own
            _waker = (
                os.getpid(),
                futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="nventory-wake"),
                set(),
            )
        return _waker


def _unless_queued(name: str, wake: Callable[[], None]) -> Callable[[], None] | None:
    """``wake``, marked queued under ``name`` until it starts; None when one is queued."""
    queued = _this_process_waker()[2]
    with _waker_lock:
        if name in queued:
            return None
        queued.add(name)

    def started_wake() -> None:
        with _waker_lock:
            queued.discard(name)
        wake()

    return started_wake


def _without_hanging(wake: Callable[[], None]) -> None:
    """Run a wake-up, waiting ``WAKE_UP_WAIT_S`` at most; a failure is logged, never
    raised (the sweeps are the net)."""
    global _impatient_until
    future = _executor().submit(wake)
    future.add_done_callback(_log_failure)
    if time.monotonic() < _impatient_until:
        return
    try:
        future.result(timeout=settings.WAKE_UP_WAIT_S)
    except futures.TimeoutError:
        _impatient_until = time.monotonic() + settings.WAKE_UP_BACKOFF_S
        logger.warning(
            "a wake-up took over %.2f s (Redis or the broker hangs): not waiting for "
            "wake-ups for %.0f s",
            settings.WAKE_UP_WAIT_S,
            settings.WAKE_UP_BACKOFF_S,
        )
    except Exception:  # noqa: S110  logged by _log_failure
        pass


def _log_failure(future: futures.Future[None]) -> None:
    if (error := future.exception()) is not None:
        logger.warning("wake-up failed (the sweeps will find the work): %r", error)
