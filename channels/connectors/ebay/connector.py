"""eBay: absolute quantities through ``bulk_update_price_quantity``, Platform Notifications in.

Wire facts cite ``CHANNEL_APIS.md`` §5 (shared folder). The simulator in
``channels.simulators.ebay`` speaks the same dialect.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from django.core.cache import cache

from channels.connectors import http
from channels.connectors.base import ChannelError, Connector
from channels.connectors.ebay import notifications, webhooks
from channels.connectors.ebay.client import API_DOMAINS, EbayClient, error_message, errors_text
from channels.connectors.types import (
    Capability,
    Hold,
    ItemResult,
    ItemStatus,
    ListingRef,
    PulledNotification,
    QuantityUpdate,
    WebhookEnvelope,
    WebhookMessage,
    WebhookParseError,
)

if TYPE_CHECKING:
    from channels.models import Channel

logger = logging.getLogger(__name__)

INVENTORY = "/sell/inventory/v1"
NOTIFICATION = "/commerce/notification/v1"
# EB3: a public key is kept about an hour (fetching one per message would spend the app's
# call limits); an unknown key id is remembered as unknown for five minutes.
PUBLIC_KEY_CACHE_S = 3600
UNKNOWN_KEY_CACHE_S = 300
DEFAULT_READ_TIMEOUT_S = 10.0
# §5.2: a listing may be revised 250 times a calendar day.
DEFAULT_REVISION_CAP = 250
# §5.2 [M]: the simulator's error id for a listing at its cap (eBay's is not documented);
# the message is matched too.
REVISION_CAP_ERROR_ID = 25099
ORDERS_PAGE = 200
# How long a day's revision count is kept: past the day, with room for clock skew.
REVISION_COUNT_TTL_S = 2 * 86_400
# The share of a listing's daily revisions, at the end, over which its writes are spaced.
NEAR_CAP_SHARE = 0.2
# A spaced listing is looked at again this often (a sell-out must not wait the spacing).
NEAR_CAP_RECHECK_S = 60


class EbayConnector(Connector):
    """eBay (the Sell Inventory API).

    Listings: ``external_id`` is the seller SKU (the inventory item's key);
    ``extra_identifiers["offer_ids"]`` lists its published offers (looked up with
    ``GET /offer?sku=`` when absent). Order lines carry the SKU and the eBay item id
    (``item_id``).

    Writes are absolute (§5.2: no compare-and-set), 25 requests a call, each setting the
    item's quantity and every published offer's: a buyer sees ``min(item, offer)``. Each
    request has its own status: a 207 answer is a partial success, its failed entries
    retried (5xx) or refused (4xx). A listing may be revised ``revision_cap`` times a UTC
    day: the connector counts its own revisions per listing and day, spaces a listing's
    writes near the cap, and at the cap holds the listing until the next UTC day
    (``ItemStatus.HELD``, shown to the operator), as it does when eBay reports the cap.

    ``platform_settings``: ``token_url`` (default ``<api_base_url>/identity/v1/oauth2/
    token``), ``timeout_s`` (read timeout, default 10), ``revision_cap`` (default 250),
    ``max_batch_size`` (at most 25). ``credentials``: ``client_id`` (the AppID),
    ``client_secret`` (the CertID), ``refresh_token``, ``dev_id`` (the DevID),
    ``verification_token`` (the Notification API endpoint's, for eBay's challenge). The
    channel's webhook secret is the CertID: Platform Notifications are signed with it
    (§5.1); Notification API deliveries are signed with eBay's ECDSA keys instead.
    """

    platform = "ebay"
    api_domains = API_DOMAINS
    capabilities = frozenset({Capability.HTTP_WEBHOOKS, Capability.ORDER_POLL})
    max_batch_size = 25
    max_read_batch_size = 25
    identifier_order = ("external_id", "external_sku", "item_id")
    listing_field_of_identifier = {"sku": "external_id"}
    kept_headers = ("content-type", "soapaction", notifications.SIGNATURE_HEADER)
    # §5.1: the NotificationSignature is computed over the SOAP body's Timestamp.
    signs_timestamp = True
    order_placed_topic = webhooks.FIXED_PRICE_TRANSACTION
    # §5.1: eBay retries an unacknowledged notification; for how long is not documented [M].
    order_redelivery_window_s = 24 * 3600.0

    def __init__(self, channel: Channel) -> None:
        super().__init__(channel)
        settings: Mapping[str, Any] = channel.platform_settings or {}
        credentials: Mapping[str, Any] = channel.credentials or {}
        self.revision_cap = int(settings.get("revision_cap") or DEFAULT_REVISION_CAP)
        self.app_id = str(credentials.get("client_id", ""))
        self.dev_id = str(credentials.get("dev_id", ""))
        self._client_secret = str(credentials.get("client_secret", ""))
        self.verification_token = str(credentials.get("verification_token", ""))
        self.notification_endpoint_url = str(settings.get("notification_endpoint_url") or "")
        self.client = EbayClient(
            base_url=channel.api_base_url,
            token_url=str(settings.get("token_url") or ""),
            client_id=self.app_id,
            client_secret=str(credentials.get("client_secret", "")),
            refresh_token=str(credentials.get("refresh_token", "")),
            read_timeout_s=float(settings.get("timeout_s") or DEFAULT_READ_TIMEOUT_S),
        )

    # -- Writes ------------------------------------------------------------------------------

    def _revision_key(self, listing_id: int, *, last: bool = False) -> str:
        day = utc_now().date().isoformat()
        kind = "last-revision" if last else "revisions"
        return f"ebay:{kind}:{self.channel.pk}:{listing_id}:{day}"

    def revisions_today(self, listing_id: int) -> int:
        """How many writes this listing took today (UTC), as counted here."""
        return int(cache.get(self._revision_key(listing_id)) or 0)

    def _count_revision(self, listing_id: int) -> None:
        key = self._revision_key(listing_id)
        cache.add(key, 0, timeout=REVISION_COUNT_TTL_S)
        try:
            cache.incr(key)
        except ValueError:  # expired between the two calls
            cache.set(key, 1, timeout=REVISION_COUNT_TTL_S)
        cache.set(
            self._revision_key(listing_id, last=True),
            utc_now().timestamp(),
            timeout=REVISION_COUNT_TTL_S,
        )

    def _hold(self, update: QuantityUpdate) -> Hold | None:
        """§5.2: a listing revised ``revision_cap`` times today waits for the next UTC day.

        Near the cap (its last ``NEAR_CAP_SHARE`` of revisions) the listing's writes are
        spaced so that what is left lasts the day: a change coalesces with the ones after
        it into one write. A listing selling out (quantity 0) is never spaced, and the last
        revision of the day is kept for one: buyers must not buy what is gone.
        """
        now = utc_now()
        midnight = dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time(), dt.UTC)
        left = self.revision_cap - self.revisions_today(update.listing_id)
        if left <= 0 or (left == 1 and update.quantity > 0):
            return Hold(until=midnight, reason=_cap_message(self.revision_cap, left))
        if update.quantity == 0 or left > max(1, int(self.revision_cap * NEAR_CAP_SHARE)):
            return None
        last = cache.get(self._revision_key(update.listing_id, last=True))
        if last is None:
            return None
        spacing_s = (midnight - now).total_seconds() / left
        due = dt.datetime.fromtimestamp(float(last), dt.UTC) + dt.timedelta(seconds=spacing_s)
        if due <= now:
            return None
        # Looked at again within a minute: a sell-out that came meanwhile goes out then.
        return Hold(
            until=min(due, now + dt.timedelta(seconds=NEAR_CAP_RECHECK_S)),
            reason=(
                f"Spaced: {left} of eBay's {self.revision_cap} daily revisions left for "
                f"this listing (§5.2), so its changes go out together every "
                f"{spacing_s / 60:.0f} min until midnight UTC; a sell-out goes at once."
            ),
        )

    def _send_batch(self, updates: Sequence[QuantityUpdate]) -> list[ItemResult]:
        """One ``bulk_update_price_quantity`` call (§5.2); a result per update."""
        results: dict[int, ItemResult] = {}
        requests = []
        sent: list[QuantityUpdate] = []
        for update in updates:
            offer_ids = self._offer_ids(update)
            if offer_ids is None:
                results[update.listing_id] = ItemResult(
                    update.listing_id, ItemStatus.REJECTED, "eBay has no item with this SKU."
                )
                continue
            if not offer_ids:
                results[update.listing_id] = ItemResult(
                    update.listing_id,
                    ItemStatus.REJECTED,
                    "The item has no published offer (§5.2: only published offers take "
                    "bulk updates; publish it or use updateOffer).",
                )
                continue
            requests.append(
                {
                    "sku": update.external_id,
                    "shipToLocationAvailability": {"quantity": update.quantity},
                    "offers": [
                        {"offerId": offer_id, "availableQuantity": update.quantity}
                        for offer_id in offer_ids
                    ],
                }
            )
            sent.append(update)
        if requests:
            response = self.client.call(
                "POST", f"{INVENTORY}/bulk_update_price_quantity", json={"requests": requests}
            )
            results |= self._entry_results(sent, response)
        return [results[update.listing_id] for update in updates]

    def _entry_results(
        self, sent: Sequence[QuantityUpdate], response: Any
    ) -> dict[int, ItemResult]:
        """§5.2: every entry's ``statusCode``, gathered per SKU (one entry per offer)."""
        body = http.json_object(response) or {}
        if response.status_code not in (200, 207):
            # The call as a whole was refused for its content: sent again it fails again.
            message = f"HTTP {response.status_code}: {error_message(response)}"
            return {
                u.listing_id: ItemResult(u.listing_id, ItemStatus.REJECTED, message) for u in sent
            }
        by_sku: dict[str, list[Mapping[str, Any]]] = {}
        for entry in body.get("responses") or []:
            if isinstance(entry, dict):
                by_sku.setdefault(str(entry.get("sku", "")), []).append(entry)
        results = {}
        for update in sent:
            entries = by_sku.get(update.external_id)
            results[update.listing_id] = self._entry_result(update, entries)
        return results

    def _entry_result(
        self, update: QuantityUpdate, entries: list[Mapping[str, Any]] | None
    ) -> ItemResult:
        if not entries:
            return ItemResult(update.listing_id, ItemStatus.RETRY, "eBay gave no status for it.")
        failed = [e for e in entries if _status(e) != 200]
        if not failed:
            self._count_revision(update.listing_id)
            return ItemResult(update.listing_id, ItemStatus.APPLIED)
        errors = [
            error for e in failed for error in e.get("errors") or [] if isinstance(error, dict)
        ]
        message = f"HTTP {_status(failed[0])}: {errors_text(errors) or 'no reason given'}"
        if any(_is_revision_cap(error) for error in errors):
            # eBay counted more revisions than this channel did (another tool revised it).
            now = utc_now()
            return ItemResult(
                update.listing_id,
                ItemStatus.HELD,
                _cap_message(self.revision_cap, 0),
                hold_until=dt.datetime.combine(
                    now.date() + dt.timedelta(days=1), dt.time(), dt.UTC
                ),
            )
        if any(_status(e) >= 500 or _status(e) == 429 for e in failed):
            return ItemResult(update.listing_id, ItemStatus.RETRY, message)
        return ItemResult(update.listing_id, ItemStatus.REJECTED, message)

    def _offer_ids(self, update: QuantityUpdate) -> list[str] | None:
        """The item's published offers: the listing's own, else asked of eBay (None: eBay
        has no such SKU)."""
        known = update.extra_identifiers.get("offer_ids")
        if isinstance(known, list) and known:
            return [str(offer_id) for offer_id in known]
        offers = self._offers(update.external_id)
        if offers is None:
            return None
        return [str(o["offerId"]) for o in offers if o.get("status") == "PUBLISHED"]

    def _offers(self, sku: str) -> list[Mapping[str, Any]] | None:
        """§5.3: ``GET /offer?sku=``; None for a SKU eBay does not know."""
        response = self.client.call("GET", f"{INVENTORY}/offer", params={"sku": sku})
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise ChannelError(
                f"eBay answered HTTP {response.status_code}: {error_message(response)}"
            )
        body = http.json_object(response) or {}
        return [o for o in body.get("offers") or [] if isinstance(o, dict) and o.get("offerId")]

    # -- Reads -------------------------------------------------------------------------------

    def _read_batch(self, listings: Sequence[ListingRef]) -> dict[int, int | None]:
        """What a buyer can buy (§5.2: ``min(item, offer)`` over the published offers):
        ``bulk_get_inventory_item`` for the items, ``GET /offer?sku=`` for each offer."""
        response = self.client.call(
            "POST",
            f"{INVENTORY}/bulk_get_inventory_item",
            json={"requests": [{"sku": listing.external_id} for listing in listings]},
        )
        if response.status_code not in (200, 207):
            raise ChannelError(
                f"eBay answered HTTP {response.status_code}: {error_message(response)}"
            )
        items: dict[str, int] = {}
        for entry in (http.json_object(response) or {}).get("responses") or []:
            if isinstance(entry, dict) and _status(entry) == 200:
                quantity = _item_quantity(entry.get("inventoryItem"))
                if quantity is not None:
                    items[str(entry.get("sku"))] = quantity
        found: dict[int, int | None] = {}
        for listing in listings:
            item_quantity = items.get(listing.external_id)
            if item_quantity is None:
                found[listing.listing_id] = None
                continue
            offers = self._offers(listing.external_id) or []
            quantities = [
                int(o["availableQuantity"])
                for o in offers
                if o.get("status") == "PUBLISHED" and isinstance(o.get("availableQuantity"), int)
            ]
            found[listing.listing_id] = (
                min(item_quantity, *quantities) if quantities else item_quantity
            )
        return found

    # -- Inbound: Platform Notifications (``webhooks``), the Notification API
    # (``notifications``), both at the channel's one webhook URL ------------------------------

    def verify_webhook(self, headers: Mapping[str, str], body: bytes) -> bool:
        """A Notification API delivery by its ECDSA signature (the key of its ``kid``); a
        Platform Notification by its ``NotificationSignature`` (the channel's secrets)."""
        if notifications.is_notification(headers):
            return self._notification_signed(headers, body)
        return super().verify_webhook(headers, body)

    def _signature_matches(self, *, secret: str, headers: Mapping[str, str], body: bytes) -> bool:
        return webhooks.verify_platform_notification(
            body=body, dev_id=self.dev_id, app_id=self.app_id, cert_id=secret
        )

    def _notification_signed(self, headers: Mapping[str, str], body: bytes) -> bool:
        try:
            header = notifications.signature_header(headers)
        except WebhookParseError:
            return False
        key = self._public_key(header.key_id)
        return key is not None and notifications.signature_matches(
            body=body, header=header, key=key
        )

    def _public_key(self, key_id: str) -> notifications.PublicKey | None:
        """eBay's public key ``key_id`` (EB3: ``getPublicKey``, with an application token),
        kept an hour as eBay asks; a key eBay does not know is remembered as unknown for a
        while, so forged key ids do not spend the app's calls. None: unknown or unreachable
        (the delivery is refused and eBay sends it again later)."""
        cache_key = f"ebay:public-key:{self.client.base_url}:{key_id}"
        cached = cache.get(cache_key)
        if cached is not None:
            return notifications.PublicKey(**cached) if cached else None
        try:
            response = self.application_client.call(
                "GET", f"{NOTIFICATION}/public_key/{urllib.parse.quote(key_id, safe='')}"
            )
        except ChannelError as error:
            logger.warning("cannot fetch eBay's public key %r: %s", key_id, error)
            return None
        key = None
        if response.status_code == 200:
            try:
                key = notifications.public_key_of(http.json_object(response) or {})
            except WebhookParseError as error:
                logger.warning("eBay's public key %r is unusable: %s", key_id, error)
        cache.set(
            cache_key,
            {"pem": key.pem, "digest": key.digest} if key else {},
            timeout=PUBLIC_KEY_CACHE_S if key else UNKNOWN_KEY_CACHE_S,
        )
        return key

    @functools.cached_property
    def application_client(self) -> EbayClient:
        """The client that calls as the application (the client-credentials grant)."""
        return EbayClient(
            base_url=self.client.base_url,
            token_url=self.client.token_url,
            client_id=self.app_id,
            client_secret=self._client_secret,
            refresh_token="",
            read_timeout_s=self.client.read_timeout_s,
            application=True,
        )

    def answer_challenge(
        self, *, query: Mapping[str, str], endpoint_url: str
    ) -> dict[str, str] | None:
        """§5.1 (EB5): eBay validates the endpoint with ``GET ?challenge_code=``; answered
        with the hash of the code, the channel's verification token and the endpoint URL
        (``platform_settings["notification_endpoint_url"]`` where a proxy changes it)."""
        code = query.get("challenge_code", "")
        if not code or len(code) > 512 or not self.verification_token:
            return None
        return {
            "challengeResponse": notifications.challenge_response(
                challenge_code=code,
                verification_token=self.verification_token,
                endpoint_url=self.notification_endpoint_url or endpoint_url,
            )
        }

    def webhook_envelope(self, headers: Mapping[str, str], body: bytes) -> WebhookEnvelope:
        if notifications.is_notification(headers):
            return notifications.envelope(body)
        return webhooks.platform_notification_envelope(body)

    def signed_timestamp(self, headers: Mapping[str, str], body: bytes) -> float | None:
        return webhooks.signed_timestamp(body)

    def webhook_contradiction(self, topic: str, body: bytes) -> str:
        return webhooks.topic_contradiction(topic, body)

    def parse_webhook(self, topic: str, body: bytes) -> WebhookMessage:
        # Order topics (a SOAP notification, or a polled order as JSON) and every SOAP body
        # are Platform Notifications; any other JSON is the Notification API's.
        if topic in webhooks.ORDER_TOPICS or body.lstrip()[:1] == b"<":
            return webhooks.parse_platform_notification(topic, body)
        return notifications.parse(topic, body)

    def poll_orders(self, *, since: dt.datetime) -> list[PulledNotification]:
        """``GET /sell/fulfillment/v1/order`` modified since then, every page (§5.1: eBay
        advises polling besides the notifications), one event per line item."""
        start = since.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        events: list[PulledNotification] = []
        offset = 0
        while True:
            response = self.client.call(
                "GET",
                "/sell/fulfillment/v1/order",
                params={
                    "filter": f"lastmodifieddate:[{start}..]",
                    "limit": str(ORDERS_PAGE),
                    "offset": str(offset),
                },
            )
            if response.status_code != 200:
                raise ChannelError(
                    f"eBay answered HTTP {response.status_code}: {error_message(response)}"
                )
            body = http.json_object(response) or {}
            orders = [o for o in body.get("orders") or [] if isinstance(o, dict)]
            for order in orders:
                events.extend(webhooks.events_of_polled_order(order))
            offset += len(orders)
            if not orders or offset >= int(body.get("total") or 0):
                return events


def _status(entry: Mapping[str, Any]) -> int:
    try:
        return int(entry.get("statusCode") or 0)
    except (TypeError, ValueError):
        return 0


def _is_revision_cap(error: Mapping[str, Any]) -> bool:
    return (
        error.get("errorId") == REVISION_CAP_ERROR_ID
        or "revision" in str(error.get("message", "")).lower()
    )


def _cap_message(cap: int, left: int) -> str:
    if left > 0:
        return (
            f"Held: the last of eBay's {cap} revisions today (§5.2) is kept for a sell-out; "
            "the listing's figure goes out after midnight UTC, or at once if it sells out."
        )
    return (
        f"Held: the listing reached eBay's limit of {cap} revisions today (§5.2); its "
        "figure goes out after midnight UTC."
    )


def utc_now() -> dt.datetime:
    """The time the revision counts go by (their day is eBay's: UTC [M])."""
    return dt.datetime.now(dt.UTC)


def _item_quantity(item: object) -> int | None:
    """§5.3: ``availability.shipToLocationAvailability.quantity``."""
    if not isinstance(item, dict):
        return None
    availability = (item.get("availability") or {}).get("shipToLocationAvailability") or {}
    quantity = availability.get("quantity")
    return quantity if isinstance(quantity, int) and not isinstance(quantity, bool) else None
