"""Waking the pipeline's workers, by task name.

Services and pipeline stages schedule work through these helpers; the tasks in
``channels.tasks`` import the services they call, so a stage that imported the tasks back
would close an import cycle. Celery's ``send_task`` needs only the name and the queue.
"""

from __future__ import annotations

from collections.abc import Iterable

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
    """Queue a run for each channel that has none queued (one Redis round trip for all)."""
    if ids := sorted(set(channel_ids)):
        for channel_id in ratelimit.claim_wakes(channel_ids=ids):
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
    """
    if ratelimit.claim_ingest_wake():
        app.send_task(PROCESS_NEW_WEBHOOKS_TASK, queue=WEBHOOKS_QUEUE)


def retry_webhook_processing(receipt_id: int, countdown: float = 0.0) -> None:
    """Process one receipt in a task of its own, with the task's retries."""
    app.send_task(
        PROCESS_WEBHOOK_TASK,
        kwargs={"receipt_id": receipt_id},
        queue=WEBHOOKS_QUEUE,
        countdown=countdown,
    )
