"""Celery tasks of the sync pipeline: thin wrappers, one service call each.

Services schedule these by name (``channels.pipeline.enqueue``), never by importing them.
"""

from __future__ import annotations

import time

from celery import Task, shared_task
from django.db import OperationalError

from channels import alerts, kpis, services

# Imported for its worker hooks (consuming every channel's push queue), which must be in
# place in every worker process; tasks are what a worker loads.
from channels.pipeline import (
    enqueue,
    ingest,
    marketplace_stock,
    outbox,
    push,
    ratelimit,
    receive,
    velocity,
    workers,  # noqa: F401
)


@shared_task(name=enqueue.PUSH_CHANNEL_TASK)
def push_channel(channel_id: int) -> None:
    # From here on, a new change must queue a new run: this one may have claimed already.
    ratelimit.release_wake(channel_id=channel_id)
    push.push_owed(channel_id=channel_id)


@shared_task(name=enqueue.SETTLE_SUBMISSIONS_TASK)
def settle_submissions(channel_id: int) -> int:
    return push.settle_submissions(channel_id=channel_id)


@shared_task(name=enqueue.PROCESS_NEW_WEBHOOKS_TASK)
def process_new_webhooks() -> int:
    """Apply new receipts while they keep coming; let another run in when they pile up.

    The wake flag stays taken while this run works, so the receipts that come meanwhile
    cost no task of their own. It is given back when a batch comes full (a backlog: a
    second run may help) and when none is left; after giving it back the run looks once
    more, a moment later, for the receipts whose wake found the flag still taken.
    """
    tried = 0
    try:
        while True:
            batch = ingest.process_new_receipts(retry=enqueue.retry_webhook_processing, batches=1)
            tried += batch
            if batch >= ingest.NEW_RECEIPTS_BATCH:
                ratelimit.release_ingest_wake()
            elif batch == 0:
                ratelimit.release_ingest_wake()
                # The receipts whose wake-up trusted the flag taken are committed by then.
                time.sleep(ratelimit.INGEST_LAST_LOOK_AFTER_S)
                last = ingest.process_new_receipts(retry=enqueue.retry_webhook_processing)
                return tried + last
    except Exception:
        # A run that fails (the database gone mid-way) gives the flag back, so the next
        # webhook wakes a run at once instead of waiting for the flag to lapse.
        ratelimit.release_ingest_wake()
        raise


@shared_task(name=enqueue.PROCESS_WEBHOOK_TASK, bind=True, max_retries=4)
def process_webhook(self: Task, receipt_id: int) -> None:
    try:
        ingest.process_receipt(receipt_id=receipt_id)
    except OperationalError as error:
        # A deadlock or a dropped connection: the receipt is marked failed and is safe to
        # apply again; retry soon rather than wait for the sweep.
        raise self.retry(exc=error, countdown=0.1 * 2**self.request.retries) from error


# Scheduled every 10 s by migration 0004; overlapping runs only wake pushers twice.
@shared_task(name="channels.sweep_outbox")
def sweep_outbox() -> int:
    return outbox.sweep()


@shared_task(name=enqueue.POLL_ORDERS_TASK)
def poll_orders(channel_id: int) -> int:
    return len(receive.poll_orders(channel_id=channel_id))


# Scheduled every 5 minutes by migration 0023: the backup for order events never received.
@shared_task(name="channels.wake_order_polls")
def wake_order_polls() -> int:
    return receive.wake_order_polls()


@shared_task(name=enqueue.READ_MARKETPLACE_STOCK_TASK)
def read_marketplace_stock(channel_id: int) -> int:
    return marketplace_stock.read_marketplace_stock(channel_id=channel_id)


# Scheduled every 5 minutes by migration 0027: counts of stock a channel holds itself
# whose notification never came.
@shared_task(name="channels.wake_marketplace_stock_reads")
def wake_marketplace_stock_reads() -> int:
    return marketplace_stock.wake_marketplace_stock_reads()


# Scheduled every 60 s by migration 0019: settlements a lost broker message left behind.
@shared_task(name="channels.sweep_submitted_writes")
def sweep_submitted_writes() -> int:
    return push.sweep_submitted_writes()


# Scheduled every 30 s by migration 0006: receipts whose processing was lost or failed.
@shared_task(name="channels.sweep_webhook_receipts")
def sweep_webhook_receipts() -> int:
    return ingest.sweep_unprocessed_receipts(older_than_s=30)


# Scheduled every 5 minutes by migration 0021: cancellations and refunds whose order never
# came in its platform's redelivery window.
@shared_task(name="channels.expire_awaiting_receipts")
def expire_awaiting_receipts() -> int:
    return ingest.expire_awaiting_receipts()


# Scheduled every 15 s by a migration: the velocity guard's rises whose spike is over fall.
@shared_task(name="channels.lower_velocity_rises")
def lower_velocity_rises() -> int:
    return velocity.lower_spent_rises()


# Scheduled every 30 s by migration 0034: alerts open and clear once each, however often
# this runs.
@shared_task(name="channels.evaluate_alerts")
def evaluate_alerts() -> int:
    evaluation = alerts.evaluate_alerts()
    return len(evaluation.opened) + len(evaluation.cleared)


# Scheduled every 5 minutes by migration 0037: the scorecard and the charts read the units
# held back from the snapshot instead of working out every listing's ATS per request.
@shared_task(name="channels.take_buffer_snapshots")
def take_buffer_snapshots() -> int:
    return services.take_buffer_snapshots()


# Scheduled every 5 s by migration 0043: the console rolls up before it reads too, so this
# only keeps the backlog short (a console read never rolls up a long history at once).
@shared_task(name="channels.roll_up_pushes")
def roll_up_pushes() -> None:
    kpis.roll_up_pushes()


# Scheduled hourly by migration 0037: the rollup's rows no KPI window reaches any more.
@shared_task(name="channels.purge_push_rollup")
def purge_push_rollup() -> int:
    return services.purge_push_rollup()
