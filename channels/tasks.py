"""Celery tasks of the sync pipeline: thin wrappers over ``channels.push`` and ingest."""

from __future__ import annotations

from celery import Task, shared_task
from django.db import OperationalError


def push_queue_name(channel_id: int) -> str:
    # One queue per channel, so a slow channel never holds up a fast one.
    return f"push.{channel_id}"


def enqueue_push(*, channel_id: int, countdown: float | None = None) -> None:
    push_channel.apply_async(
        kwargs={"channel_id": channel_id},
        queue=push_queue_name(channel_id),
        countdown=max(countdown or 0.0, 0.0),
    )


@shared_task(name="channels.push_channel")
def push_channel(channel_id: int) -> None:
    from channels import push

    push.push_owed(channel_id=channel_id)


def enqueue_webhook_processing(receipt_id: int) -> None:
    process_webhook.apply_async(kwargs={"receipt_id": receipt_id}, queue="webhooks")


@shared_task(name="channels.process_webhook", bind=True, max_retries=4)
def process_webhook(self: Task, receipt_id: int) -> None:
    from channels import ingest

    try:
        ingest.process_receipt(receipt_id=receipt_id)
    except OperationalError as error:
        # A deadlock or a dropped connection: the receipt is marked failed and is safe to
        # apply again; retry soon rather than wait for the sweep.
        raise self.retry(exc=error, countdown=0.1 * 2**self.request.retries) from error


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
