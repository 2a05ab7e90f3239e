"""Amazon's notifications (§2.1): envelopes sent to an SQS queue, never to an HTTP URL.

The seller's ``sqs_queue_url`` (on moto's server mode in tests and under ``make run``)
receives each envelope through boto3, as Amazon's principal would ``SendMessage``. The
tenant's emitter settings add the disorder SQS and Amazon show: duplicates (at-least-once
delivery), drops (a notification that never comes: the backup poll's case), delays with
jitter and held batches released newest first (out of order compared with EventTime).
"""

from __future__ import annotations

import functools
import json
import random
import uuid
from typing import TYPE_CHECKING, Any

from channels.simulators.harness import JSON

if TYPE_CHECKING:
    from channels.simulators.amazon.state import Seller
    from channels.simulators.harness import Scheduler

APPLICATION_ID = "amzn1.sellerapps.app.nventory-simulator"


def envelope(seller: Seller, notification_type: str, payload: JSON, event_iso: str) -> JSON:
    """§2.1: the envelope, its ``NotificationMetadata.NotificationId`` the dedupe key."""
    return {
        "NotificationVersion": "1.0",
        "NotificationType": notification_type,
        "PayloadVersion": "1.0",
        "EventTime": event_iso,
        "Payload": payload,
        "NotificationMetadata": {
            "ApplicationId": APPLICATION_ID,
            "SubscriptionId": f"subscription-{seller.name}-{notification_type.lower()}",
            "PublishTime": event_iso,
            "NotificationId": str(uuid.uuid4()),
        },
    }


@functools.lru_cache(maxsize=16)
def _sqs_client(endpoint_url: str, region: str) -> Any:
    import boto3  # only a simulator that sends notifications needs it

    return boto3.client(
        "sqs",
        endpoint_url=endpoint_url or None,
        region_name=region,
        aws_access_key_id="simulator",
        aws_secret_access_key="simulator",  # noqa: S106 (moto accepts any key)
    )


def _take(settings: Any, kind: str) -> bool:
    left = getattr(settings, f"{kind}_next")
    if left > 0:
        setattr(settings, f"{kind}_next", left - 1)
        return True
    rate = getattr(settings, f"{kind}_rate")
    return bool(rate) and random.random() < rate


def publish(
    seller: Seller, scheduler: Scheduler, body: JSON, *, duplicates: int = 0, deliver: bool = True
) -> JSON:
    """Log the notification and send it (lock held); what became of it."""
    notification_id = body["NotificationMetadata"]["NotificationId"]
    raw = json.dumps(body).encode()
    entry: JSON = {
        "notification_id": notification_id,
        "type": body["NotificationType"],
        "payload": body["Payload"],
        "state": "sent",
    }
    settings = seller.emitter
    queue_url = seller.settings.sqs_queue_url
    if not deliver or not queue_url:
        entry["state"] = "not_sent"
    elif _take(settings, "drop"):
        entry["state"] = "dropped"
    seller.notifications.append(entry)
    if entry["state"] != "sent":
        return entry
    copies = 1 + max(0, duplicates) + (1 if _take(settings, "duplicate") else 0)
    endpoint, region = seller.settings.sqs_endpoint_url, seller.settings.sqs_region
    if settings.hold_next > 0:
        settings.hold_next -= 1
        entry["state"] = "held"
        seller.held_notifications.append((queue_url, raw, copies))
        if settings.hold_next == 0:
            release(seller, scheduler)
        return entry
    delay_s = settings.delay_s + (random.uniform(0, settings.jitter_s) if settings.jitter_s else 0)
    scheduler.call_later(delay_s, lambda: _send(endpoint, region, queue_url, raw, copies))
    return entry


def release(seller: Seller, scheduler: Scheduler) -> int:
    """Send the held notifications newest first (lock held); how many."""
    held, seller.held_notifications = seller.held_notifications, []
    endpoint, region = seller.settings.sqs_endpoint_url, seller.settings.sqs_region

    def send_all() -> None:
        for queue_url, raw, copies in reversed(held):
            _send(endpoint, region, queue_url, raw, copies)

    if held:
        scheduler.submit(send_all)
    return len(held)


def _send(endpoint: str, region: str, queue_url: str, raw: bytes, copies: int) -> None:
    client = _sqs_client(endpoint, region)
    for _ in range(copies):
        try:
            client.send_message(QueueUrl=queue_url, MessageBody=raw.decode())
        except client.exceptions.QueueDoesNotExist:
            # make run starts the queue server empty: the seller's queue is made on first use,
            # as the seller's AWS account would have it.
            client.create_queue(QueueName=queue_url.rstrip("/").rsplit("/", 1)[-1])
            client.send_message(QueueUrl=queue_url, MessageBody=raw.decode())


def ensure_queue(seller: Seller, scheduler: Scheduler, *, tries: int = 60) -> None:
    """Create the seller's queue on the SQS server, retrying each second while the server
    is not up yet (make run starts both at once): a consumer reading the queue before the
    first notification then finds it empty rather than missing."""
    queue_url = seller.settings.sqs_queue_url
    if not queue_url:
        return
    endpoint, region = seller.settings.sqs_endpoint_url, seller.settings.sqs_region

    def attempt(left: int) -> None:
        client = _sqs_client(endpoint, region)
        try:
            client.create_queue(QueueName=queue_url.rstrip("/").rsplit("/", 1)[-1])
        except Exception:  # the server is not listening yet, or refused: try again
            if left > 1:
                scheduler.call_later(1.0, lambda: attempt(left - 1))

    scheduler.submit(lambda: attempt(tries))
