"""The connector base class: it owns the flow, a platform supplies the steps.

As django-anymail's backends do, ``Connector.push_quantities`` always runs the same steps:
refuse what the platform cannot take (``_refusal``), drop compare figures where the
platform has no compare-and-set, split into batches of the platform's size, send each
(``_send_batch``), map a batch that failed after an earlier one went through to per-item
retries, and read back the channel's figure for stale items that came without one. A
platform package implements the steps and its wire format, nothing of the outbox, retries
or the ledger (``channels.pipeline`` does those).

Errors are translated at the boundary into one set of classes for every platform:
``ChannelThrottled`` (hold off, no attempt counted), ``ChannelError`` (the call failed as a
whole: retried with backoff), ``ChannelAuthError``, and per item ``ItemStatus.REJECTED``
(refused for good: a dead letter at once) or ``RETRY``. An update the platform would refuse
only for now (a daily cap) is ``HELD`` until a time, without being sent (``_hold``).

An answer the connector cannot make sense of (a non-numeric or impossible quantity, a
missing field) is not the channel being down: ``UnreadableAnswer``, which the pipeline
counts against the items of that call alone (``channels.pipeline.push``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, ClassVar, TypeVar

from django.conf import settings
from django.utils import timezone

from channels.connectors.types import (
    Capability,
    Hold,
    ItemResult,
    ItemStatus,
    ListingRef,
    MarketplaceStockCount,
    MessageLine,
    PulledNotification,
    QuantityUpdate,
    RateBudget,
    SubmissionRef,
    WebhookEnvelope,
    WebhookMessage,
)

if TYPE_CHECKING:
    from channels.models import Channel

_Item = TypeVar("_Item")


class ChannelError(Exception):
    """The channel could not take the call at all (5xx, timeout, connection refused...).

    The whole batch is retried later; ``retry_after_s`` is the channel's own hint, if any.
    """

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ChannelThrottled(ChannelError):
    """The channel's rate limit refused the call (429, Shopify THROTTLED...)."""


class ChannelAuthError(ChannelError):
    """The channel refused the credentials (401/403): retrying will not help soon."""


class UnreadableAnswer(Exception):
    """The channel answered, but with something that cannot be read: garbage, a figure out
    of any possible range, a field missing. Not a ``ChannelError``: the channel is up, and
    what failed is the call's items, not the channel (no breaker, no backoff for others).
    """


# The most units a channel's figure may hold: what the quantity columns can store. A figure
# beyond it, either way, is garbage, never a quantity.
MAX_CHANNEL_QUANTITY = 2_147_483_647


def checked_quantity(value: object, *, what: str) -> int | None:
    """A figure from a channel, as an int; None stays None (unknown). Raises
    ``UnreadableAnswer`` for anything else: text, a bool, a float, out of range."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise UnreadableAnswer(f"{what}: {value!r:.80} is not a whole number of units.")
    if abs(value) > MAX_CHANNEL_QUANTITY:
        raise UnreadableAnswer(f"{what}: {value} units is beyond any possible quantity.")
    return value


class UnsupportedCapability(NotImplementedError):
    """A step the pipeline asked of a platform that did not declare the capability."""

    def __init__(self, connector: Connector, capability: Capability) -> None:
        super().__init__(f"{connector.platform} does not support {capability}.")


class Connector:
    """One instance per channel, built by ``channels.connectors.registry.get_connector``.

    The class states what is known about the platform (``platform``, ``max_batch_size``,
    ``capabilities``...); the instance holds one channel's credentials and settings.
    """

    platform: ClassVar[str]
    capabilities: ClassVar[frozenset[Capability]] = frozenset()
    # The platform's own API domains: a channel's calls go to these (or hosts below them)
    # over https and nowhere else (``channels.connectors.outbound``).
    api_domains: ClassVar[tuple[str, ...]] = ()
    # Most items one write call may carry; a channel may lower it (``max_batch_size`` in
    # its platform settings), never raise it.
    max_batch_size: ClassVar[int] = 100
    # Most listings one read call may ask about.
    max_read_batch_size: ClassVar[int] = 100
    # Listing identifiers tried, in order, to map a message line to a listing
    # ("external_id" means Listing.external_id, "external_sku" Listing.external_sku, any
    # other name a key of Listing.extra_identifiers).
    identifier_order: ClassVar[tuple[str, ...]] = ("external_id", "external_sku")
    # Line identifiers named after the listing field they match ("sku" holds what
    # Listing.external_sku does); a name not here is its own.
    listing_field_of_identifier: ClassVar[Mapping[str, str]] = {"sku": "external_sku"}
    # Webhook headers stored with a receipt (lower case; a name ending in "-" is a prefix).
    # Never credentials: Authorization is kept only by a platform that signs in it.
    kept_headers: ClassVar[tuple[str, ...]] = ("content-type",)
    # ASYNC_WRITES: how long after a submission its outcome is first asked for.
    submission_poll_interval_s: float = 30.0
    # How long after an event the platform may still deliver the order it is about: a
    # cancellation or refund that comes first waits that long for it.
    order_redelivery_window_s: ClassVar[float] = 4 * 3600.0
    # ORDER_POLL: the topic of the polled events that place an order (those already
    # committed through webhooks are not stored again).
    order_placed_topic: ClassVar[str] = "orders/create"
    # The platform's webhook signature covers a timestamp (``signed_timestamp``): a
    # delivery signed too long ago, or too far ahead, is refused.
    signs_timestamp: ClassVar[bool] = False
    # QUEUE_NOTIFICATIONS: most messages one pull takes.
    max_notifications_per_pull: ClassVar[int] = 10
    # How long after an acknowledged write the platform's reads may still show the figure
    # before it (eventually consistent reads): reconciliation does not judge a listing
    # pushed that recently.
    read_after_write_lag_s: ClassVar[float] = 0.0

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        configured = (channel.platform_settings or {}).get("max_batch_size")
        self.batch_size = max(1, min(int(configured or self.max_batch_size), self.max_batch_size))

    def has(self, capability: Capability) -> bool:
        return capability in self.capabilities

    # -- Writes: the flow ----------------------------------------------------------------

    def push_quantities(self, updates: Sequence[QuantityUpdate]) -> list[ItemResult]:
        """Send absolute quantities; one result per update, in input order.

        Raises ``ChannelError`` (or a subclass) only when nothing got through: the first
        batch failed as a whole. A later batch that fails leaves its items (and the rest)
        to retry, so an applied batch is never counted as failed.
        """
        results: dict[int, ItemResult] = {}
        sendable: list[int] = []
        for position, update in enumerate(updates):
            refusal = self._refusal(update)
            hold = None if refusal else self._hold(update)
            if refusal:
                results[position] = ItemResult(update.listing_id, ItemStatus.REJECTED, refusal)
            elif hold is not None:
                results[position] = ItemResult(
                    update.listing_id, ItemStatus.HELD, hold.reason, hold_until=hold.until
                )
            else:
                sendable.append(position)
        compare_and_set = self.has(Capability.COMPARE_AND_SET)
        outgoing = [
            updates[position]
            if compare_and_set or updates[position].compare_quantity is None
            else dataclasses.replace(updates[position], compare_quantity=None)
            for position in sendable
        ]
        sent_any = False
        for batch_positions, batch in zip(
            _chunks(sendable, self.batch_size), _chunks(outgoing, self.batch_size), strict=True
        ):
            try:
                answered = self._send_batch(batch)
            except ChannelError as error:
                if not sent_any:
                    raise
                self._retry_the_rest(updates, sendable, results, str(error))
                break
            except Exception as error:
                # Garbage in the answer (a parser's ValueError, KeyError, TypeError...).
                raise UnreadableAnswer(
                    f"{self.platform} answered a write with something unreadable: "
                    f"{type(error).__name__}: {error}"
                ) from error
            sent_any = True
            for position, update, result in _aligned(batch_positions, batch, answered):
                results[position] = _checked_result(result) or ItemResult(
                    update.listing_id, ItemStatus.RETRY, "The platform gave no result for it."
                )
        self._read_back_stale(updates, results)
        return [results[position] for position in range(len(updates))]

    def _retry_the_rest(
        self,
        updates: Sequence[QuantityUpdate],
        sendable: list[int],
        results: dict[int, ItemResult],
        error: str,
    ) -> None:
        for position in sendable:
            if position not in results:
                results[position] = ItemResult(
                    updates[position].listing_id, ItemStatus.RETRY, error
                )

    def _read_back_stale(
        self, updates: Sequence[QuantityUpdate], results: dict[int, ItemResult]
    ) -> None:
        """Fill in the channel's figure for stale items whose answer did not carry it."""
        unknown = [
            position
            for position, result in results.items()
            if result.status == ItemStatus.STALE and result.actual_quantity is None
        ]
        if not unknown:
            return
        refs = [
            ListingRef(updates[p].listing_id, updates[p].external_id, updates[p].extra_identifiers)
            for p in unknown
        ]
        try:
            found = self.read_quantities(refs)
        except ChannelError:
            return  # the pipeline then treats the item as failed, and tries it again
        except Exception:
            # Garbage about one listing must not cost the others their figures: each is
            # read alone, and one whose figure cannot be read fails by itself.
            found = self._read_one_by_one(updates, unknown, refs, results)
        for position in unknown:
            if results[position].status != ItemStatus.STALE:
                continue
            results[position] = dataclasses.replace(
                results[position], actual_quantity=found.get(updates[position].listing_id)
            )

    def _read_one_by_one(
        self,
        updates: Sequence[QuantityUpdate],
        positions: Sequence[int],
        refs: Sequence[ListingRef],
        results: dict[int, ItemResult],
    ) -> dict[int, int | None]:
        found: dict[int, int | None] = {}
        for position, ref in zip(positions, refs, strict=True):
            try:
                found.update(self.read_quantities([ref]))
            except ChannelError:
                continue
            except Exception as error:
                results[position] = ItemResult(
                    updates[position].listing_id,
                    ItemStatus.RETRY,
                    f"{self.platform} answered its figure with something unreadable: "
                    f"{type(error).__name__}: {error}"[:2000],
                )
        return found

    def _refusal(self, update: QuantityUpdate) -> str:
        """Why the platform could never take this update ("" when it could)."""
        return ""

    def _hold(self, update: QuantityUpdate) -> Hold | None:
        """When the platform would take this update, if not now (None: send it now)."""
        return None

    def _send_batch(self, updates: Sequence[QuantityUpdate]) -> list[ItemResult]:
        """One write call of at most ``batch_size`` updates; a result per update, in order.

        Raises ``ChannelError`` (or a subclass) when the call as a whole failed.
        """
        raise NotImplementedError

    def rate_budget(self) -> RateBudget | None:
        """What the platform's latest answer said is left of its rate limit (None: it says
        nothing, or nothing was called yet). The pipeline feeds it to the channel's shared
        bucket, so every worker holds off before the platform starts refusing."""
        return None

    # -- Reads ---------------------------------------------------------------------------

    def read_quantities(self, listings: Sequence[ListingRef]) -> dict[int, int | None]:
        """The channel's sellable quantity per listing id (None: not found), in batches."""
        quantities: dict[int, int | None] = {}
        for batch in _chunks(list(listings), self.max_read_batch_size):
            for listing_id, quantity in self._read_batch(batch).items():
                quantities[listing_id] = checked_quantity(
                    quantity, what=f"{self.platform}'s figure for listing {listing_id}"
                )
        return quantities

    def _read_batch(self, listings: Sequence[ListingRef]) -> dict[int, int | None]:
        """One read of at most ``max_read_batch_size`` listings."""
        raise NotImplementedError

    def read_submissions(self, submissions: Sequence[SubmissionRef]) -> list[ItemResult]:
        """ASYNC_WRITES: the outcome of each item submitted earlier, in order (PENDING while
        the platform has not applied it yet)."""
        raise UnsupportedCapability(self, Capability.ASYNC_WRITES)

    # -- Inbound -------------------------------------------------------------------------

    def verify_webhook(self, headers: Mapping[str, str], body: bytes) -> bool:
        """Whether the delivery is signed with one of the channel's accepted secrets (the
        current one, and the previous one while a rotation lets it count) and, where the
        platform signs a timestamp (``signs_timestamp``), whether it was signed within
        ``WEBHOOK_TIMESTAMP_TOLERANCE_S`` of now: a captured delivery replayed later is
        refused like a forged one."""
        now = timezone.now()
        if not any(
            self._signature_matches(secret=secret, headers=headers, body=body)
            for secret in self.channel.webhook_secrets(now)
        ):
            return False
        if not self.signs_timestamp:
            return True
        signed_at = self.signed_timestamp(headers, body)
        tolerance_s: float = settings.WEBHOOK_TIMESTAMP_TOLERANCE_S
        return signed_at is not None and abs(now.timestamp() - signed_at) <= tolerance_s

    def signed_timestamp(self, headers: Mapping[str, str], body: bytes) -> float | None:
        """``signs_timestamp``: when the delivery was signed, in seconds since the epoch, as
        the signature covers it (None: it carries none, and is refused)."""
        raise NotImplementedError

    def webhook_contradiction(self, topic: str, body: bytes) -> str:
        """Why the body is not what its topic says ("" when it is), where the topic comes
        from outside what is signed (a header, an unsigned part of the body): a captured
        order resent as a cancellation is refused this way, never applied. A body that
        cannot be read at all is not a contradiction: ingest quarantines it with its
        reason."""
        return ""

    def acts_on_topic(self, topic: str) -> bool:
        """Whether a topic changes what is done with a body (any topic, unless the platform
        says which): two deliveries of one body differ only by such topics."""
        return True

    def webhook_content_key(self, topic: str, body: bytes) -> str:
        """What two deliveries of one event share whatever delivery ids they carry: the
        SHA-256 of the body and of the topic (which tells an order placed from the same
        order cancelled), a topic not acted on counting as none, so that one body resent
        under made-up topics is stored once more at most."""
        digest = hashlib.sha256((topic if self.acts_on_topic(topic) else "").encode())
        digest.update(b"\n")
        digest.update(body)
        return digest.hexdigest()

    def _signature_matches(self, *, secret: str, headers: Mapping[str, str], body: bytes) -> bool:
        """The platform's signature over the raw bytes, compared in constant time."""
        raise UnsupportedCapability(self, Capability.HTTP_WEBHOOKS)

    def answer_challenge(
        self, *, query: Mapping[str, str], endpoint_url: str
    ) -> dict[str, str] | None:
        """The JSON a platform's endpoint validation (a GET of the webhook URL) expects, or
        None where the platform validates no endpoint or the query is not its challenge."""
        return None

    def webhook_envelope(self, headers: Mapping[str, str], body: bytes) -> WebhookEnvelope:
        """Topic and dedupe key, from headers alone where the platform allows."""
        raise UnsupportedCapability(self, Capability.HTTP_WEBHOOKS)

    def parse_webhook(self, topic: str, body: bytes) -> WebhookMessage:
        """Turn a verified body into a message; ``WebhookParseError`` if it cannot."""
        raise NotImplementedError

    def kept_webhook_headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        """The delivery's headers worth storing with its receipt (``kept_headers``)."""
        exact = {name for name in self.kept_headers if not name.endswith("-")}
        prefixes = tuple(name for name in self.kept_headers if name.endswith("-"))
        return {
            name: value
            for name, value in headers.items()
            if (name.lower() in exact or (prefixes and name.lower().startswith(prefixes)))
            # PostgreSQL cannot store a NUL byte in text: such a header is not kept.
            and "\x00" not in value
        }

    def pull_notifications(self, *, max_messages: int) -> list[PulledNotification]:
        """QUEUE_NOTIFICATIONS: up to ``max_messages`` messages waiting on the queue; they
        come back unless acknowledged."""
        raise UnsupportedCapability(self, Capability.QUEUE_NOTIFICATIONS)

    def acknowledge_notifications(self, receipt_handles: Sequence[str]) -> None:
        """QUEUE_NOTIFICATIONS: the messages are stored; the queue may forget them."""
        raise UnsupportedCapability(self, Capability.QUEUE_NOTIFICATIONS)

    def poll_orders(self, *, since: dt.datetime) -> list[PulledNotification]:
        """ORDER_POLL: every order changed since then, as the events that would have
        announced it (placed, cancelled, refunded), each with a stable dedupe key."""
        raise UnsupportedCapability(self, Capability.ORDER_POLL)

    def read_marketplace_stock(self, *, since: dt.datetime | None) -> list[MarketplaceStockCount]:
        """MARKETPLACE_STOCK: the channel's counts of the stock it holds, changed since then
        (all of them for None)."""
        raise UnsupportedCapability(self, Capability.MARKETPLACE_STOCK)

    def fetch_order(self, reference: str) -> WebhookMessage:
        """ORDER_LOOKUP: the order with its lines, for a notification that named it only."""
        raise UnsupportedCapability(self, Capability.ORDER_LOOKUP)

    def fetch_refund(self, *, order_reference: str, refund_reference: str) -> WebhookMessage:
        """ORDER_LOOKUP: the refund (a cancellation of some lines, a return) with its lines
        and what each does to stock, for a notification that named it only."""
        raise UnsupportedCapability(self, Capability.ORDER_LOOKUP)

    # -- Matching messages to listings ---------------------------------------------------

    def lookup_values(self, identifier: str, value: str) -> tuple[str, ...]:
        """The forms a listing may store a line's identifier in (a numeric id and its
        platform-qualified form name the same item)."""
        return (value,)

    def level_applies_to(self, *, listing: ListingRef, line: MessageLine) -> bool:
        """Whether a stock-level line is about the stock this listing is pushed to (the
        same location, where the platform has several)."""
        return True


def _checked_result(result: ItemResult | None) -> ItemResult | None:
    """An item's result whose figure is impossible becomes a retry of that item alone."""
    if result is None:
        return None
    try:
        checked_quantity(result.actual_quantity, what="the figure it answered")
    except UnreadableAnswer as error:
        return ItemResult(result.listing_id, ItemStatus.RETRY, str(error))
    return result


def _chunks(items: Sequence[_Item], size: int) -> Iterator[Sequence[_Item]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _aligned(
    positions: Sequence[int], updates: Sequence[QuantityUpdate], answered: Sequence[ItemResult]
) -> Iterator[tuple[int, QuantityUpdate, ItemResult | None]]:
    """Each update with its result: by position when the platform answered one for each and
    in order, else by listing id (a result for another listing is never taken)."""
    if len(answered) == len(updates) and all(
        result.listing_id == update.listing_id
        for result, update in zip(answered, updates, strict=True)
    ):
        yield from zip(positions, updates, answered, strict=True)
        return
    by_listing = {result.listing_id: result for result in answered}
    for position, update in zip(positions, updates, strict=True):
        yield position, update, by_listing.get(update.listing_id)
