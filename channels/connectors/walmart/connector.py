"""Walmart Marketplace: absolute quantities, one PUT per SKU or an inventory feed.

Wire facts cite ``CHANNEL_APIS.md`` §3 (shared folder). The simulator in
``channels.simulators.walmart`` speaks the same dialect.
"""

from __future__ import annotations

import datetime as dt
import json
import urllib.parse
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from channels.connectors.base import ChannelError, Connector
from channels.connectors.types import (
    Capability,
    ItemResult,
    ItemStatus,
    ListingRef,
    PulledNotification,
    QuantityUpdate,
    RateBudget,
    SubmissionRef,
    WebhookEnvelope,
    WebhookMessage,
)
from channels.connectors.walmart import webhooks
from channels.connectors.walmart.client import (
    API_DOMAINS,
    FeedTooLarge,
    WalmartClient,
    error_message,
)

if TYPE_CHECKING:
    from channels.models import Channel

DEFAULT_READ_TIMEOUT_S = 10.0
# Batches of more items than this go as one inventory feed, fewer as one PUT per SKU
# (§3.2: feeds are limited to 10 an hour and take minutes to apply).
DEFAULT_FEED_THRESHOLD = 10
FEED_PREFIX = "feed:"
# §3.2: the multi-node (spec 1.5) feed's type [M].
MULTI_NODE_FEED_TYPE = "MP_INVENTORY"
# §3.3 (WM7): at most 50 items a page.
INVENTORIES_PAGE = 50
# Up to this many listings are read one GET each; more, by paging the whole catalogue.
MAX_SINGLE_READS = 10
FEED_DETAILS_PAGE = 1000
ORDERS_PAGE = 200
# §3.2: lines refused for good; SYSTEM_ERROR and TIMEOUT_ERROR may pass when sent again.
APPLIED, REFUSED = "SUCCESS", "DATA_ERROR"
RETRIED = frozenset({"SYSTEM_ERROR", "TIMEOUT_ERROR"})


class WalmartConnector(Connector):
    """Walmart Marketplace (US), the default ship node or several.

    Listings: ``external_id`` is the seller SKU (Walmart's stock-bearing id). Order lines
    carry the SKU, matched against ``external_id`` (then ``external_sku``).

    Writes are absolute (§3.2: no compare-and-set, no idempotency key): the pipeline sends
    no compare and works the figure out from the master at send time. A batch of up to
    ``feed_threshold`` items goes as one ``PUT /v3/inventory`` per SKU (applied at once); a
    larger one as an inventory feed, whose items wait as submitted writes until
    ``read_submissions`` reads each line's ingestion status.

    ``platform_settings``: ``feed_threshold`` (default 10), ``max_batch_size`` (default
    1000), ``timeout_s`` (read timeout, default 10), ``webhook_auth_method`` (``HMAC``,
    the default, or ``BASIC_AUTH``) and
    ``webhook_auth_header`` (default ``X-Walmart-Signature``): as set in the Walmart
    webhook subscription; the channel's webhook secret is the HMAC key, or for Basic auth
    "user:password". ``credentials``: ``client_id``, ``client_secret``.

    Multi-node: ``platform_settings["ship_nodes"]`` maps each of the channel's location codes
    to a Walmart ship node (a listing may map its own in ``extra_identifiers["ship_nodes"]``).
    The channel then holds a figure per location (``Capability.LOCATION_QUANTITIES``): small
    batches go as one ``PUT /v3/inventories/{sku}`` per SKU with every node's figure, large
    ones as a spec 1.5 ``MP_INVENTORY`` feed, and reads sum ``availToSellQty`` over the
    listing's mapped nodes. A location without a node refuses the listing's writes: its
    stock would be counted and never listed.
    """

    platform = "walmart"
    api_domains = API_DOMAINS
    capabilities = frozenset(
        {
            Capability.ASYNC_WRITES,
            Capability.HTTP_WEBHOOKS,
            Capability.LEVEL_MESSAGES,
            Capability.ORDER_POLL,
        }
    )
    max_batch_size = 1000
    max_read_batch_size = 100
    identifier_order = ("external_id", "external_sku")
    listing_field_of_identifier = {"sku": "external_id"}
    kept_headers = ("content-type",)
    # §3.1: three attempts; their spacing is not documented [M].
    order_redelivery_window_s = 3600.0
    order_placed_topic = webhooks.PO_CREATED
    # §3.2: a feed takes 10 minutes to 2 hours; asking more often only spends the limit.
    submission_poll_interval_s = 300.0
    # §6 Walmart: a PUT answered 200 can leave reads showing the old figure "for a while";
    # how long is not documented [M].
    read_after_write_lag_s = 600.0

    def __init__(self, channel: Channel) -> None:
        super().__init__(channel)
        settings: Mapping[str, Any] = channel.platform_settings or {}
        credentials: Mapping[str, Any] = channel.credentials or {}
        self.feed_threshold = int(settings.get("feed_threshold") or DEFAULT_FEED_THRESHOLD)
        self.ship_nodes = _node_map(settings.get("ship_nodes"))
        self.webhook_auth_method = str(settings.get("webhook_auth_method") or webhooks.HMAC)
        self.webhook_auth_header = str(
            settings.get("webhook_auth_header") or webhooks.DEFAULT_AUTH_HEADER
        )
        self.client = WalmartClient(
            base_url=channel.api_base_url,
            client_id=str(credentials.get("client_id", "")),
            client_secret=str(credentials.get("client_secret", "")),
            read_timeout_s=float(settings.get("timeout_s") or DEFAULT_READ_TIMEOUT_S),
        )

    def has(self, capability: Capability) -> bool:
        """A channel that maps ship nodes also holds a figure per location."""
        if capability == Capability.LOCATION_QUANTITIES:
            return bool(self.ship_nodes)
        return super().has(capability)

    def nodes_of(self, extra_identifiers: Mapping[str, object]) -> dict[str, str]:
        """The listing's ship node per location code (its own mapping, else the channel's)."""
        return _node_map(extra_identifiers.get("ship_nodes")) or self.ship_nodes

    def rate_budget(self) -> RateBudget | None:
        return self.client.budget

    # -- Writes ------------------------------------------------------------------------------

    def _refusal(self, update: QuantityUpdate) -> str:
        if not update.external_id.strip():
            return "The listing has no Walmart SKU (external_id)."
        if self.ship_nodes:
            nodes = self.nodes_of(update.extra_identifiers)
            unmapped = sorted(set(update.location_quantities) - set(nodes))
            if unmapped:
                return f"No Walmart ship node for location(s) {', '.join(unmapped)} (ship_nodes)."
            if not update.location_quantities:
                return "The channel sells from no location mapped to a Walmart ship node."
        return ""

    def _send_batch(self, updates: Sequence[QuantityUpdate]) -> list[ItemResult]:
        if self.ship_nodes:
            if len(updates) > self.feed_threshold:
                return self._send_feed(updates, multi_node=True)
            return self._put_nodes_each(updates)
        if len(updates) > self.feed_threshold:
            return self._send_feed(updates)
        return self._put_each(updates)

    def _node_quantities(self, update: QuantityUpdate) -> list[dict[str, Any]]:
        nodes = self.nodes_of(update.extra_identifiers)
        return [
            {"shipNode": nodes[code], "quantity": {"unit": "EACH", "amount": amount}}
            for code, amount in sorted(update.location_quantities.items())
        ]

    def _put_nodes_each(self, updates: Sequence[QuantityUpdate]) -> list[ItemResult]:
        """``PUT /v3/inventories/{sku}`` per item, every mapped node's figure in one call
        (§3.2, WM5/WM7); applied when every node reports success."""
        results: list[ItemResult] = []
        for position, update in enumerate(updates):
            nodes = [
                {"shipNode": node["shipNode"], "inputQty": node["quantity"]}
                for node in self._node_quantities(update)
            ]
            try:
                response = self.client.call(
                    "PUT",
                    f"/v3/inventories/{urllib.parse.quote(update.external_id, safe='')}",
                    json={"inventories": {"nodes": nodes}},
                )
            except ChannelError as error:
                if position == 0:
                    raise
                results += [
                    ItemResult(later.listing_id, ItemStatus.RETRY, str(error))
                    for later in updates[position:]
                ]
                break
            failed = _failed_nodes(_json(response)) if response.status_code == 200 else ""
            if response.status_code == 200 and not failed:
                results.append(ItemResult(update.listing_id, ItemStatus.APPLIED))
            else:
                # §3.4: a 4xx, or a node refused (not one of the seller's ship nodes): sent
                # again it fails again.
                reason = failed or f"HTTP {response.status_code}: {error_message(response)}"
                results.append(ItemResult(update.listing_id, ItemStatus.REJECTED, reason))
        return results

    def _put_each(self, updates: Sequence[QuantityUpdate]) -> list[ItemResult]:
        """``PUT /v3/inventory?sku=`` per item (§3.2), applied when answered 200.

        A call that fails as a whole after earlier items went through leaves the rest to
        retry; before any, it fails the batch.
        """
        results: list[ItemResult] = []
        for position, update in enumerate(updates):
            try:
                response = self.client.call(
                    "PUT",
                    "/v3/inventory",
                    params={"sku": update.external_id},
                    json={
                        "sku": update.external_id,
                        "quantity": {"unit": "EACH", "amount": update.quantity},
                    },
                )
            except FeedTooLarge as error:
                results.append(ItemResult(update.listing_id, ItemStatus.REJECTED, str(error)))
                continue
            except ChannelError as error:
                if position == 0:
                    raise
                results += [
                    ItemResult(later.listing_id, ItemStatus.RETRY, str(error))
                    for later in updates[position:]
                ]
                break
            if response.status_code == 200:
                results.append(ItemResult(update.listing_id, ItemStatus.APPLIED))
            else:
                # §3.4: a 4xx about the item (unknown SKU, bad quantity): sent again it
                # fails again.
                results.append(
                    ItemResult(
                        update.listing_id,
                        ItemStatus.REJECTED,
                        f"HTTP {response.status_code}: {error_message(response)}",
                    )
                )
        return results

    def _send_feed(
        self, updates: Sequence[QuantityUpdate], *, multi_node: bool = False
    ) -> list[ItemResult]:
        """One spec 1.4 inventory feed, or 1.5 ``MP_INVENTORY`` with every item's nodes
        (§3.2): every item PENDING on ``feed:<id>``.

        A 413 splits the feed in halves, each sent on its own; never the same file again.
        """
        document: dict[str, Any]
        if multi_node:
            # §3.2 (WM6): multi-node is spec 1.5, JSON only, ship nodes required; the
            # feedType name and the per-item ``shipNodes`` list are [M].
            document = {
                "InventoryHeader": {"version": "1.5"},
                "Inventory": [
                    {"sku": u.external_id, "shipNodes": self._node_quantities(u)} for u in updates
                ],
            }
        else:
            document = {
                "InventoryHeader": {"version": "1.4"},
                "Inventory": [
                    {"sku": u.external_id, "quantity": {"unit": "EACH", "amount": u.quantity}}
                    for u in updates
                ],
            }
        boundary = uuid.uuid4().hex
        body = (
            (
                f"--{boundary}\r\n"
                'Content-Disposition: form-data; name="file"; filename="inventory.json"\r\n'
                "Content-Type: application/json\r\n\r\n"
            ).encode()
            + json.dumps(document).encode()
            + f"\r\n--{boundary}--\r\n".encode()
        )
        try:
            response = self.client.call(
                "POST",
                "/v3/feeds",
                params={"feedType": MULTI_NODE_FEED_TYPE if multi_node else "inventory"},
                data=body,
                content_type=f"multipart/form-data; boundary={boundary}",
            )
        except FeedTooLarge:
            if len(updates) == 1:
                return self._put_nodes_each(updates) if multi_node else self._put_each(updates)
            middle = len(updates) // 2
            return self._send_feed(updates[:middle], multi_node=multi_node) + self._send_feed(
                updates[middle:], multi_node=multi_node
            )
        feed_id = (_json(response) or {}).get("feedId")
        if response.status_code != 200 or not feed_id:
            message = f"HTTP {response.status_code}: {error_message(response)}"
            raise ChannelError(f"Walmart did not accept the inventory feed: {message}")
        return [
            ItemResult(u.listing_id, ItemStatus.PENDING, submission_id=f"{FEED_PREFIX}{feed_id}")
            for u in updates
        ]

    def read_submissions(self, submissions: Sequence[SubmissionRef]) -> list[ItemResult]:
        """Each item's outcome from its feed's line (§3.2: a PROCESSED feed may still hold
        failed lines): SUCCESS applied; DATA_ERROR refused, with Walmart's reason;
        SYSTEM_ERROR and TIMEOUT_ERROR to send again; a feed in ERROR, all to send again."""
        feeds: dict[str, tuple[str, dict[str, Mapping[str, Any]]]] = {}
        for submission_id in dict.fromkeys(ref.submission_id for ref in submissions):
            feeds[submission_id] = self._feed_status(submission_id.removeprefix(FEED_PREFIX))
        results = []
        for ref in submissions:
            status, lines = feeds[ref.submission_id]
            line = lines.get(ref.external_id)
            ingestion = str(line.get("ingestionStatus", "")) if line else ""
            if status == "ERROR":
                outcome = ItemResult(ref.listing_id, ItemStatus.RETRY, "The feed failed whole.")
            elif ingestion == APPLIED:
                outcome = ItemResult(ref.listing_id, ItemStatus.APPLIED)
            elif ingestion == REFUSED:
                outcome = ItemResult(ref.listing_id, ItemStatus.REJECTED, _line_errors(line))
            elif ingestion in RETRIED:
                outcome = ItemResult(ref.listing_id, ItemStatus.RETRY, _line_errors(line))
            elif status == "PROCESSED":
                outcome = ItemResult(
                    ref.listing_id, ItemStatus.RETRY, "The processed feed has no line for it."
                )
            else:
                outcome = ItemResult(ref.listing_id, ItemStatus.PENDING)
            results.append(outcome)
        return results

    def _feed_status(self, feed_id: str) -> tuple[str, dict[str, Mapping[str, Any]]]:
        """The feed's status and its lines by SKU, every page of them."""
        lines: dict[str, Mapping[str, Any]] = {}
        offset = 0
        while True:
            response = self.client.call(
                "GET",
                f"/v3/feeds/{feed_id}",
                params={
                    "includeDetails": "true",
                    "offset": str(offset),
                    "limit": str(FEED_DETAILS_PAGE),
                },
            )
            body = _json(response)
            if response.status_code == 404:
                return "ERROR", {}
            if response.status_code != 200 or body is None:
                raise ChannelError(f"Walmart answered HTTP {response.status_code} for a feed.")
            details = body.get("itemDetails") or {}
            page = details.get("itemIngestionStatus") or []
            for line in page:
                if isinstance(line, dict) and line.get("sku") is not None:
                    lines[str(line["sku"])] = line
            offset += len(page)
            if not page or offset >= int(body.get("itemsReceived") or 0):
                return str(body.get("feedStatus") or ""), lines

    # -- Reads -------------------------------------------------------------------------------

    def _read_batch(self, listings: Sequence[ListingRef]) -> dict[int, int | None]:
        """What can be bought (``availToSellQty``, §3.3): units sold and not shipped
        (``reservedQty``) are counted in ``inputQty`` only, and are no drift."""
        if self.ship_nodes:
            return self._read_nodes(listings)
        if len(listings) <= MAX_SINGLE_READS:
            found = {}
            for listing in listings:
                response = self.client.call("GET", f"/v3/inventories/{listing.external_id}")
                if response.status_code == 200:
                    found[listing.external_id] = _available(_json(response))
                elif response.status_code != 404:
                    raise ChannelError(f"Walmart answered HTTP {response.status_code}.")
        else:
            found = {sku: _available(entry) for sku, entry in self._every_inventory().items()}
        return {listing.listing_id: found.get(listing.external_id) for listing in listings}

    def _read_nodes(self, listings: Sequence[ListingRef]) -> dict[int, int | None]:
        """Multi-node: ``availToSellQty`` summed over the listing's mapped nodes (a mapped
        node Walmart does not report holds nothing there)."""
        entries: dict[str, Mapping[str, Any] | None]
        if len(listings) <= MAX_SINGLE_READS:
            entries = {}
            for listing in listings:
                response = self.client.call(
                    "GET", f"/v3/inventories/{urllib.parse.quote(listing.external_id, safe='')}"
                )
                if response.status_code == 200:
                    entries[listing.external_id] = _json(response)
                elif response.status_code != 404:
                    raise ChannelError(f"Walmart answered HTTP {response.status_code}.")
        else:
            entries = dict(self._every_inventory())
        found: dict[int, int | None] = {}
        for listing in listings:
            entry = entries.get(listing.external_id)
            found[listing.listing_id] = (
                None
                if entry is None
                else _available_at(entry, set(self.nodes_of(listing.extra_identifiers).values()))
            )
        return found

    def _every_inventory(self) -> dict[str, Mapping[str, Any]]:
        found: dict[str, Mapping[str, Any]] = {}
        cursor = ""
        while True:
            params = {"limit": str(INVENTORIES_PAGE)}
            if cursor:
                params["nextCursor"] = cursor
            body = _json(self.client.call("GET", "/v3/inventories", params=params)) or {}
            elements = body.get("elements") or {}
            for entry in elements.get("inventories") or []:
                if isinstance(entry, dict) and entry.get("sku") is not None:
                    found[str(entry["sku"])] = entry
            cursor = str((body.get("meta") or {}).get("nextCursor") or "")
            if not cursor:
                return found

    # -- Inbound (``channels.connectors.walmart.webhooks``) ----------------------------------

    def _signature_matches(self, *, secret: str, headers: Mapping[str, str], body: bytes) -> bool:
        return webhooks.verify_walmart_webhook(
            secret=secret,
            headers=headers,
            body=body,
            method=self.webhook_auth_method,
            header=self.webhook_auth_header,
        )

    def kept_webhook_headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        kept = super().kept_webhook_headers(headers)
        # An HMAC signature is kept to verify again later; a Basic auth header is a
        # password, never stored.
        if self.webhook_auth_method == webhooks.HMAC:
            wanted = self.webhook_auth_header.lower()
            kept |= {
                name: value
                for name, value in headers.items()
                if name.lower() == wanted and "\x00" not in value
            }
        return kept

    def webhook_envelope(self, headers: Mapping[str, str], body: bytes) -> WebhookEnvelope:
        return webhooks.walmart_webhook_envelope(body)

    def webhook_contradiction(self, topic: str, body: bytes) -> str:
        return webhooks.topic_contradiction(topic, body)

    def parse_webhook(self, topic: str, body: bytes) -> WebhookMessage:
        return webhooks.parse_walmart_webhook(topic, body)

    def poll_orders(self, *, since: dt.datetime) -> list[PulledNotification]:
        """``GET /v3/orders`` changed since then, every page, as the PO_CREATED and
        PO_LINE_AUTOCANCELLED events they imply."""
        events: list[PulledNotification] = []
        params: Mapping[str, str] | None = {
            "lastModifiedStartDate": since.astimezone(dt.UTC).isoformat(),
            "limit": str(ORDERS_PAGE),
        }
        while params is not None:
            body = _json(self.client.call("GET", "/v3/orders", params=params)) or {}
            orders_list = body.get("list") or {}
            for order in (orders_list.get("elements") or {}).get("order") or []:
                if isinstance(order, dict):
                    events.extend(webhooks.events_of_polled_order(order))
            cursor = str((orders_list.get("meta") or {}).get("nextCursor") or "")
            # The cursor is a query string carrying the filter again.
            params = {"nextCursor": cursor} if cursor else None
        return events


def _json(response: Any) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _available(entry: Mapping[str, Any] | None) -> int | None:
    """The default node's ``availToSellQty`` (a single-node item has one node)."""
    nodes = (entry or {}).get("nodes") or []
    for node in nodes:
        if isinstance(node, dict) and isinstance(node.get("availToSellQty"), dict):
            return int(node["availToSellQty"]["amount"])
    return None


def _available_at(entry: Mapping[str, Any], ship_nodes: set[str]) -> int:
    """``availToSellQty`` summed over these nodes of the item."""
    total = 0
    for node in entry.get("nodes") or []:
        if (
            isinstance(node, dict)
            and node.get("shipNode") in ship_nodes
            and isinstance(node.get("availToSellQty"), dict)
        ):
            total += int(node["availToSellQty"]["amount"])
    return total


def _failed_nodes(body: Mapping[str, Any] | None) -> str:
    """§3.2 (WM7): the nodes a multi-node PUT did not report a success for, and why (the
    answer's shape is [M]); "" when every node succeeded."""
    nodes = ((body or {}).get("inventories") or {}).get("nodes")
    if not isinstance(nodes, list):
        return "Walmart's answer reported no status per node."
    failed = []
    for node in nodes:
        if not isinstance(node, dict):
            continue
        if str(node.get("status", "")).upper() != "SUCCESS":
            reasons = "; ".join(
                f"{error.get('code', 'ERROR')}: {error.get('message', '')}"
                for error in node.get("errors") or []
                if isinstance(error, dict)
            )
            failed.append(f"node {node.get('shipNode')}: {reasons or node.get('status')}")
    return "; ".join(failed)


def _node_map(value: object) -> dict[str, str]:
    """A ``{location code: ship node}`` setting, as strings ({} when unset or malformed)."""
    if not isinstance(value, Mapping):
        return {}
    return {str(code): str(node) for code, node in value.items() if node}


def _line_errors(line: Mapping[str, Any] | None) -> str:
    errors = ((line or {}).get("ingestionErrors") or {}).get("ingestionError") or []
    described = [
        f"{error.get('type') or error.get('code') or 'ERROR'}: {error.get('description', '')}"
        for error in errors
        if isinstance(error, dict)
    ]
    status = (line or {}).get("ingestionStatus", "")
    return "; ".join(described) or f"Walmart reported {status} for the line."
