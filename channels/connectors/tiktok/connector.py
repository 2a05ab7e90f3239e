"""TikTok Shop: signed calls, absolute writes per product, orders looked up by id.

Wire facts cite ``CHANNEL_APIS.md`` §4 (shared folder). The simulator in
``channels.simulators.tiktok`` speaks the same dialect.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from channels.connectors.base import ChannelError, Connector
from channels.connectors.tiktok import webhooks
from channels.connectors.tiktok.client import API_DOMAINS, TikTokBusinessError, TikTokClient
from channels.connectors.types import (
    Capability,
    ItemResult,
    ItemStatus,
    ListingRef,
    PulledNotification,
    QuantityUpdate,
    WebhookEnvelope,
    WebhookMessage,
)

if TYPE_CHECKING:
    from channels.models import Channel

DEFAULT_READ_TIMEOUT_S = 10.0
# §4.3: 0 <= quantity < 99999.
MAX_QUANTITY = 99998
# §4.4: at most 600 sku_ids a search.
MAX_SEARCH_SKU_IDS = 600
ORDERS_PAGE = 50
# §4.3 / §4.5 [M]: per-SKU codes that mean the SKU can never take this write (not live,
# unknown, quantity or warehouse refused); any other per-SKU code is tried again.
REFUSED_SKU_CODES = frozenset({17019001, 17019002, 17019003, 17019004, 17019005})
# §4.5 [M]: the product of the call does not exist: every SKU of it is refused for good.
PRODUCT_NOT_FOUND_CODES = frozenset({12019001})


class TikTokConnector(Connector):
    """TikTok Shop (Partner API 202309).

    Listings: ``external_id`` is the SKU id (TikTok's stock-bearing id),
    ``extra_identifiers["product_id"]`` its product (writes go per product, §4.3), and
    optionally ``extra_identifiers["warehouse_id"]`` (else the channel's
    ``platform_settings["warehouse_id"]``, else none: only a SKU with a single warehouse
    takes that). Order lines carry ``sku_id`` (matched against ``external_id``) and
    ``seller_sku`` (against ``external_sku``).

    Writes are absolute (no compare-and-set); a per-SKU error inside a ``code: 0`` answer
    is that item's result (not live, unknown: REJECTED), the rest applied. Reads compare
    the warehouse ``available_quantity``, which holds the campaign and creator reserves
    too (§4.4): reading the in-shop part would see drift in every campaign.

    ``platform_settings``: ``warehouse_id``, ``timeout_s`` (read timeout, default 10),
    ``max_batch_size``, ``auth_base_url`` (the token refresh host, default the API's).
    ``credentials``: ``app_key``, ``app_secret`` (also the webhook key: the channel's
    webhook secret is the app secret), ``shop_cipher``, ``refresh_token``.
    """

    platform = "tiktok"
    api_domains = API_DOMAINS
    capabilities = frozenset(
        {Capability.HTTP_WEBHOOKS, Capability.ORDER_LOOKUP, Capability.ORDER_POLL}
    )
    max_batch_size = 100
    max_read_batch_size = MAX_SEARCH_SKU_IDS
    identifier_order = ("external_id", "external_sku")
    listing_field_of_identifier = {"sku_id": "external_id", "seller_sku": "external_sku"}
    # §4.1: the signature is the Authorization header itself (an HMAC, not a credential):
    # kept, so a receipt can be verified again.
    kept_headers = ("content-type", "authorization")
    # §4.1: the envelope's timestamp is part of the signed body.
    signs_timestamp = True
    order_placed_topic = webhooks.ORDER_PLACED_TOPIC
    # §4.1: retries are not documented [M]: the order may come hours after its events.
    order_redelivery_window_s = 4 * 3600.0

    def __init__(self, channel: Channel) -> None:
        super().__init__(channel)
        settings: Mapping[str, Any] = channel.platform_settings or {}
        credentials: Mapping[str, Any] = channel.credentials or {}
        self.warehouse_id = str(settings.get("warehouse_id") or "")
        self.app_key = str(credentials.get("app_key", ""))
        self.client = TikTokClient(
            base_url=channel.api_base_url,
            auth_base_url=str(settings.get("auth_base_url") or ""),
            app_key=self.app_key,
            app_secret=str(credentials.get("app_secret", "")),
            shop_cipher=str(credentials.get("shop_cipher", "")),
            refresh_token=str(credentials.get("refresh_token", "")),
            read_timeout_s=float(settings.get("timeout_s") or DEFAULT_READ_TIMEOUT_S),
        )

    # -- Writes ------------------------------------------------------------------------------

    def _refusal(self, update: QuantityUpdate) -> str:
        if not update.external_id.strip():
            return "The listing has no TikTok Shop SKU id (external_id)."
        if not str(update.extra_identifiers.get("product_id") or "").strip():
            return "The listing has no TikTok Shop product id (extra_identifiers.product_id)."
        return ""

    def _send_batch(self, updates: Sequence[QuantityUpdate]) -> list[ItemResult]:
        """One ``inventory/update`` call per product (§4.3), the products in the order their
        first item comes. A call that fails as a whole after an earlier one went through
        leaves the rest to retry; before any, it fails the batch."""
        by_product: dict[str, list[QuantityUpdate]] = {}
        for update in updates:
            by_product.setdefault(str(update.extra_identifiers["product_id"]), []).append(update)
        results: dict[int, ItemResult] = {}
        for position, (product_id, items) in enumerate(by_product.items()):
            try:
                results |= self._update_product(product_id, items)
            except ChannelError as error:
                if position == 0:
                    raise
                for update in updates:
                    results.setdefault(
                        update.listing_id,
                        ItemResult(update.listing_id, ItemStatus.RETRY, str(error)),
                    )
                break
        return [results[update.listing_id] for update in updates]

    def _update_product(
        self, product_id: str, updates: Sequence[QuantityUpdate]
    ) -> dict[int, ItemResult]:
        payload = {
            "skus": [
                {"id": update.external_id, "inventory": [self._inventory(update)]}
                for update in updates
            ]
        }
        try:
            data = self.client.call(
                "POST",
                f"/product/202309/products/{product_id}/inventory/update",
                payload=payload,
            )
        except TikTokBusinessError as error:
            if error.code not in PRODUCT_NOT_FOUND_CODES:
                raise
            return {
                u.listing_id: ItemResult(u.listing_id, ItemStatus.REJECTED, str(error))
                for u in updates
            }
        failed = _sku_errors(data)
        results = {}
        for update in updates:
            refused = failed.get(update.external_id)
            if refused is None:
                results[update.listing_id] = ItemResult(update.listing_id, ItemStatus.APPLIED)
            else:
                code, message = refused
                status = ItemStatus.REJECTED if code in REFUSED_SKU_CODES else ItemStatus.RETRY
                results[update.listing_id] = ItemResult(
                    update.listing_id, status, f"TikTok Shop code {code}: {message}"
                )
        return results

    def _inventory(self, update: QuantityUpdate) -> dict[str, Any]:
        # §4.3: the platform takes less than 99999; more is written as its most, which
        # sells no unit the master does not hold.
        entry: dict[str, Any] = {"quantity": max(0, min(update.quantity, MAX_QUANTITY))}
        warehouse_id = self._warehouse_of(update.extra_identifiers)
        if warehouse_id:
            entry["warehouse_id"] = warehouse_id
        return entry

    def _warehouse_of(self, extra_identifiers: Mapping[str, object]) -> str:
        return str(extra_identifiers.get("warehouse_id") or self.warehouse_id)

    # -- Reads -------------------------------------------------------------------------------

    def _read_batch(self, listings: Sequence[ListingRef]) -> dict[int, int | None]:
        """``inventory/search`` by SKU id (§4.4): the listing's warehouse's
        ``available_quantity`` (every warehouse's summed where none is set), never the
        in-shop part of the campaign/creator split."""
        data = self.client.call(
            "POST",
            "/product/202309/inventory/search",
            payload={"sku_ids": [listing.external_id for listing in listings]},
        )
        warehouses_by_sku: dict[str, list[Mapping[str, Any]]] = {}
        for product in data.get("inventory") or []:
            for sku in (product or {}).get("skus") or []:
                if isinstance(sku, Mapping):
                    entries = sku.get("warehouse_inventory") or []
                    warehouses_by_sku[str(sku.get("id"))] = [
                        entry for entry in entries if isinstance(entry, Mapping)
                    ]
        quantities: dict[int, int | None] = {}
        for listing in listings:
            entries = warehouses_by_sku.get(listing.external_id)
            if entries is None:
                quantities[listing.listing_id] = None
                continue
            warehouse_id = self._warehouse_of(listing.extra_identifiers)
            quantities[listing.listing_id] = sum(
                int(entry.get("available_quantity") or 0)
                for entry in entries
                if not warehouse_id or str(entry.get("warehouse_id")) == warehouse_id
            )
        return quantities

    # -- Inbound -----------------------------------------------------------------------------

    def _signature_matches(self, *, secret: str, headers: Mapping[str, str], body: bytes) -> bool:
        return webhooks.verify_tiktok_webhook(
            app_key=self.app_key, secret=secret, headers=headers, body=body
        )

    def webhook_envelope(self, headers: Mapping[str, str], body: bytes) -> WebhookEnvelope:
        return webhooks.tiktok_webhook_envelope(body)

    def signed_timestamp(self, headers: Mapping[str, str], body: bytes) -> float | None:
        return webhooks.signed_timestamp(body)

    def webhook_contradiction(self, topic: str, body: bytes) -> str:
        # The topic is read from the signed body itself; what an app-wide secret cannot
        # tell is which shop the event is about (platform setting "shop_id").
        return webhooks.shop_contradiction(
            body, shop_id=str((self.channel.platform_settings or {}).get("shop_id") or "")
        )

    def parse_webhook(self, topic: str, body: bytes) -> WebhookMessage:
        return webhooks.parse_tiktok_webhook(topic, body)

    def fetch_order(self, reference: str) -> WebhookMessage:
        """Get Order Detail (§4.1): ``GET /order/202309/orders?ids=``. An order the
        platform does not show yet is a failure to retry, not an empty order."""
        data = self.client.call("GET", "/order/202309/orders", params={"ids": reference})
        for order in data.get("orders") or []:
            if isinstance(order, Mapping) and str(order.get("id")) == reference:
                return webhooks.parse_order(order)
        raise ChannelError(f"TikTok Shop does not show order {reference} yet.")

    def fetch_refund(self, *, order_reference: str, refund_reference: str) -> WebhookMessage:
        """A type 11 or 12 event's line items: Search Cancellations
        (``POST /return_refund/202309/cancellations/search`` ``{"cancel_ids"}``) or Search
        Returns (``…/returns/search`` ``{"return_ids"}``), read at the status the platform
        shows now. One it does not show yet is a failure to retry."""
        if refund_reference.startswith(webhooks.CANCEL_REFERENCE_PREFIX):
            cancel_id = refund_reference.removeprefix(webhooks.CANCEL_REFERENCE_PREFIX)
            data = self.client.call(
                "POST",
                "/return_refund/202309/cancellations/search",
                payload={"cancel_ids": [cancel_id]},
            )
            found = _record(data.get("cancellations"), "cancel_id", cancel_id, order_reference)
            if found is not None:
                return webhooks.cancellation_message(found)
        elif refund_reference.startswith(webhooks.RETURN_REFERENCE_PREFIX):
            return_id = refund_reference.removeprefix(webhooks.RETURN_REFERENCE_PREFIX)
            data = self.client.call(
                "POST", "/return_refund/202309/returns/search", payload={"return_ids": [return_id]}
            )
            found = _record(data.get("return_orders"), "return_id", return_id, order_reference)
            if found is not None:
                return webhooks.return_message(found)
        else:
            raise ChannelError(f"No TikTok Shop cancellation or return is {refund_reference!r}.")
        raise ChannelError(f"TikTok Shop does not show {refund_reference} yet.")

    def poll_orders(self, *, since: dt.datetime) -> list[PulledNotification]:
        """Order search (``POST /order/202309/orders/search``) of the orders updated since
        then, every page, each as the type 1 event that would have announced it; and for
        the orders of a page that show line items cancelled while still open, their
        cancellations (one Search Cancellations by order id), each as the type 11 event
        that would have announced it: the same refund the webhook brings, applied once."""
        events: list[PulledNotification] = []
        page_token = ""
        while True:
            params = {"page_size": str(ORDERS_PAGE)}
            if page_token:
                params["page_token"] = page_token
            data = self.client.call(
                "POST",
                "/order/202309/orders/search",
                params=params,
                payload={"update_time_ge": int(since.timestamp())},
            )
            orders = [order for order in data.get("orders") or [] if isinstance(order, Mapping)]
            events += [webhooks.polled_order(order) for order in orders]
            partly_cancelled = [
                str(order.get("id"))
                for order in orders
                if webhooks.has_cancelled_line_items(order)
            ]
            events += self._polled_cancellations(partly_cancelled)
            page_token = str(data.get("next_page_token") or "")
            if not page_token:
                return events

    def _polled_cancellations(self, order_ids: Sequence[str]) -> list[PulledNotification]:
        if not order_ids:
            return []
        data = self.client.call(
            "POST",
            "/return_refund/202309/cancellations/search",
            payload={"order_ids": list(order_ids)},
        )
        return [
            webhooks.polled_cancellation(cancellation)
            for cancellation in data.get("cancellations") or []
            if isinstance(cancellation, Mapping) and cancellation.get("cancel_id")
        ]


def _record(
    records: object, id_field: str, wanted: str, order_reference: str
) -> Mapping[str, Any] | None:
    """The searched cancellation or return with that id, of that order."""
    for record in records if isinstance(records, list) else []:
        if (
            isinstance(record, Mapping)
            and str(record.get(id_field)) == wanted
            and str(record.get("order_id")) == order_reference
        ):
            return record
    return None


def _sku_errors(data: Mapping[str, Any]) -> dict[str, tuple[int | None, str]]:
    """§4.3: ``data.errors[]`` of a ``code: 0`` answer, by SKU id: the code and message
    (the warehouses' own errors appended)."""
    failed: dict[str, tuple[int | None, str]] = {}
    for error in data.get("errors") or []:
        if not isinstance(error, Mapping):
            continue
        detail = error.get("detail") or {}
        sku_id = str(detail.get("sku_id") or "")
        extra = "; ".join(
            f"warehouse {e.get('warehouse_id')}: {e.get('code')} {e.get('message', '')}"
            for e in detail.get("extra_errors") or []
            if isinstance(e, Mapping)
        )
        try:
            code: int | None = int(error.get("code"))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            code = None
        message = str(error.get("message") or "")
        failed[sku_id] = (code, f"{message} ({extra})" if extra else message)
    return failed
