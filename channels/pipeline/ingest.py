"""Webhook receipts, stored by ``receive``, turned into ledger events by a worker.

``process_receipt`` works in one transaction per receipt, so a receipt's effects land
whole or not at all.

Idempotency: every stock change carries a key built from the order and its line
(``{platform}:{channel}:order:{order}:line:{line}:commit``), never from the delivery, so
two deliveries of one order, or one delivery processed twice, commit once. Each order's
events are also serialised by a transaction-level advisory lock, so the checks of what an
order already did (committed, released) cannot race between two workers.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import hashlib
import itertools
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from django.db import OperationalError, connection, transaction
from django.db.models.base import DEFERRED
from django.utils import timezone

from bundles import services as bundle_services
from channels import selectors
from channels.connectors.base import Connector
from channels.connectors.registry import get_connector
from channels.connectors.types import (
    Capability,
    ListingRef,
    MessageKind,
    MessageLine,
    StockEffect,
    WebhookMessage,
    WebhookParseError,
)
from channels.models import (
    NO_LISTING,
    UNEXPLAINED_MOVES_WAIT_S,
    Channel,
    ChannelAlert,
    DriftRecord,
    Listing,
    ListingSyncState,
    OversellIncident,
    UnmappedLine,
    WebhookReceipt,
)
from channels.pipeline import alerts, enqueue, marketplace_stock, outbox, velocity
from inventory import services
from inventory.models import MAX_QUANTITY, EventKind, EventSource, InventoryEvent
from nventory import fault_injection, prepared_sql

logger = logging.getLogger(__name__)

# Tries (a worker killed mid-way counts too) before a receipt is left for an operator.
MAX_RECEIPT_ATTEMPTS = 5

_PENDING = (WebhookReceipt.Status.RECEIVED, WebhookReceipt.Status.FAILED)

_ORDER_KINDS = frozenset(
    {MessageKind.ORDER_PLACED, MessageKind.ORDER_CANCELLED, MessageKind.REFUND}
)


# A try is counted before it starts, in its own transaction, so a receipt that kills its
# worker still runs out of attempts. SKIP LOCKED: a receipt being processed right now is
# another worker's.
_CLAIM_ATTEMPT_SQL = """
UPDATE channels_webhookreceipt SET attempts = attempts + 1
 WHERE id = (SELECT id FROM channels_webhookreceipt
              WHERE id = %(receipt_id)s AND status = ANY(%(pending)s)
                AND attempts < %(max_attempts)s
              FOR UPDATE SKIP LOCKED)
RETURNING id
"""


class IngestError(Exception):
    """A receipt that cannot be applied as things are (retried, then left as failed)."""


def sweep_unprocessed_receipts(*, older_than_s: float = 30, limit: int = 1000) -> int:
    """Enqueue again every receipt left received or failed with attempts to spare.

    A receipt younger than ``older_than_s`` is skipped: its own enqueue is still on the way.
    Returns how many were enqueued.
    """
    cutoff = timezone.now() - dt.timedelta(seconds=older_than_s)
    receipt_ids = list(
        WebhookReceipt.objects.filter(
            status__in=_PENDING, attempts__lt=MAX_RECEIPT_ATTEMPTS, received_at__lt=cutoff
        )
        .order_by("received_at")
        .values_list("pk", flat=True)[:limit]
    )
    for receipt_id in receipt_ids:
        enqueue.retry_webhook_processing(receipt_id)
    return len(receipt_ids)


# -----------------------------------------------------------------------------------------
# Processing
# -----------------------------------------------------------------------------------------


# New receipts, oldest first, each try counted before it starts (as _CLAIM_ATTEMPT_SQL).
# Only receipts never tried: one that failed goes back through its own task and backoff.
# ``= ANY(ARRAY(…))``, not ``IN (…)``: see nventory.prepared_sql on claims' generic plans.
_CLAIM_NEW_SQL = f"""
UPDATE channels_webhookreceipt SET attempts = attempts + 1
 WHERE id = ANY(ARRAY(SELECT id FROM channels_webhookreceipt
                       WHERE status = '{WebhookReceipt.Status.RECEIVED}' AND attempts = 0
                       ORDER BY id
                       LIMIT %(limit)s
                         FOR UPDATE SKIP LOCKED))
RETURNING id
"""

# Receipts one ingest run takes at a time, before it looks for newer ones.
NEW_RECEIPTS_BATCH = 10


def process_new_receipts(
    *,
    retry: Callable[[int, float], None],
    batch_size: int = NEW_RECEIPTS_BATCH,
    batches: int | None = None,
) -> int:
    """Apply every receipt not tried yet (or ``batches`` batches of them); how many were tried.

    A receipt that cannot be applied now (a deadlock, a lost connection, a cancellation
    ahead of its order) is handed to ``retry(receipt_id, countdown)``; any other error
    leaves it failed for the sweep. Either way the run goes on with the next one.
    """
    tried = 0
    for _ in itertools.count() if batches is None else range(batches):
        receipt_ids = sorted(
            row[0] for row in prepared_sql.fetch(_CLAIM_NEW_SQL, {"limit": batch_size})
        )
        if not receipt_ids:
            return tried
        with outbox.wakes_gathered():
            for receipt_id in receipt_ids:
                tried += 1
                try:
                    _process_claimed(receipt_id)
                except OperationalError:
                    retry(receipt_id, 0.1)
                except Exception:
                    logger.exception(
                        "Webhook receipt %s failed; the sweep tries it again", receipt_id
                    )
    return tried


def process_receipt(*, receipt_id: int) -> None:
    """Apply one receipt, once; safe to run twice, also at the same time.

    A receipt already processed, ignored or quarantined, out of attempts, or locked by
    another worker is left alone. An unparseable body is quarantined. Any other error marks
    the receipt failed with the error and is raised again, for the task's retry.
    """
    if _claim_attempt(receipt_id):
        _process_claimed(receipt_id)


def _process_claimed(receipt_id: int) -> None:
    """``process_receipt`` once its try is counted."""
    try:
        with transaction.atomic(durable=True):
            receipt = _lock_receipt(receipt_id)
            if receipt is None:
                return
            _set_status(receipt_id, _apply_receipt(receipt))
    except WebhookParseError as error:
        # Nothing of it was applied (the transaction rolled back); kept for operators.
        logger.warning("Webhook receipt %s quarantined: %s", receipt_id, error)
        _set_status(receipt_id, WebhookReceipt.Status.QUARANTINED, error=str(error))
        # One more held: an operator is told when the channel's quarantine is full.
        channel_id = (
            WebhookReceipt.objects.filter(pk=receipt_id)
            .values_list("channel_id", flat=True)
            .first()
        )
        if channel_id is not None:
            alerts.alert_quarantine_full(channel_id=channel_id)
    except Exception as error:
        _set_status(
            receipt_id, WebhookReceipt.Status.FAILED, error=f"{type(error).__name__}: {error}"
        )
        raise


# Which version of a row this is: the transaction that wrote it (xmin) and where (ctid); a
# transaction that updates a row twice writes two versions, each in a place of its own.
_ROW_VERSION = "{row}.xmin::text || ':' || {row}.ctid::text"

# The receipt, locked for this transaction, with its channel's row version. Raw SQL: it
# runs for every webhook, and building it through the ORM cost more than running it. It
# waits for a lock rather than skip: the try is ours (counted by our claim), and the lock
# may be held only for a moment by another worker's claim statement passing over the row;
# a worker that was applying it has, when it lets go, left it no longer pending.
_LOCK_RECEIPT_SQL = f"""
SELECT receipt.channel_id, {_ROW_VERSION.format(row="channel")} AS channel_version,
       receipt.topic, receipt.body, receipt.attempts, receipt.received_at
  FROM channels_webhookreceipt AS receipt
  JOIN channels_channel AS channel ON channel.id = receipt.channel_id
 WHERE receipt.id = %(receipt_id)s
   AND receipt.status IN ({", ".join(f"'{status}'" for status in _PENDING)})
   FOR UPDATE OF receipt
"""

_CHANNEL_SQL = f"""
SELECT channel.*, {_ROW_VERSION.format(row="channel")} AS channel_version
  FROM channels_channel AS channel
 WHERE channel.id = %(id)s
"""

# Each channel as last read, by id, with the version of its row (``_ROW_VERSION``: every
# update of the row changes it). Building a channel from its row (its JSON decoded, its
# secrets decrypted) for every receipt cost a tenth of the ingest; a receipt's channel is
# read again only when its row has changed since. Each receipt gets a copy of its own.
_channels: dict[int, Channel] = {}


def _lock_receipt(receipt_id: int) -> WebhookReceipt | None:
    """The receipt if it is still pending (once no other worker holds it), else None."""
    found = prepared_sql.fetch(_LOCK_RECEIPT_SQL, {"receipt_id": receipt_id})
    if not found:
        return None
    channel_id, channel_version, topic, body, attempts, received_at = found[0]
    # As loaded from the database (the fields not read left deferred): building it with
    # keyword arguments worked out every other field's default, for every receipt.
    read = {
        "id": receipt_id,
        "channel_id": channel_id,
        "topic": topic,
        "body": body,
        "attempts": attempts,
        "received_at": received_at,
    }
    receipt = WebhookReceipt.from_db(
        connection.alias,
        list(read),
        [read.get(field.attname, DEFERRED) for field in WebhookReceipt._meta.concrete_fields],
    )
    receipt.channel = _channel_as_of(channel_id, channel_version)
    return receipt


def _channel_as_of(channel_id: int, version: str) -> Channel:
    """The channel as its row is at ``version`` or later, a copy of its own."""
    cached = _channels.get(channel_id)
    if cached is None or cached.channel_version != version:  # type: ignore[attr-defined]
        # Read in a statement of its own, so possibly a newer version still: kept as that.
        [cached] = prepared_sql.instances(Channel, _CHANNEL_SQL, {"id": channel_id})
        _channels[channel_id] = cached
    return copy.copy(cached)


def _claim_attempt(receipt_id: int) -> bool:
    # Its own statement, committed at once (autocommit), so that a try that kills its
    # worker is still counted.
    with connection.cursor() as cursor:
        cursor.execute(
            _CLAIM_ATTEMPT_SQL,
            {
                "receipt_id": receipt_id,
                "pending": [str(status) for status in _PENDING],
                "max_attempts": MAX_RECEIPT_ATTEMPTS,
            },
        )
        return cursor.fetchone() is not None


def _set_status(receipt_id: int, status: str, *, error: str = "") -> None:
    finished = status not in (WebhookReceipt.Status.FAILED, WebhookReceipt.Status.AWAITING_ORDER)
    prepared_sql.fetch(
        "UPDATE channels_webhookreceipt"
        " SET status = %(status)s, error = %(error)s, processed_at = %(processed_at)s"
        " WHERE id = %(receipt_id)s",
        {
            "status": str(status),
            "error": error,
            "processed_at": timezone.now() if finished else None,
            "receipt_id": receipt_id,
        },
    )


@dataclass(frozen=True)
class _Ingest:
    receipt: WebhookReceipt
    channel: Channel
    connector: Connector
    message: WebhookMessage

    @property
    def order_key(self) -> str:
        return f"{self.channel.platform}:{self.channel.pk}:order:{self.message.reference}"

    def line_key(self, line: MessageLine) -> str:
        return f"{self.order_key}:line:{line.reference}"

    @property
    def explanation(self) -> str:
        # What a drift this receipt accounts for is put down to: "orders/create 5678901234".
        return f"{self.receipt.topic} {self.message.reference}"

    def context(self, idempotency_key: str) -> services.EventContext:
        return services.EventContext(
            idempotency_key=idempotency_key,
            source=EventSource.CHANNEL,
            actor=self.channel.slug,
            external_reference=self.message.reference,
        )


def _apply_receipt(receipt: WebhookReceipt) -> str:
    """Apply one locked receipt; the status it ends in."""
    fault_injection.before_applying_receipt(bytes(receipt.body))
    channel = receipt.channel
    connector = get_connector(channel)
    message = _parse(connector, receipt)
    if message.kind == MessageKind.IGNORED:
        return WebhookReceipt.Status.IGNORED
    if message.kind in (MessageKind.AUTHORIZATION_REVOKED, MessageKind.AUTHORIZATION_EXPIRING):
        _alert_authorization(channel, message, topic=receipt.topic)
        return WebhookReceipt.Status.PROCESSED
    ingest = _Ingest(receipt=receipt, channel=channel, connector=connector, message=message)
    if message.kind == MessageKind.INVENTORY_CHANGED:
        _apply_inventory_change(ingest)
        return WebhookReceipt.Status.PROCESSED
    if message.kind == MessageKind.MARKETPLACE_STOCK:
        marketplace_stock.apply_counts(
            channel=channel, counts=message.stock_counts, origin=receipt.topic
        )
        return WebhookReceipt.Status.PROCESSED
    if message.kind == MessageKind.WRITES_FINISHED:
        # The channel says its writes are processed: settle them now, not at the next poll.
        transaction.on_commit(
            lambda: enqueue.enqueue_settlement(channel_id=channel.pk, countdown=0)
        )
        return WebhookReceipt.Status.PROCESSED
    _lock_order(ingest.order_key)
    return _apply_order_message(ingest)


def _alert_authorization(channel: Channel, message: WebhookMessage, *, topic: str) -> None:
    """Open the channel's alert that its authorization is gone or ending (the console shows
    it and the operators are emailed, ``channels.alerts``); a revoked one also pauses the
    channel, so its pushes wait for a new authorization instead of failing into dead
    letters. Setting it active again owes every listing. An authorization ending soon still
    works: the channel keeps pushing until it ends."""
    if message.kind == MessageKind.AUTHORIZATION_EXPIRING:
        alerts.raise_alert(
            channel_id=channel.pk,
            kind=ChannelAlert.Kind.AUTHORIZATION_EXPIRING,
            message=(
                f"The platform says the app's authorization of {channel.name} ends soon "
                f"({topic} {message.reference}): authorize it again before it does, or "
                "its pushes will be refused."
            ),
        )
        return
    paused = (
        Channel.objects.filter(pk=channel.pk)
        .exclude(mode=Channel.Mode.PAUSED)
        .update(mode=Channel.Mode.PAUSED)
    )
    alerts.raise_alert(
        channel_id=channel.pk,
        kind=ChannelAlert.Kind.AUTHORIZATION_REVOKED,
        message=(
            f"The seller withdrew the app's authorization of {channel.name} ({topic} "
            f"{message.reference}); "
            + (
                "its pushes are paused until it is authorized again and set active."
                if paused
                else "it was already paused."
            )
        ),
    )


def read_message(*, connector: Connector, topic: str, body: bytes) -> WebhookMessage:
    """The connector's reading of a stored body; ``WebhookParseError`` (quarantine) for
    whatever a parser raises on a body it cannot read (deep nesting, a type it did not
    expect), never another error that would fail the receipt and try it again."""
    try:
        message = connector.parse_webhook(topic, body)
    except WebhookParseError:
        raise
    except (RecursionError, ValueError, TypeError, KeyError, AttributeError) as error:
        raise WebhookParseError(f"Unreadable body: {type(error).__name__}: {error}") from None
    return _within_limits(message)


# An order's, a line's or a refund's reference is part of ledger keys of 255 characters
# ("<platform>:<channel>:order:<order>:line:<line>:commit"); real ones are a few dozen.
MAX_REFERENCE_LENGTH = 100
# A line's identifiers are matched against listings' external ids (255 characters).
MAX_IDENTIFIER_LENGTH = 255


def _within_limits(message: WebhookMessage) -> WebhookMessage:
    """The message if what it says can be stored: references short enough for the ledger's
    keys and free of NUL (``WebhookParseError`` otherwise); a line whose quantity is beyond
    ``MAX_QUANTITY`` or whose identifier PostgreSQL cannot hold spoils only itself."""
    references = [message.reference, message.sub_reference]
    references += [line.reference for line in message.lines]
    for reference in references:
        if len(reference) > MAX_REFERENCE_LENGTH or "\x00" in reference:
            raise WebhookParseError(
                f"A reference is longer than {MAX_REFERENCE_LENGTH} characters or holds NUL."
            )
    lines = []
    for line in message.lines:
        problem = line.problem
        if not problem and abs(line.quantity) > MAX_QUANTITY:
            problem = f"quantity {line.quantity} is beyond {MAX_QUANTITY}"
        if not problem and any(
            "\x00" in f"{name}{value}" or len(value) > MAX_IDENTIFIER_LENGTH
            for name, value in line.identifiers.items()
        ):
            problem = f"an identifier holds NUL or is over {MAX_IDENTIFIER_LENGTH} characters"
        if problem != line.problem:
            line = dataclasses.replace(line, quantity=0, identifiers={}, problem=problem)
        lines.append(line)
    return dataclasses.replace(message, lines=tuple(lines))


def _parse(connector: Connector, receipt: WebhookReceipt) -> WebhookMessage:
    """The receipt's message, its lines fetched where the platform sends none.

    Whatever a parser raises on a body it cannot read (deep nesting, a type it did not
    expect) is a parse error: the receipt is quarantined at once, not tried again.
    """
    message = read_message(connector=connector, topic=receipt.topic, body=bytes(receipt.body))
    if (
        not message.lines
        and message.kind in _ORDER_KINDS
        and connector.has(Capability.ORDER_LOOKUP)
    ):
        # The notification named the order (or its refund) only. Fetched with the receipt
        # locked, before any stock row is: a platform that does not answer fails the
        # receipt for a retry. A refund's lines are its own, never the whole order's.
        fetched = (
            connector.fetch_refund(
                order_reference=message.reference, refund_reference=message.sub_reference
            )
            if message.kind == MessageKind.REFUND
            else connector.fetch_order(message.reference)
        )
        message = dataclasses.replace(
            message, lines=fetched.lines, occurred_at=message.occurred_at or fetched.occurred_at
        )
    return message


def _apply_order_message(ingest: _Ingest) -> str:
    """Apply an order, cancellation or refund under its order's lock; the status it ends in.

    A cancellation or refund of an order the ledger does not hold yet waits for it (the
    platform may deliver the order later: a connection reset on its first delivery is
    enough); the order, when it comes, applies what waited for it.
    """
    kind = ingest.message.kind
    if kind == MessageKind.ORDER_PLACED:
        _apply_order_placed(ingest)
        _apply_what_awaited(ingest)
        return WebhookReceipt.Status.PROCESSED
    if kind not in (MessageKind.ORDER_CANCELLED, MessageKind.REFUND):
        raise IngestError(f"No handling for message kind {kind!r}.")
    if not _order_committed(ingest):
        if not any(_listing_for_line(ingest, line) for line in ingest.message.lines):
            for line in ingest.message.lines:
                _record_unmapped(ingest, line)
            return WebhookReceipt.Status.PROCESSED
        _await_order(ingest)
        return WebhookReceipt.Status.AWAITING_ORDER
    if kind == MessageKind.ORDER_CANCELLED:
        _apply_order_cancelled(ingest)
    else:
        _apply_refund(ingest)
    return WebhookReceipt.Status.PROCESSED


def _order_committed(ingest: _Ingest) -> bool:
    """Whether any line of the order was committed on this channel."""
    return InventoryEvent.objects.filter(
        external_reference=ingest.message.reference,
        kind=EventKind.ORDER_COMMITTED,
        idempotency_key__startswith=f"{ingest.order_key}:line:",
    ).exists()


def _await_order(ingest: _Ingest) -> None:
    WebhookReceipt.objects.filter(pk=ingest.receipt.pk).update(
        awaited_order=ingest.message.reference,
        awaited_until=ingest.receipt.received_at
        + dt.timedelta(seconds=ingest.connector.order_redelivery_window_s),
    )
    logger.info(
        "%s of order %s on %s came before the order: it waits for it",
        ingest.message.kind,
        ingest.message.reference,
        ingest.channel.slug,
    )


# Asked for every order placed, and almost never finds one: raw SQL through the partial
# index of receipts awaiting an order, rather than the ORM's query building on every order.
_AWAITING_ORDER_SQL = f"""
SELECT id FROM channels_webhookreceipt
 WHERE channel_id = %(channel_id)s AND status = '{WebhookReceipt.Status.AWAITING_ORDER}'
   AND awaited_order = %(order)s
 ORDER BY received_at, id
   FOR UPDATE
"""


def _apply_what_awaited(ingest: _Ingest) -> None:
    """Apply, in the order they came, the cancellations and refunds that waited for this
    order (the order's lock is held)."""
    waiting_ids = [
        row[0]
        for row in prepared_sql.fetch(
            _AWAITING_ORDER_SQL,
            {"channel_id": ingest.channel.pk, "order": ingest.message.reference},
        )
    ]
    if not waiting_ids:
        return
    waiting = WebhookReceipt.objects.filter(pk__in=waiting_ids).order_by("received_at", "pk")
    for receipt in waiting:
        receipt.channel = ingest.channel
        message = _parse(ingest.connector, receipt)
        later = _Ingest(
            receipt=receipt, channel=ingest.channel, connector=ingest.connector, message=message
        )
        if message.kind == MessageKind.ORDER_CANCELLED:
            _apply_order_cancelled(later)
        else:
            _apply_refund(later)
        _set_status(receipt.pk, WebhookReceipt.Status.PROCESSED)


def expire_awaiting_receipts() -> int:
    """Give up on cancellations and refunds whose order never came in the platform's
    window: shown to operators as such, nothing applied; how many."""
    expired = list(
        WebhookReceipt.objects.filter(
            status=WebhookReceipt.Status.AWAITING_ORDER, awaited_until__lt=timezone.now()
        ).values_list("pk", "awaited_order", "channel__slug")
    )
    for receipt_id, order, channel_slug in expired:
        logger.warning(
            "order %s on %s never came: receipt %s applied nothing",
            order,
            channel_slug,
            receipt_id,
        )
        _set_status(
            receipt_id,
            WebhookReceipt.Status.ORDER_NEVER_CAME,
            error=f"Order {order} never came within the platform's redelivery window: "
            "nothing was released. Check the order on the channel.",
        )
    return len(expired)


def _lock_order(order_key: str) -> None:
    lock_id = int.from_bytes(
        hashlib.blake2b(order_key.encode(), digest_size=8).digest(), "big", signed=True
    )
    prepared_sql.fetch("SELECT pg_advisory_xact_lock(%(lock_id)s::bigint)", {"lock_id": lock_id})


# --- orders ------------------------------------------------------------------------------


def _apply_order_placed(ingest: _Ingest) -> None:
    mapped: list[tuple[Listing, MessageLine]] = []
    for line in ingest.message.lines:
        if line.problem:
            _record_unmapped(ingest, line)
            continue
        listing = _listing_for_line(ingest, line)
        if listing is None or listing.sku_id is None:
            _record_unmapped(ingest, line)
            continue
        if line.quantity > 0:
            mapped.append((listing, line))
    # Each line locks its stock row until the receipt commits: taking them in SKU order
    # keeps two orders with the same SKUs in another order from deadlocking.
    mapped.sort(key=lambda pair: (pair[0].sku_id or 0, pair[1].reference))
    facts = _order_line_facts(
        channel=ingest.channel,
        order_reference=ingest.message.reference,
        lines=[
            (listing.sku_id or 0, f"{ingest.line_key(line)}:commit") for listing, line in mapped
        ],
    )
    sold_sku_ids: set[int] = set()
    for (listing, line), (is_bundle, committed, location_id) in zip(mapped, facts, strict=True):
        assert listing.sku_id is not None
        if committed:
            continue
        if location_id is None:
            raise IngestError(f"Channel {ingest.channel.slug} sells from no active location.")
        commit_key = f"{ingest.line_key(line)}:commit"
        if is_bundle:
            # A bundle line takes every leaf component, in one statement (bundles.services).
            events = bundle_services.commit_sku(
                sku_id=listing.sku_id,
                location_id=location_id,
                quantity=line.quantity,
                context=ingest.context(commit_key),
                allow_shortfall=True,
            )
        else:
            events = [
                services.commit_order(
                    sku_id=listing.sku_id,
                    location_id=location_id,
                    quantity=line.quantity,
                    context=ingest.context(commit_key),
                    allow_shortfall=True,
                    # The line facts found the key unused, under the order's lock.
                    key_checked_under_lock=True,
                )
            ]
        for event in events:
            sold_sku_ids.add(event.sku_id)
            if event.shortfall > 0:
                # An operator's log shows it as it happens; the row is what they act on.
                logger.warning(
                    "oversell on %s: order %s took %d more of SKU %s than the master held",
                    ingest.channel.slug,
                    ingest.message.reference,
                    event.shortfall,
                    event.sku_id,
                )
                OversellIncident.objects.get_or_create(
                    event_id=event.pk,
                    defaults={
                        "channel": ingest.channel,
                        "sku_id": event.sku_id,
                        "listing_id": listing.pk,
                        "order_reference": ingest.message.reference,
                        "shortfall": event.shortfall,
                        "receipt": ingest.receipt,
                    },
                )
        # The channel took the units off its own count when it sold them.
        _shift_expected_channel_quantity(
            listing_id=listing.pk,
            delta=-line.quantity,
            explained_by=ingest.explanation,
            occurred_at=ingest.message.occurred_at,
        )
    if sold_sku_ids:
        # Once the sale is committed, and in a transaction of its own (the guard's lock
        # order is a buffer edit's: rule, then outbox rows).
        channel = ingest.channel
        transaction.on_commit(
            lambda: velocity.observe_sales(channel=channel, sku_ids=sold_sku_ids),
            robust=True,
        )


def _bundle_events(ingest: _Ingest, key: str) -> list[InventoryEvent]:
    """The component events of a bundle line's change: keyed ``<key>:<sku>:<location>``.

    Found through the order's reference (indexed); a prefix match alone could use no index.
    """
    return list(
        InventoryEvent.objects.filter(
            external_reference=ingest.message.reference, idempotency_key__startswith=f"{key}:"
        )
    )


def _undo_bundle_line(
    ingest: _Ingest, *, line: MessageLine, idempotency_key: str, restock: bool | None
) -> int:
    """Cancel (``restock=None``) or return a bundle line once: all its components."""
    commits = _bundle_events(ingest, f"{ingest.line_key(line)}:commit")
    if not commits or _bundle_events(ingest, idempotency_key):
        return 0
    listing = _listing_for_line(ingest, line)
    if listing is None or listing.sku_id is None:
        return 0
    if restock is None:
        bundle_services.cancel_sku(
            sku_id=listing.sku_id,
            location_id=commits[0].location_id,
            quantity=line.quantity,
            context=ingest.context(idempotency_key),
        )
    else:
        bundle_services.return_sku(
            sku_id=listing.sku_id,
            location_id=commits[0].location_id,
            quantity=line.quantity,
            restock=restock,
            context=ingest.context(idempotency_key),
        )
    _shift_expected_channel_quantity(
        listing_id=listing.pk,
        delta=line.quantity,
        explained_by=ingest.explanation,
        occurred_at=ingest.message.occurred_at,
    )
    return line.quantity


# For each order line (its SKU and commit key), in one statement: whether the SKU is a
# bundle, whether the line was committed already (as a bundle, its component events are
# keyed ``<key>:<sku>:<location>``), and the location to commit it at: the channel's
# active selling location with the most available, then the lowest pk. A line is not
# split across locations: the marketplace sold it as one line, one place ships it, and
# the fullest avoids a shortfall wherever one location can cover the line.
_ORDER_LINE_FACTS_SQL = """
SELECT EXISTS (SELECT 1 FROM bundles_bundlecomponent WHERE bundle_id = line.sku_id),
       -- Through the order's own events (indexed by reference): a prefix match on the
       -- whole ledger could use no index.
       EXISTS (SELECT 1 FROM inventory_inventoryevent AS event
                WHERE event.external_reference = %(order_reference)s
                  AND (event.idempotency_key = line.commit_key
                       OR starts_with(event.idempotency_key, line.commit_key || ':'))),
       (SELECT sells_from.location_id
          FROM channels_channel_locations AS sells_from
          JOIN inventory_location AS location
            ON location.id = sells_from.location_id AND location.is_active
          LEFT JOIN inventory_stocklevel AS level
            ON level.location_id = sells_from.location_id AND level.sku_id = line.sku_id
         WHERE sells_from.channel_id = %(channel_id)s
         ORDER BY COALESCE(level.on_hand - level.committed - level.reserved, 0) DESC,
                  sells_from.location_id
         LIMIT 1)
  FROM unnest(%(sku_ids)s::bigint[], %(commit_keys)s::text[])
       WITH ORDINALITY AS line(sku_id, commit_key, ordinal)
 ORDER BY line.ordinal
"""


def _order_line_facts(
    *, channel: Channel, order_reference: str, lines: list[tuple[int, str]]
) -> list[tuple[bool, bool, int | None]]:
    """``(is_bundle, committed_already, location_id)`` per ``(sku_id, commit_key)``."""
    if not lines:
        return []
    rows = prepared_sql.fetch(
        _ORDER_LINE_FACTS_SQL,
        {
            "channel_id": channel.pk,
            "order_reference": order_reference,
            "sku_ids": [sku_id for sku_id, _ in lines],
            "commit_keys": [key for _, key in lines],
        },
    )
    return [(bool(bundle), bool(done), location) for bundle, done, location in rows]


def _apply_order_cancelled(ingest: _Ingest) -> None:
    for line in ingest.message.lines:
        cancel_key = f"{ingest.line_key(line)}:cancel"
        if _undo_bundle_line(ingest, line=line, idempotency_key=cancel_key, restock=None):
            continue
        commit = _event(f"{ingest.line_key(line)}:commit")
        listing = _listing_for_line(ingest, line)
        if commit is None:
            # The order is committed (checked under its lock) but not this line: a line
            # that could not be used when the order came, or maps nowhere. Nothing to
            # release; recorded like the order's line was.
            if listing is None or listing.sku_id is None or line.problem:
                _record_unmapped(ingest, line)
            continue
        cancel_key = f"{ingest.line_key(line)}:cancel"
        if _event(cancel_key) is not None:
            continue
        released = _release_committed(ingest, commit=commit, line=line, idempotency_key=cancel_key)
        if released and listing is not None:
            _shift_expected_channel_quantity(
                listing_id=listing.pk,
                delta=released,
                explained_by=ingest.explanation,
                occurred_at=ingest.message.occurred_at,
            )


def _apply_refund(ingest: _Ingest) -> None:
    for line in ingest.message.lines:
        releases = line.stock_effect == StockEffect.RELEASE
        if line.quantity == 0 or line.stock_effect == StockEffect.NONE:
            continue
        refund_key = (
            f"{ingest.order_key}:refund:{ingest.message.sub_reference}:line:{line.reference}"
        )
        if _undo_bundle_line(
            ingest, line=line, idempotency_key=refund_key, restock=None if releases else True
        ):
            continue
        listing = _listing_for_line(ingest, line)
        commit = _event(f"{ingest.line_key(line)}:commit")
        if commit is None:
            # No commit to say where the units were: a gap if it maps nowhere, else an
            # order from before the channel was connected, which the ledger never held.
            if listing is None or listing.sku_id is None:
                _record_unmapped(ingest, line)
            continue
        if _event(refund_key) is not None:
            continue
        if releases:
            restocked = _release_committed(
                ingest, commit=commit, line=line, idempotency_key=refund_key
            )
        else:
            services.return_order(
                sku_id=commit.sku_id,
                location_id=commit.location_id,
                quantity=line.quantity,
                restock=True,
                context=ingest.context(refund_key),
            )
            restocked = line.quantity
        if restocked and listing is not None:
            _shift_expected_channel_quantity(
                listing_id=listing.pk,
                delta=restocked,
                explained_by=ingest.explanation,
                occurred_at=ingest.message.occurred_at,
            )


def _release_committed(
    ingest: _Ingest, *, commit: InventoryEvent, line: MessageLine, idempotency_key: str
) -> int:
    """Release up to the line's quantity, never more than the line still holds committed.

    Shopify reports one cancellation twice (orders/cancelled and a refund with restock
    type "cancel"); capping by what the ledger still holds for the line releases it once.
    """
    quantity = min(line.quantity, _still_committed(ingest, commit=commit, line=line))
    if quantity <= 0:
        return 0
    services.cancel_order(
        sku_id=commit.sku_id,
        location_id=commit.location_id,
        quantity=quantity,
        context=ingest.context(idempotency_key),
    )
    return quantity


def _still_committed(ingest: _Ingest, *, commit: InventoryEvent, line: MessageLine) -> int:
    line_key = ingest.line_key(line)
    refund_line_suffix = f":line:{line.reference}"
    releases = InventoryEvent.objects.filter(
        external_reference=ingest.message.reference,
        kind=EventKind.ORDER_CANCELLED,
        idempotency_key__startswith=f"{ingest.order_key}:",
    ).values_list("idempotency_key", "delta_committed")
    released = sum(
        -delta
        for key, delta in releases
        if key == f"{line_key}:cancel"
        or (key.startswith(f"{ingest.order_key}:refund:") and key.endswith(refund_line_suffix))
    )
    return commit.delta_committed - released


# --- inventory levels --------------------------------------------------------------------


def _apply_inventory_change(ingest: _Ingest) -> None:
    """Note drift when the channel's figure is not the one expected, and push ours back.

    A figure equal to the expected one is the echo of our own push (or of a sale already
    counted): pushing again would echo for ever. Shopify sends a level for every change, our
    own writes included, so a level is also old news when it is stamped before our last
    acknowledged write or no later than the newest channel move ingested, and it is left to
    the next compare-and-set when it arrives while a write to the listing is in flight.
    A move we cannot explain yet may be a sale whose order webhook is still on its way: it
    waits as an unexplained move, as one a compare-and-set found does (channels.pipeline.push), so
    that the order does not move the expected figure a second time.
    """
    for line in ingest.message.lines:
        listing = _listing_for_line(ingest, line)
        if listing is None:
            _record_unmapped(ingest, line)
            continue
        listing_ref = ListingRef(listing.pk, listing.external_id, listing.extra_identifiers)
        if not ingest.connector.level_applies_to(listing=listing_ref, line=line):
            continue  # a level at a location this listing is not pushed to
        state = ListingSyncState.objects.select_for_update().filter(listing_id=listing.pk).first()
        if state is None or state.expected_channel_quantity is None:
            # Never told a figure: nothing was expected, so nothing drifted.
            ListingSyncState.objects.update_or_create(
                listing_id=listing.pk, defaults={"expected_channel_quantity": line.quantity}
            )
        else:
            if _older_than_what_we_know(state, ingest.message.occurred_at):
                continue
            if state.expected_channel_quantity == line.quantity:
                continue
            if _push_in_flight(listing.pk):
                # Compared with the figure expected before that write it would pass for drift;
                # most such levels are the write's own echo. A real edit is still caught:
                # by the next write's compare-and-set, or by reconciliation.
                continue
            _record_channel_drift(
                ingest,
                listing=listing,
                state=state,
                expected=state.expected_channel_quantity,
                found=line.quantity,
            )
        if listing.sku_id is not None:
            outbox.mark_listings_owed(listing_ids=[listing.pk])


def _older_than_what_we_know(state: ListingSyncState, occurred_at: dt.datetime | None) -> bool:
    """Whether the channel's figure is from before our last acknowledged write, or not after
    the newest of its own moves we ingested: either way it has been moved on from since.

    Two moves stamped alike cannot be put in order (Shopify stamps whole seconds), so a
    level stamped like the newest move known is taken as old news: a real edit hidden that
    way is still caught by the next compare-and-set, or by reconciliation. Against our own
    writes the stamp's second is given the benefit of the doubt instead (a figure kept by
    mistake costs one compare-and-set; our write is the very thing it may have replaced).
    """
    if occurred_at is None:
        return False
    pushed_at = state.last_pushed_at
    if pushed_at is not None:
        if occurred_at.microsecond == 0:
            pushed_at = pushed_at.replace(microsecond=0)
        if occurred_at < pushed_at:
            return True
    moved_at = state.last_channel_move_at
    return moved_at is not None and occurred_at <= moved_at


def _push_in_flight(listing_id: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 1 FROM channels_pendingpush WHERE listing_id = %s "
            "AND claimed_until > statement_timestamp()",
            [listing_id],
        )
        return cursor.fetchone() is not None


def _record_channel_drift(
    ingest: _Ingest, *, listing: Listing, state: ListingSyncState, expected: int, found: int
) -> None:
    """Record the level as drift, and the move as unexplained on the (locked) sync state."""
    DriftRecord.objects.create(
        channel=ingest.channel,
        listing=listing,
        expected_quantity=expected,
        channel_quantity=found,
        master_quantity=(
            selectors.explain_listing(listing=listing).listed
            if listing.sku_id is not None
            else None
        ),
        detected_by=DriftRecord.DetectedBy.WEBHOOK,
    )
    moved = found - expected
    now = timezone.now()
    still_unexplained = (
        state.unexplained_channel_moves
        if state.unexplained_moves_until is not None and state.unexplained_moves_until > now
        else 0
    )
    state.expected_channel_quantity = found
    state.channel_moves_total += moved
    state.unexplained_channel_moves = still_unexplained + moved
    state.unexplained_moves_until = now + dt.timedelta(seconds=UNEXPLAINED_MOVES_WAIT_S)
    occurred_at = ingest.message.occurred_at
    if occurred_at is not None and (
        state.last_channel_move_at is None or occurred_at > state.last_channel_move_at
    ):
        # A level reported later but stamped earlier than this one is older news.
        state.last_channel_move_at = occurred_at
    state.save()


def _listing_for_line(ingest: _Ingest, line: MessageLine) -> Listing | None:
    return listing_for_identifiers(
        channel=ingest.channel, connector=ingest.connector, identifiers=line.identifiers
    )


def listing_for_identifiers(
    *, channel: Channel, connector: Connector, identifiers: Mapping[str, str]
) -> Listing | None:
    """The channel's listing the first identifier in the connector's ``identifier_order``
    finds, in any form the connector says a listing may hold it; else None.

    Several listings sharing an identifier: an active one first, then the oldest.
    """
    values = {
        connector.listing_field_of_identifier.get(name, name): value
        for name, value in identifiers.items()
        if value
    }
    for name in connector.identifier_order:
        value = values.get(name)
        if value is None:
            continue
        for candidate in connector.lookup_values(name, value):
            listing = _remembered_listing(channel, name, candidate)
            if listing is None:
                listing = _look_up_listing(channel, name, candidate)
            if listing is not None:
                listing.channel = channel
                return listing
    return None


# The listing an identifier found is remembered for a few seconds, per process. The lookup
# goes through the identifiers' GIN index, which only a plan made for the value can use, so
# it is planned anew for every order line, and planning cost three times the lookup. A
# remembered listing is taken only while it is still the channel's, active and holding the
# identifier: its row's version (``_ROW_VERSION``) is read by its key, and the row itself
# again when that has changed, so an edit, a switch-off or a remap is seen at once. Only
# an older listing given the same identifier is seen up to _FOUND_LISTING_S late.
_FOUND_LISTING_S = 5.0
_FOUND_LISTINGS_KEPT = 100_000


@dataclass(frozen=True)
class _FoundListing:
    listing: Listing  # as its row was at ``version``; each caller gets a copy
    version: str
    until: float  # monotonic


_found_listings: dict[tuple[int, str, str], _FoundListing] = {}

_LISTING_VERSION_SQL = f"""
SELECT {_ROW_VERSION.format(row="listing")}
  FROM channels_listing AS listing
 WHERE listing.id = %(listing_id)s
"""
_LISTING_BY_ID_SQL = f"""
SELECT listing.*, {_ROW_VERSION.format(row="listing")} AS listing_version
  FROM channels_listing AS listing
 WHERE listing.id = %(listing_id)s
"""


def forget_found_listings() -> None:
    """Drop the remembered lookups (tests that count a lookup's queries)."""
    _found_listings.clear()


def _remembered_listing(channel: Channel, name: str, value: str) -> Listing | None:
    key = (channel.pk, name, value)
    remembered = _found_listings.get(key)
    if remembered is None or remembered.until < time.monotonic():
        return None
    version = prepared_sql.fetch(_LISTING_VERSION_SQL, {"listing_id": remembered.listing.pk})
    if version and version[0][0] == remembered.version:
        return copy.copy(remembered.listing)
    found = prepared_sql.instances(
        Listing, _LISTING_BY_ID_SQL, {"listing_id": remembered.listing.pk}
    )
    if found and _still_found_by(found[0], channel, name, value):
        _remember_found(key, found[0], until=remembered.until)
        return found[0]
    _found_listings.pop(key, None)
    return None


def _remember_found(key: tuple[int, str, str], listing: Listing, *, until: float) -> None:
    if len(_found_listings) >= _FOUND_LISTINGS_KEPT:
        _found_listings.clear()
    _found_listings[key] = _FoundListing(
        listing=copy.copy(listing),
        version=listing.listing_version,  # type: ignore[attr-defined]
        until=until,
    )


def _still_found_by(listing: Listing, channel: Channel, name: str, value: str) -> bool:
    return (
        listing.channel_id == channel.pk
        and listing.is_active
        and _holds_identifier(listing, name, value)
    )


def _look_up_listing(channel: Channel, name: str, value: str) -> Listing | None:
    condition, params = _identifier_condition(name, value)
    # Raw SQL: one of these runs for every order line, and building it through the ORM
    # cost more than running it. Not prepared: a generic plan cannot look into the
    # identifiers' GIN index for a value it does not know, and read every listing of the
    # channel instead (125 ms at 20,000 listings).
    found = list(
        Listing.objects.raw(
            f"SELECT listing.*, {_ROW_VERSION.format(row='listing')} AS listing_version"
            " FROM channels_listing AS listing WHERE channel_id = %(channel_id)s"
            f" AND {condition} ORDER BY is_active DESC, id LIMIT 1",
            {"channel_id": channel.pk, **params},
        )
    )
    if not found:
        return None
    if found[0].is_active:
        _remember_found(
            (channel.pk, name, value), found[0], until=time.monotonic() + _FOUND_LISTING_S
        )
    return found[0]


def _identifier_forms(value: str) -> list[str | int]:
    # Operators and CSV imports store numeric ids as JSON numbers or strings: both are
    # the same identifier.
    if value.isdigit() and str(int(value)) == value:
        return [value, int(value)]
    return [value]


def _identifier_condition(name: str, value: str) -> tuple[str, dict[str, str]]:
    """How a listing holds the value (SQL and its parameters), on an indexed column."""
    if name in ("external_id", "external_sku"):
        return f"{name} = %(value)s", {"value": value}
    # Any other name is a key of extra_identifiers, which one GIN index (jsonb_path_ops)
    # serves for every platform's keys.
    forms = [json.dumps({name: form}) for form in _identifier_forms(value)]
    condition = " OR ".join(
        f"extra_identifiers @> %(form_{index})s::jsonb" for index in range(len(forms))
    )
    return f"({condition})", {f"form_{index}": form for index, form in enumerate(forms)}


def _holds_identifier(listing: Listing, name: str, value: str) -> bool:
    """Whether the listing holds the value as ``_identifier_condition`` asks, in Python."""
    if name in ("external_id", "external_sku"):
        return bool(getattr(listing, name) == value)
    held = (listing.extra_identifiers or {}).get(name)
    # JSON true is no identifier, though Python counts it equal to 1.
    return not isinstance(held, bool) and held in _identifier_forms(value)


def _record_unmapped(ingest: _Ingest, line: MessageLine) -> None:
    UnmappedLine.objects.get_or_create(
        receipt=ingest.receipt,
        line_reference=line.reference,
        defaults={
            "channel": ingest.channel,
            "identifiers": dict(line.identifiers),
            "quantity": line.quantity,
            "reason": line.problem or NO_LISTING,
        },
    )


def _event(idempotency_key: str) -> InventoryEvent | None:
    return InventoryEvent.objects.filter(idempotency_key=idempotency_key).first()


# The part of a channel move already absorbed by a write of ours over it (push.py keeps
# those as unexplained moves for a while): moves of the same sign, up to the move's size.
# Written out in each SET rather than read once in a sub-select: only expressions on the
# target row are evaluated again on its newest version when a concurrent push updated it.
_ABSORBED = """CASE WHEN unexplained_moves_until > statement_timestamp()
                    AND sign(unexplained_channel_moves) = sign(%(delta)s::integer)
               THEN sign(%(delta)s::integer)
                    * least(abs(unexplained_channel_moves), abs(%(delta)s::integer))
               ELSE 0 END"""

# No sync state yet: the channel has never been told a figure, so none is expected. The
# answer is what was absorbed: the row is locked by ``before`` first, so its moves are the
# ones the SET works on.
_SHIFT_EXPECTED_SQL = f"""
WITH before AS (
    SELECT listing_id AS locked_id, unexplained_channel_moves AS moves_before
      FROM channels_listingsyncstate
     WHERE listing_id = %(listing_id)s FOR UPDATE
)
UPDATE channels_listingsyncstate AS state
   SET expected_channel_quantity = expected_channel_quantity + %(delta)s - {_ABSORBED},
       channel_moves_total = channel_moves_total + %(delta)s - {_ABSORBED},
       unexplained_channel_moves = state.unexplained_channel_moves - {_ABSORBED},
       last_channel_move_at = greatest(state.last_channel_move_at, %(occurred_at)s),
       updated_at = statement_timestamp()
  FROM before
 WHERE state.listing_id = before.locked_id
RETURNING before.moves_before - state.unexplained_channel_moves
"""


def _shift_expected_channel_quantity(
    *, listing_id: int, delta: int, explained_by: str, occurred_at: dt.datetime | None
) -> None:
    """The channel's own sale (cancel, restock) moved its figure: expect that too.

    Unless a write of ours already covered it: a compare-and-set that found the sale
    before its webhook came wrote our figure over it (push.py), and recorded it as drift;
    that drift is explained now, by ``explained_by``.
    """
    rows = prepared_sql.fetch(
        _SHIFT_EXPECTED_SQL,
        {"listing_id": listing_id, "delta": delta, "occurred_at": occurred_at},
    )
    if rows and rows[0][0]:
        _explain_drift(listing_id=listing_id, absorbed=rows[0][0], explained_by=explained_by)


# The absorbed units put against the listing's recent drift of the same sign, oldest first,
# each taking what is left of the absorbed units up to what it moved and is not explained
# yet. One statement: this runs for every sale a push had written over, and the same
# walk through the ORM (a read, then a save per record) cost more than the sale's commit.
_EXPLAIN_DRIFT_SQL = """
WITH open AS (
    SELECT drift.id, drift.created_at,
           abs(drift.channel_quantity - drift.expected_quantity) - drift.explained_units
               AS open_units
      FROM channels_driftrecord AS drift
     WHERE drift.listing_id = %(listing_id)s
       AND drift.created_at >= statement_timestamp() - make_interval(secs => %(window_s)s)
       AND sign(drift.channel_quantity - drift.expected_quantity) = sign(%(absorbed)s::integer)
       AND abs(drift.channel_quantity - drift.expected_quantity) > drift.explained_units
       FOR UPDATE
), taken AS (
    SELECT id,
           least(open_units,
                 abs(%(absorbed)s::integer)
                 - coalesce(sum(open_units) OVER (ORDER BY created_at, id
                                                  ROWS BETWEEN UNBOUNDED PRECEDING
                                                           AND 1 PRECEDING), 0)) AS units
      FROM open
)
UPDATE channels_driftrecord AS drift
   SET explained_units = drift.explained_units + taken.units,
       explained_by = left(concat_ws(', ', nullif(drift.explained_by, ''),
                                     nullif(%(explained_by)s, '')), 500)
  FROM taken
 WHERE drift.id = taken.id AND taken.units > 0
"""


def _explain_drift(*, listing_id: int, absorbed: int, explained_by: str) -> None:
    """Put the absorbed units against the listing's recent drift (``_EXPLAIN_DRIFT_SQL``)."""
    prepared_sql.fetch(
        _EXPLAIN_DRIFT_SQL,
        {
            "listing_id": listing_id,
            "absorbed": absorbed,
            "explained_by": explained_by,
            "window_s": 2 * UNEXPLAINED_MOVES_WAIT_S,
        },
    )


# --- lines mapped later --------------------------------------------------------------------


def reapply_receipt(*, receipt_id: int) -> str:
    """Apply a processed order message again, inside the caller's transaction, for its
    lines that waited for a listing and map now; the status it ends in.

    Exactly once: every line's change is keyed by its order and line, and those keys are
    checked under the order's lock, so a line applied before (now or the first time) is
    skipped. A line that still maps nowhere is recorded as it was. Only order messages
    (orders, cancellations, refunds) are applied again: a level report is old news by now,
    and the listing it named is owed a push once it is mapped.
    """
    receipt = (
        WebhookReceipt.objects.select_for_update().select_related("channel").get(pk=receipt_id)
    )
    if receipt.status != WebhookReceipt.Status.PROCESSED:
        return receipt.status
    connector = get_connector(receipt.channel)
    message = _parse(connector, receipt)
    if message.kind not in _ORDER_KINDS:
        return receipt.status
    ingest = _Ingest(
        receipt=receipt, channel=receipt.channel, connector=connector, message=message
    )
    _lock_order(ingest.order_key)
    status = _apply_order_message(ingest)
    if status != receipt.status:
        _set_status(receipt.pk, status)
    return status
