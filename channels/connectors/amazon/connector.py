"""Amazon Selling Partner API: MFN quantities by listings patch or JSON_LISTINGS_FEED, order
notifications from SQS, orders polled as the backup path.

Wire facts cite ``CHANNEL_APIS.md`` §2 (shared folder). The simulator in
``channels.simulators.amazon`` speaks the same dialect.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from channels.connectors.amazon import notifications
from channels.connectors.amazon.client import API_DOMAINS, AmazonClient, LwaCredentials
from channels.connectors.base import ChannelError, Connector
from channels.connectors.types import (
    Capability,
    ItemResult,
    ItemStatus,
    ListingRef,
    MarketplaceStockCount,
    PulledNotification,
    QuantityUpdate,
    SubmissionRef,
    WebhookMessage,
)

if TYPE_CHECKING:
    from channels.models import Channel

DEFAULT_API_URL = "https://sellingpartnerapi-na.amazon.com"
DEFAULT_LWA_URL = "https://api.amazon.com/auth/o2/token"
DEFAULT_MARKETPLACE_ID = "ATVPDKIKX0DER"
DEFAULT_READ_TIMEOUT_S = 10.0
# Batches of this many items or more go as one JSON_LISTINGS_FEED rather than patches
# (§2.2: patches are 5 per second; feeds 5 per 5 minutes, up to 25,000 messages).
DEFAULT_FEED_THRESHOLD = 20
MAX_FEED_MESSAGES = 25_000
# An ACCEPTED patch not visible on the listing after this long is sent again [M].
DEFAULT_PATCH_DEADLINE_S = 900.0
FULFILLMENT_AVAILABILITY = "/attributes/fulfillment_availability"
LISTINGS_FEED = "JSON_LISTINGS_FEED"
FEED_CONTENT_TYPE = "application/json; charset=UTF-8"
PATCH_PREFIX = "patch:"
FEED_PREFIX = "feed:"


class AmazonConnector(Connector):
    """Amazon SP-API for one seller in one marketplace; MFN (``DEFAULT``) quantities only.

    Listings: ``external_id`` is the seller SKU (what every SP-API call names);
    ``external_sku`` the same SKU as order lines carry it.

    ``Channel.credentials``: ``client_id``, ``client_secret``, ``refresh_token`` (Login with
    Amazon), and for the notification queue ``aws_access_key_id``, ``aws_secret_access_key``.

    ``platform_settings``: ``seller_id``, ``marketplace_id`` (default ATVPDKIKX0DER),
    ``token_url`` (default Login with Amazon's), ``feed_threshold`` (batches this large go by
    feed, default 20), ``patch_deadline_s`` (default 900), ``submission_poll_interval_s``
    (how soon accepted writes are asked about, default 30), ``timeout_s`` (default 10),
    ``throttle_backoff_s`` (the first wait after a 429, doubled each time, default 1),
    ``sqs_queue_url``, ``sqs_endpoint_url``, ``sqs_region``, ``sqs_wait_s`` (long poll,
    default 1). ``Channel.api_base_url`` is the regional endpoint (§2.5).
    """

    platform = "amazon"
    api_domains = API_DOMAINS
    capabilities = frozenset(
        {
            Capability.ASYNC_WRITES,
            Capability.ORDER_POLL,
            Capability.QUEUE_NOTIFICATIONS,
            Capability.MARKETPLACE_STOCK,
        }
    )
    max_batch_size = MAX_FEED_MESSAGES
    # getListingsItem reads one SKU per call.
    max_read_batch_size = 20
    identifier_order = ("external_id", "external_sku")
    listing_field_of_identifier = {"seller_sku": "external_id", "sku": "external_sku"}
    submission_poll_interval_s = 30.0
    # §2.1: a notification may come late or not at all; the backup poll reads 4 h back at most.
    order_redelivery_window_s = 4 * 3600.0
    order_placed_topic = notifications.ORDER_CHANGE
    # SQS returns at most 10 messages per ReceiveMessage.
    max_notifications_per_pull = 10

    def __init__(self, channel: Channel) -> None:
        super().__init__(channel)
        settings: Mapping[str, Any] = channel.platform_settings or {}
        credentials: Mapping[str, Any] = channel.credentials or {}
        self.settings = settings
        self.credentials = credentials
        self.seller_id = str(settings.get("seller_id") or "")
        self.marketplace_id = str(settings.get("marketplace_id") or DEFAULT_MARKETPLACE_ID)
        self.feed_threshold = int(settings.get("feed_threshold") or DEFAULT_FEED_THRESHOLD)
        self.patch_deadline_s = float(settings.get("patch_deadline_s") or DEFAULT_PATCH_DEADLINE_S)
        # FEED_PROCESSING_FINISHED wakes the settlement of a feed; a patch is only seen
        # applied by reading the listing back, this often.
        self.submission_poll_interval_s = float(
            settings.get("submission_poll_interval_s") or type(self).submission_poll_interval_s
        )
        self.client = AmazonClient(
            api_url=channel.api_base_url or DEFAULT_API_URL,
            credentials=LwaCredentials(
                token_url=str(settings.get("token_url") or DEFAULT_LWA_URL),
                client_id=str(credentials.get("client_id", "")),
                client_secret=str(credentials.get("client_secret", "")),
                refresh_token=str(credentials.get("refresh_token", "")),
            ),
            read_timeout_s=float(settings.get("timeout_s") or DEFAULT_READ_TIMEOUT_S),
            backoff_base_s=float(settings.get("throttle_backoff_s") or 1.0),
        )

    # -- Writes ------------------------------------------------------------------------------

    def _refusal(self, update: QuantityUpdate) -> str:
        if not update.external_id:
            return "The listing has no seller SKU (external_id)."
        if not self.seller_id:
            return "No Amazon seller: set platform_settings['seller_id']."
        return ""

    def _send_batch(self, updates: Sequence[QuantityUpdate]) -> list[ItemResult]:
        """Every accepted item comes back PENDING (§2.2: ACCEPTED is not applied)."""
        if len(updates) >= self.feed_threshold:
            return self._send_feed(updates)
        results: list[ItemResult] = []
        for position, update in enumerate(updates):
            try:
                results.append(self._patch(update))
            except ChannelError as error:
                if position == 0:
                    raise
                results += [
                    ItemResult(later.listing_id, ItemStatus.RETRY, str(error))
                    for later in updates[position:]
                ]
                break
        return results

    def _listing_path(self, sku: str) -> str:
        return f"/listings/2021-08-01/items/{_quote(self.seller_id)}/{_quote(sku)}"

    def _patch(self, update: QuantityUpdate) -> ItemResult:
        """§2.2: a ``merge`` patch of ``fulfillment_availability`` (the selector
        ``fulfillment_channel_code`` present, so restock dates are kept)."""
        body = self.client.call(
            "PATCH",
            self._listing_path(update.external_id),
            operation="patchListingsItem",
            params={"marketplaceIds": self.marketplace_id, "includedData": "issues"},
            json={
                "productType": str(update.extra_identifiers.get("product_type") or "PRODUCT"),
                "patches": [
                    {
                        "op": "merge",
                        "path": FULFILLMENT_AVAILABILITY,
                        "value": [
                            {"fulfillment_channel_code": "DEFAULT", "quantity": update.quantity}
                        ],
                    }
                ],
            },
        )
        body = body or {}
        status = body.get("status")
        if status == "ACCEPTED":
            return ItemResult(
                update.listing_id,
                ItemStatus.PENDING,
                submission_id=f"{PATCH_PREFIX}{update.external_id}:{time.time():.3f}",
            )
        # §2.2: INVALID answers 200, the reasons in issues[].
        message = _issues_text(body.get("issues")) or f"Amazon answered status {status!r}."
        return ItemResult(update.listing_id, ItemStatus.REJECTED, message)

    def _send_feed(self, updates: Sequence[QuantityUpdate]) -> list[ItemResult]:
        """§2.2: create a feed document, upload it, create the feed; one submission id per
        message (``feed:<feedId>:<messageId>``) so its report line finds its item."""
        document = {
            "header": {"sellerId": self.seller_id, "version": "2.0", "issueLocale": "en_US"},
            "messages": [
                {
                    "messageId": message_id,
                    "sku": update.external_id,
                    "operationType": "PATCH",
                    "productType": str(update.extra_identifiers.get("product_type") or "PRODUCT"),
                    "patches": [
                        {
                            "op": "merge",
                            "path": FULFILLMENT_AVAILABILITY,
                            "value": [
                                {
                                    "fulfillment_channel_code": "DEFAULT",
                                    "quantity": update.quantity,
                                }
                            ],
                        }
                    ],
                }
                for message_id, update in enumerate(updates, start=1)
            ],
        }
        created = (
            self.client.call(
                "POST",
                "/feeds/2021-06-30/documents",
                operation="createFeedDocument",
                json={"contentType": FEED_CONTENT_TYPE},
            )
            or {}
        )
        if not created.get("url") or not created.get("feedDocumentId"):
            raise ChannelError("Amazon answered createFeedDocument without a URL.")
        self.client.put_document(
            str(created["url"]), json.dumps(document).encode(), FEED_CONTENT_TYPE
        )
        feed = (
            self.client.call(
                "POST",
                "/feeds/2021-06-30/feeds",
                operation="createFeed",
                json={
                    "feedType": LISTINGS_FEED,
                    "marketplaceIds": [self.marketplace_id],
                    "inputFeedDocumentId": created["feedDocumentId"],
                },
            )
            or {}
        )
        feed_id = feed.get("feedId")
        if not feed_id:
            raise ChannelError("Amazon answered createFeed without a feedId.")
        return [
            ItemResult(
                update.listing_id,
                ItemStatus.PENDING,
                submission_id=f"{FEED_PREFIX}{feed_id}:{message_id}",
            )
            for message_id, update in enumerate(updates, start=1)
        ]

    def read_submissions(self, submissions: Sequence[SubmissionRef]) -> list[ItemResult]:
        """Feeds: settled by their processing report once DONE. Patches: applied once the
        listing shows the quantity, refused when an error issue shows on it, sent again when
        neither happened before ``patch_deadline_s``."""
        reports: dict[str, dict[int, str] | str | None] = {}
        results = []
        for ref in submissions:
            if ref.submission_id.startswith(FEED_PREFIX):
                feed_id, _, message_id = ref.submission_id.removeprefix(FEED_PREFIX).partition(":")
                if feed_id not in reports:
                    reports[feed_id] = self._feed_report(feed_id)
                results.append(_feed_outcome(ref, reports[feed_id], message_id))
            else:
                results.append(self._patch_outcome(ref))
        return results

    def _feed_report(self, feed_id: str) -> dict[int, str] | str | None:
        """None while the feed runs; a reason when it ended without processing (FATAL,
        CANCELLED); else the error message per message id (absent: applied)."""
        feed = (
            self.client.call("GET", f"/feeds/2021-06-30/feeds/{feed_id}", operation="getFeed")
            or {}
        )
        status = feed.get("processingStatus")
        if status in ("IN_QUEUE", "IN_PROGRESS"):
            return None
        if status != "DONE":
            return f"Amazon feed {feed_id} ended {status}."
        document_id = feed.get("resultFeedDocumentId")
        document = (
            self.client.call(
                "GET", f"/feeds/2021-06-30/documents/{document_id}", operation="getFeedDocument"
            )
            or {}
        )
        try:
            report = json.loads(self.client.get_document(str(document.get("url", ""))))
        except ValueError:
            raise ChannelError(f"The report of Amazon feed {feed_id} is not JSON.") from None
        errors: dict[int, str] = {}
        for issue in report.get("issues") or []:
            if not isinstance(issue, dict) or issue.get("severity") != "ERROR":
                continue
            try:
                message_id = int(issue["messageId"])
            except (KeyError, TypeError, ValueError):
                continue
            text = f"{issue.get('code', '')}: {issue.get('message', '')}".strip(": ")
            errors[message_id] = "; ".join(filter(None, (errors.get(message_id), text)))
        return errors

    def _patch_outcome(self, ref: SubmissionRef) -> ItemResult:
        listing = self._get_listing(ref.external_id)
        if listing is None:
            return ItemResult(
                ref.listing_id, ItemStatus.REJECTED, f"Amazon has no listing {ref.external_id}."
            )
        if _mfn_quantity(listing) == ref.quantity:
            return ItemResult(ref.listing_id, ItemStatus.APPLIED)
        problems = [
            issue
            for issue in listing.get("issues") or []
            if isinstance(issue, dict)
            and issue.get("severity") == "ERROR"
            and "fulfillment_availability" in (issue.get("attributeNames") or [])
        ]
        if problems:
            return ItemResult(ref.listing_id, ItemStatus.REJECTED, _issues_text(problems))
        try:
            submitted_at = float(ref.submission_id.rsplit(":", 1)[1])
        except (IndexError, ValueError):
            submitted_at = 0.0
        if time.time() - submitted_at > self.patch_deadline_s:
            return ItemResult(
                ref.listing_id,
                ItemStatus.RETRY,
                f"Amazon accepted the patch but did not apply it within "
                f"{self.patch_deadline_s:g} s.",
            )
        return ItemResult(ref.listing_id, ItemStatus.PENDING, submission_id=ref.submission_id)

    # -- Reads -------------------------------------------------------------------------------

    def _get_listing(self, sku: str) -> dict[str, Any] | None:
        """§2.3: getListingsItem with fulfillmentAvailability and issues (None: no listing)."""
        return self.client.call(
            "GET",
            self._listing_path(sku),
            operation="getListingsItem",
            params={
                "marketplaceIds": self.marketplace_id,
                "includedData": "summaries,issues,fulfillmentAvailability",
            },
            not_found_ok=True,
        )

    def _read_batch(self, listings: Sequence[ListingRef]) -> dict[int, int | None]:
        quantities: dict[int, int | None] = {}
        for ref in listings:
            listing = self._get_listing(ref.external_id) if ref.external_id else None
            quantities[ref.listing_id] = None if listing is None else _mfn_quantity(listing)
        return quantities

    def read_marketplace_stock(self, *, since: dt.datetime | None) -> list[MarketplaceStockCount]:
        """§2.3: getInventorySummaries with details for the channel's marketplace, paged by
        ``nextToken``; only ``fulfillableQuantity`` is sellable (§2.6)."""
        params: dict[str, str] = {
            "details": "true",
            "granularityType": "Marketplace",
            "granularityId": self.marketplace_id,
            "marketplaceIds": self.marketplace_id,
        }
        if since is not None:
            params["startDateTime"] = (
                since.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
            )
        read_at = dt.datetime.now(dt.UTC)
        counts: list[MarketplaceStockCount] = []
        while True:
            page = (
                self.client.call(
                    "GET",
                    "/fba/inventory/v1/summaries",
                    operation="getInventorySummaries",
                    params=params,
                )
                or {}
            )
            for summary in (page.get("payload") or {}).get("inventorySummaries") or []:
                if isinstance(summary, dict) and summary.get("sellerSku"):
                    counts.append(
                        notifications.fba_count_of_summary(
                            summary, marketplace_id=self.marketplace_id, read_at=read_at
                        )
                    )
            next_token = (page.get("pagination") or {}).get("nextToken")
            if not next_token:
                return counts
            params = {**params, "nextToken": str(next_token)}

    # -- Inbound (``channels.connectors.amazon.notifications``) ------------------------------

    def _sqs(self) -> Any:
        import boto3  # only a process that pulls Amazon's queue needs it

        return boto3.client(
            "sqs",
            endpoint_url=str(self.settings.get("sqs_endpoint_url") or "") or None,
            region_name=str(self.settings.get("sqs_region") or "us-east-1"),
            aws_access_key_id=str(self.credentials.get("aws_access_key_id") or "") or None,
            aws_secret_access_key=str(self.credentials.get("aws_secret_access_key") or "") or None,
        )

    def pull_notifications(self, *, max_messages: int) -> list[PulledNotification]:
        """§2.1: ReceiveMessage, long-polled ``sqs_wait_s``; unacknowledged messages come
        back after the queue's visibility timeout."""
        queue_url = str(self.settings.get("sqs_queue_url") or "")
        if not queue_url:
            return []
        try:
            answer = self._sqs().receive_message(
                QueueUrl=queue_url,
                MaxNumberOfMessages=max(1, min(10, max_messages)),
                WaitTimeSeconds=int(self.settings.get("sqs_wait_s", 1)),
            )
        except Exception as error:  # botocore's errors share no base worth importing here
            raise ChannelError(f"Cannot read the Amazon SQS queue: {error}") from None
        return [notifications.pulled_of_sqs(message) for message in answer.get("Messages", [])]

    def acknowledge_notifications(self, receipt_handles: Sequence[str]) -> None:
        """DeleteMessage, only ever called once the receipts are committed."""
        queue_url = str(self.settings.get("sqs_queue_url") or "")
        handles = [handle for handle in receipt_handles if handle]
        if not queue_url or not handles:
            return
        sqs = self._sqs()
        for start in range(0, len(handles), 10):
            chunk = handles[start : start + 10]
            try:
                sqs.delete_message_batch(
                    QueueUrl=queue_url,
                    Entries=[
                        {"Id": str(index), "ReceiptHandle": handle}
                        for index, handle in enumerate(chunk)
                    ],
                )
            except Exception as error:
                # Not deleted: the messages come back and are stored once (dedupe key).
                raise ChannelError(f"Cannot delete from the Amazon SQS queue: {error}") from None

    def parse_webhook(self, topic: str, body: bytes) -> WebhookMessage:
        return notifications.parse_notification(topic, body)

    def poll_orders(self, *, since: dt.datetime) -> list[PulledNotification]:
        """§2.1's backup path: getOrders changed since then, getOrderItems for each, as the
        ORDER_CHANGE events they imply (placed, and cancelled for a cancelled order)."""
        events: list[PulledNotification] = []
        params: dict[str, str] = {
            "MarketplaceIds": self.marketplace_id,
            "LastUpdatedAfter": since.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
        }
        while True:
            page = (
                self.client.call("GET", "/orders/v0/orders", operation="getOrders", params=params)
                or {}
            )
            payload = page.get("payload") or {}
            for order in payload.get("Orders") or []:
                if order.get("FulfillmentChannel") == "AFN":
                    continue  # §2.6: Amazon's stock
                events += self._events_of_order(order)
            next_token = payload.get("NextToken")
            if not next_token:
                return events
            params = {"MarketplaceIds": self.marketplace_id, "NextToken": str(next_token)}

    def _events_of_order(self, order: Mapping[str, Any]) -> list[PulledNotification]:
        order_id = str(order.get("AmazonOrderId", ""))
        items_body = (
            self.client.call(
                "GET",
                f"/orders/v0/orders/{_quote(order_id)}/orderItems",
                operation="getOrderItems",
            )
            or {}
        )
        items = (items_body.get("payload") or {}).get("OrderItems") or []
        placed = dict(order, OrderStatus="Unshipped", IsBuyerRequestedCancel=False)
        events = [
            PulledNotification(
                topic=notifications.ORDER_CHANGE,
                dedupe_key=f"poll:{order_id}:placed",
                body=json.dumps(
                    notifications.order_change_envelope(
                        seller_id=self.seller_id, order=placed, items=items
                    )
                ).encode(),
                receipt_handle="",
            )
        ]
        if order.get("OrderStatus") in notifications.CANCELLED_STATUSES:
            events.append(
                PulledNotification(
                    topic=notifications.ORDER_CANCELLED_POLLED,
                    dedupe_key=f"poll:{order_id}:cancelled",
                    body=json.dumps(
                        notifications.order_change_envelope(
                            seller_id=self.seller_id, order=order, items=items
                        )
                    ).encode(),
                    receipt_handle="",
                )
            )
        return events


def _quote(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def _mfn_quantity(listing: Mapping[str, Any]) -> int | None:
    """§2.3: the ``DEFAULT`` (MFN) entry of ``fulfillmentAvailability``."""
    for entry in listing.get("fulfillmentAvailability") or []:
        if isinstance(entry, dict) and entry.get("fulfillmentChannelCode") == "DEFAULT":
            try:
                return int(entry.get("quantity") or 0)
            except (TypeError, ValueError):
                return None
    return None


def _issues_text(issues: object) -> str:
    if not isinstance(issues, list):
        return ""
    return "; ".join(
        f"{issue.get('code', '')}: {issue.get('message', '')}".strip(": ")
        for issue in issues
        if isinstance(issue, dict) and issue.get("severity", "ERROR") == "ERROR"
    )


def _feed_outcome(
    ref: SubmissionRef, report: dict[int, str] | str | None, message_id: str
) -> ItemResult:
    if report is None:
        return ItemResult(ref.listing_id, ItemStatus.PENDING, submission_id=ref.submission_id)
    if isinstance(report, str):
        return ItemResult(ref.listing_id, ItemStatus.RETRY, report)
    try:
        error = report.get(int(message_id))
    except ValueError:
        error = "The submission names no feed message."
    if error:
        return ItemResult(ref.listing_id, ItemStatus.REJECTED, error)
    return ItemResult(ref.listing_id, ItemStatus.APPLIED)
