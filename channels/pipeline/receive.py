"""The webhook receiver: verify, store raw, answer within milliseconds; a worker does the rest.

A plain Django view rather than a DRF APIView: the platforms send their own formats, no
content negotiation or authentication class applies, and the design asks for 500
webhooks/s at a p99 under 100 ms. On the hot path: one cached channel look-up, one HMAC,
one INSERT, one enqueue.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from channels.connectors.base import ChannelError, Connector
from channels.connectors.registry import connector_class_for, get_connector
from channels.connectors.types import Capability, PulledNotification, WebhookParseError
from channels.models import Channel, OrderPoll, WebhookReceipt
from channels.pipeline import alerts, enqueue
from inventory.models import EventKind, InventoryEvent
from nventory import prepared_sql

logger = logging.getLogger(__name__)

ResultT = TypeVar("ResultT")

_DEFAULT_MAX_BODY_BYTES = 1_048_576
# A channel (and its webhook secret) is reused this long: a changed secret takes effect
# within seconds, and a burst of webhooks costs one query per channel, not one each.
_CHANNEL_CACHE_S = 5.0


@dataclass(frozen=True)
class _CachedChannel:
    connector: Connector
    expires_at: float


_channels: dict[tuple[str, str], _CachedChannel] = {}


def forget_cached_channels() -> None:
    """Drop the channel cache (tests; a process that must see a new secret at once)."""
    _channels.clear()


def _connector_for(*, platform: str, channel_slug: str) -> Connector | None:
    now = time.monotonic()
    cached = _channels.get((platform, channel_slug))
    if cached is not None and cached.expires_at > now:
        return cached.connector
    channel = Channel.objects.filter(platform=platform, slug=channel_slug).first()
    if channel is None:
        _channels.pop((platform, channel_slug), None)
        return None
    try:
        connector = get_connector(channel)
    except LookupError:
        return None
    _channels[(platform, channel_slug)] = _CachedChannel(
        connector=connector, expires_at=now + _CHANNEL_CACHE_S
    )
    return connector


def _json(status: int, content: bytes) -> HttpResponse:
    return HttpResponse(content, status=status, content_type="application/json")


_ACCEPTED = b'{"status": "accepted"}'
_DUPLICATE = b'{"status": "duplicate"}'
_UNKNOWN_CHANNEL = b'{"error": "unknown_channel", "detail": "No such channel."}'
_TOO_LARGE = b'{"error": "body_too_large", "detail": "The body is over the size limit."}'
_BAD_SIGNATURE = b'{"error": "invalid_signature", "detail": "The signature does not match."}'
_NOT_A_CHALLENGE = b'{"error": "method_not_allowed", "detail": "Deliveries are POSTed."}'


_QUARANTINE_FULL = b'{"status": "quarantine_full"}'
_QUARANTINED = b'{"status": "quarantined"}'


# No conflict target: a receipt is a duplicate by its delivery id or by its content hash
# (each a unique constraint), whichever it meets.
_INSERT_RECEIPT_SQL = """
INSERT INTO channels_webhookreceipt
    (channel_id, topic, dedupe_key, content_hash, headers, body, received_at, status, error,
     attempts)
VALUES (%(channel_id)s, %(topic)s, %(dedupe_key)s, %(content_hash)s, %(headers)s::jsonb,
        %(body)s, now(), %(status)s, %(error)s, 0)
ON CONFLICT DO NOTHING
RETURNING id
"""


def record_receipt(
    *,
    channel_id: int,
    topic: str,
    dedupe_key: str,
    headers: Mapping[str, str],
    body: bytes,
    quarantine_reason: str = "",
    content_hash: str | None = None,
) -> int | None:
    """Store one delivery; None when that delivery was stored before (a duplicate: the
    same ``dedupe_key`` on the channel, or the same ``content_hash`` when one is given).

    One INSERT … ON CONFLICT DO NOTHING, no model instance. A new receipt is enqueued for
    processing when the transaction commits; one stored quarantined is only shown.
    """
    quarantined = bool(quarantine_reason)
    # Prepared, its parameters bound on the server: the body goes as bytes, not escaped
    # into the statement's text, and the statement is planned once per connection.
    rows = prepared_sql.fetch(
        _INSERT_RECEIPT_SQL,
        {
            "channel_id": channel_id,
            "topic": topic[:128],
            "dedupe_key": dedupe_key,
            "content_hash": content_hash,
            "headers": json.dumps(dict(headers)),
            "body": body,
            "status": str(
                WebhookReceipt.Status.QUARANTINED
                if quarantined
                else WebhookReceipt.Status.RECEIVED
            ),
            "error": quarantine_reason,
        },
    )
    if not rows:
        return None
    receipt_id: int = rows[0][0]
    if not quarantined:
        # robust: a broker outage must not turn a stored receipt into an error answer
        # (the platform would retry it); the sweep enqueues it later.
        # A lambda, not functools.partial: Django logs a robust callback's failure by its
        # __qualname__, which a partial lacks (the logging itself would then raise).
        transaction.on_commit(lambda: _enqueue_processing(receipt_id), robust=True)
    return receipt_id


def _enqueue_processing(receipt_id: int) -> None:
    enqueue.enqueue_webhook_processing(receipt_id)


def pull_notifications(*, channel_id: int) -> int:
    """Store what waits on the channel's notification queue, then acknowledge it; how many
    messages were new.

    Acknowledged only once stored (committed): a message lost between the two comes back
    from the queue and is stored once, by its dedupe key.
    """
    channel = Channel.objects.filter(pk=channel_id).first()
    if channel is None or channel.mode == Channel.Mode.PAUSED:
        return 0
    connector = get_connector(channel)
    if not connector.has(Capability.QUEUE_NOTIFICATIONS):
        return 0
    stored = 0
    while True:
        try:
            pulled = connector.pull_notifications(
                max_messages=connector.max_notifications_per_pull
            )
        except ChannelError as error:
            # The queue keeps what it holds: the next pull takes it.
            logger.warning("cannot pull the notifications of %s: %s", channel.slug, error)
            return stored
        if not pulled:
            return stored
        with transaction.atomic():
            for notification in pulled:
                stored += (
                    record_receipt(
                        channel_id=channel.pk,
                        topic=notification.topic,
                        dedupe_key=notification.dedupe_key,
                        headers=notification.headers,
                        body=notification.body,
                    )
                    is not None
                )
        connector.acknowledge_notifications([n.receipt_handle for n in pulled])
        if len(pulled) < connector.max_notifications_per_pull:
            return stored


# A poll reads back this far before the end of the previous one: an order written just
# before that moment may show up in the platform's list a little late.
ORDER_POLL_OVERLAP_S = 60
# A channel polled for the first time reads back this far.
FIRST_ORDER_POLL_S = 3600


def poll_orders(*, channel_id: int) -> list[int]:
    """Read the orders the channel changed since the last poll, and store each event they
    imply that was not stored before (an order whose webhook never came); the ids of the
    receipts stored, each enqueued for ingest like a webhook's.

    Events already stored (by this poll before, or as the webhook itself under another
    dedupe key) cost nothing: ingest's keys are the order's and its lines' ids.
    """
    channel = Channel.objects.filter(pk=channel_id).first()
    if channel is None or channel.mode == Channel.Mode.PAUSED:
        return []
    connector = get_connector(channel)
    if not connector.has(Capability.ORDER_POLL):
        return []
    started = timezone.now()
    state = OrderPoll.objects.filter(channel=channel).first()
    since = (
        state.polled_until - dt.timedelta(seconds=ORDER_POLL_OVERLAP_S)
        if state is not None
        else started - dt.timedelta(seconds=FIRST_ORDER_POLL_S)
    )
    try:
        events = connector.poll_orders(since=since)
    except ChannelError as error:
        OrderPoll.objects.update_or_create(
            channel=channel,
            defaults={"polled_until": since, "last_error": str(error)[:2000]},
        )
        raise
    stored: list[int] = []
    events = _not_yet_ingested(channel, connector, events)
    with transaction.atomic():
        for event in events:
            receipt_id = record_receipt(
                channel_id=channel.pk,
                topic=event.topic,
                dedupe_key=event.dedupe_key,
                headers=event.headers,
                body=event.body,
            )
            if receipt_id is not None:
                stored.append(receipt_id)
        OrderPoll.objects.update_or_create(
            channel=channel, defaults={"polled_until": started, "last_error": ""}
        )
    if stored:
        logger.info("order poll of %s stored %d events", channel.slug, len(stored))
    return stored


def _not_yet_ingested(
    channel: Channel, connector: Connector, events: list[PulledNotification]
) -> list[PulledNotification]:
    """The polled events whose order the channel's webhooks have not committed already:
    on a busy channel nearly every polled order came by webhook, and storing each again
    would only cost its ingest."""
    placed = {}
    for event in events:
        if event.topic != connector.order_placed_topic:
            continue
        try:
            message = connector.parse_webhook(event.topic, event.body)
        except WebhookParseError:
            continue  # stored, and quarantined by ingest with the reason
        placed[event.dedupe_key] = message.reference
    committed = set(
        InventoryEvent.objects.filter(
            external_reference__in=set(placed.values()),
            kind=EventKind.ORDER_COMMITTED,
            idempotency_key__startswith=f"{channel.platform}:{channel.pk}:order:",
        ).values_list("external_reference", flat=True)
    )
    return [
        event
        for event in events
        if event.dedupe_key not in placed or placed[event.dedupe_key] not in committed
    ]


def wake_order_polls() -> int:
    """Queue an order poll for every unpaused channel whose platform lists its orders."""
    channel_ids = [
        channel.pk
        for channel in Channel.objects.exclude(mode=Channel.Mode.PAUSED)
        if Capability.ORDER_POLL in connector_class_for(channel.platform).capabilities
    ]
    for channel_id in channel_ids:
        enqueue.enqueue_order_poll(channel_id=channel_id)
    return len(channel_ids)


@csrf_exempt
@require_http_methods(["GET", "POST"])
def receive_webhook(request: HttpRequest, platform: str, channel_slug: str) -> HttpResponse:
    """Store a verified delivery once and acknowledge it; parsing waits for the worker.

    401 for a bad signature, or a signed timestamp outside the window (nothing stored).
    Once per delivery id and once per content (topic and body): a captured body resent
    under fresh delivery ids is a duplicate. A signed delivery without topic or delivery
    id, or whose topic contradicts its body, is stored quarantined (never applied) and
    still answered 200, so the platform stops retrying it; past the channel's quarantine
    cap it is not stored, and an alert is raised. A GET is a platform validating the
    endpoint (eBay's challenge), answered by the connector or refused with 405.
    """
    connector = _on_a_live_connection(
        lambda: _connector_for(platform=platform, channel_slug=channel_slug)
    )
    # A platform that delivers through a queue has no webhook URL to answer at.
    if connector is None or not connector.has(Capability.HTTP_WEBHOOKS):
        return _json(404, _UNKNOWN_CHANNEL)
    if request.method == "GET":
        answer = connector.answer_challenge(
            query=request.GET.dict(), endpoint_url=request.build_absolute_uri(request.path)
        )
        if answer is None:
            return _json(405, _NOT_A_CHALLENGE)
        return _json(200, json.dumps(answer).encode())
    body = _read_body(request)
    if body is None:
        return _json(413, _TOO_LARGE)
    headers = request.headers
    if not connector.verify_webhook(headers, body):
        logger.info("Webhook with a bad signature refused for %s/%s", platform, channel_slug)
        return _json(401, _BAD_SIGNATURE)
    quarantine_reason = ""
    try:
        envelope = connector.webhook_envelope(headers, body)
        topic, dedupe_key = envelope.topic, envelope.dedupe_key
    except WebhookParseError as error:
        topic, dedupe_key = "", ""
        quarantine_reason = f"No topic or delivery id: {error}"
    else:
        contradiction = connector.webhook_contradiction(topic, body)
        if contradiction:
            quarantine_reason = f"Refused: {contradiction}"
    content_hash = connector.webhook_content_key(topic, body)
    channel_id = connector.channel.pk
    if quarantine_reason:
        if alerts.alert_quarantine_full(channel_id=channel_id):
            logger.warning(
                "Webhook for %s/%s not stored (quarantine full): %s",
                platform,
                channel_slug,
                quarantine_reason,
            )
            return _json(200, _QUARANTINE_FULL)
        logger.warning(
            "Webhook for %s/%s quarantined: %s", platform, channel_slug, quarantine_reason
        )
        dedupe_key = dedupe_key or f"unidentified:{content_hash}"
    kept_headers = connector.kept_webhook_headers(headers)
    receipt_id = _on_a_live_connection(
        lambda: record_receipt(
            channel_id=channel_id,
            topic=topic,
            dedupe_key=dedupe_key,
            headers=kept_headers,
            body=body,
            quarantine_reason=quarantine_reason,
            content_hash=content_hash,
        )
    )
    if receipt_id is None:
        return _json(200, _DUPLICATE)
    return _json(200, _QUARANTINED if quarantine_reason else _ACCEPTED)


def _on_a_live_connection(work: Callable[[], ResultT]) -> ResultT:
    """``work``, run again on a new database connection when the one it was given is dead
    (PostgreSQL restarted, an operator ended it, the network dropped it).

    The webhook path skips Django's per-request health check (``nventory.webhook_handler``),
    so a dead connection is found by the delivery's own statement. Running it again is
    safe: the channel's lookup only reads, and a receipt stored before the connection died
    meets its own delivery key and is answered as a duplicate.
    """
    try:
        return work()
    except (OperationalError, InterfaceError):
        if connection.in_atomic_block or (
            connection.connection is not None and connection.is_usable()
        ):
            raise
        connection.close()
        return work()


def _read_body(request: HttpRequest) -> bytes | None:
    """The raw body, or None when it is over the limit; never reads more than limit + 1."""
    limit: int = getattr(settings, "WEBHOOK_MAX_BODY_BYTES", _DEFAULT_MAX_BODY_BYTES)
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        return None
    body = request.read(limit + 1)
    if len(body) > limit:
        return None
    return body
