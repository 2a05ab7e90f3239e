"""Celery tasks of the sync pipeline: thin wrappers over ``channels.push`` and ingest."""

from __future__ import annotations

from celery import Task, shared_task
from django.conf import settings
from django.db import OperationalError

from channels import ratelimit


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


def wake_pushers(*, channel_ids: list[int]) -> None:
    """Queue a run for each channel that has none queued (one Redis round trip for all)."""
    for channel_id in ratelimit.claim_wakes(channel_ids=channel_ids):
        _queue_push_run(channel_id, settings.PUSH_COALESCE_WINDOW_S)


def _queue_push_run(channel_id: int, countdown: float) -> None:
    push_channel.apply_async(
        kwargs={"channel_id": channel_id}, queue=push_queue_name(channel_id), countdown=countdown
    )


@shared_task(name="channels.push_channel")
def push_channel(channel_id: int) -> None:
    from channels import push

    # From here on, a new change must queue a new run: this one may have claimed already.
    ratelimit.release_wake(channel_id=channel_id)
    push.push_owed(channel_id=channel_id)


def enqueue_webhook_processing(receipt_id: int) -> None:
    """A new receipt is stored: wake an ingest run, unless one is queued already.

    The run takes every receipt not tried yet, this one included; a receipt that has been
    tried (failed, or left behind) goes through ``retry_webhook_processing`` instead.
    """
    if ratelimit.claim_ingest_wake():
        process_new_webhooks.apply_async(queue="webhooks")


def retry_webhook_processing(receipt_id: int, countdown: float = 0.0) -> None:
    """Process one receipt in a task of its own, with the task's retries."""
    process_webhook.apply_async(
        kwargs={"receipt_id": receipt_id}, queue="webhooks", countdown=countdown
    )


@shared_task(name="channels.process_new_webhooks")
def process_new_webhooks() -> int:
    """Apply new receipts while they keep coming; let another run in when they pile up.

    The wake flag stays taken while this run works, so the receipts that come meanwhile
    cost no task of their own. It is given back when a batch comes full (a backlog: a
    second run may help) and when none is left; after giving it back the run looks once
    more, for a receipt whose wake found the flag still taken.
    """
    from channels import ingest

    tried = 0
    while True:
        batch = ingest.process_new_receipts(retry=retry_webhook_processing, batches=1)
        tried += batch
        if batch >= ingest.NEW_RECEIPTS_BATCH:
            ratelimit.release_ingest_wake()
        elif batch == 0:
            ratelimit.release_ingest_wake()
            last = ingest.process_new_receipts(retry=retry_webhook_processing)
            return tried + last


@shared_task(name="channels.process_webhook", bind=True, max_retries=4)
def process_webhook(self: Task, receipt_id: int) -> None:
    from channels import ingest

    try:
        ingest.process_receipt(receipt_id=receipt_id)
    except OperationalError as error:
        # A deadlock or a dropped connection: the receipt is marked failed and is safe to
        # apply again; retry soon rather than wait for the sweep.
        raise self.retry(exc=error, countdown=0.1 * 2**self.request.retries) from error
    except ingest.OrderNotYetCommitted as error:
        # Its order's webhook is probably still in the queue: give it a moment.
        raise self.retry(exc=error, countdown=2.0 * 2**self.request.retries) from error


# Scheduled every 10 s by migration 0004; overlapping runs only wake pushers twice.
@shared_task(name="channels.sweep_outbox")
def sweep_outbox() -> int:
    from channels import services

    return services.sweep_outbox()


# Scheduled every 30 s by migration 0006: receipts whose processing was lost or failed.
@shared_task(name="channels.sweep_webhook_receipts")
def sweep_webhook_receipts() -> int:
    from channels import ingest

    return ingest.sweep_unprocessed_receipts(older_than_s=30)
