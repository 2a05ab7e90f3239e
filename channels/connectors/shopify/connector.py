"""Shopify: absolute quantities through the Admin GraphQL ``inventorySetQuantities`` mutation.

Wire facts cite ``CHANNEL_APIS.md`` §1 (shared folder). The simulator in
``channels.simulators.shopify`` speaks the same dialect.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from channels.connectors.base import ChannelError, Connector
from channels.connectors.shopify import webhooks
from channels.connectors.shopify.client import API_DOMAINS, ShopifyClient
from channels.connectors.types import (
    Capability,
    ItemResult,
    ItemStatus,
    ListingRef,
    MessageLine,
    PulledNotification,
    QuantityUpdate,
    WebhookEnvelope,
    WebhookMessage,
)

if TYPE_CHECKING:
    from channels.models import Channel

DEFAULT_API_VERSION = "2026-01"
# §1.2: changeFromQuantity replaces compareQuantity/ignoreCompareQuantity from this version.
CHANGE_FROM_QUANTITY_SINCE = "2026-01"
# §1.2: "commonly cited as about 250 quantities" [M]; a channel can lower it.
DEFAULT_MAX_BATCH_SIZE = 250
MAX_NODE_IDS = 250
DEFAULT_READ_TIMEOUT_S = 5.0
STALE_CODES = frozenset({"CHANGE_FROM_QUANTITY_STALE", "COMPARE_QUANTITY_STALE"})
# A fixed namespace makes the @idempotent key a pure function of the updates' keys.
IDEMPOTENCY_NAMESPACE = uuid.UUID("5b0c7b4e-8f0e-4c36-9d1a-3e6f0a4f2b11")

# §1.2: the @idempotent directive exists from 2026-01; an older version rejects the whole
# document naming it ("Directive @idempotent is not defined").
IDEMPOTENT_SINCE = "2026-01"
SET_QUANTITIES_MUTATION = """
mutation SetQuantities($input: InventorySetQuantitiesInput!) {
  inventorySetQuantities(input: $input)%s {
    inventoryAdjustmentGroup { id changes { name delta quantityAfterChange item { id } } }
    userErrors { code field message }
  }
}
"""
READ_LEVELS_QUERY = """
query ReadLevels($ids: [ID!]!, $locationId: ID!) {
  nodes(ids: $ids) {
    id
    ... on InventoryItem {
      inventoryLevel(locationId: $locationId) {
        quantities(names: ["available"]) { name quantity }
      }
    }
  }
}
"""


def _gid(kind: str, value: object) -> str:
    """Shopify's global id for a numeric id; a gid passes through unchanged."""
    text = str(value).strip()
    if text.startswith("gid://"):
        return text
    if not text.isdigit():
        raise ValueError(f"{kind} id {text!r} is neither numeric nor a gid")
    return f"gid://shopify/{kind}/{text}"


def _error_index(field: object) -> int | None:
    """The quantity a userError is about: ``["input", "quantities", "3", ...]`` → 3."""
    if not isinstance(field, list) or len(field) < 3 or field[:2] != ["input", "quantities"]:
        return None
    try:
        return int(field[2])
    except (TypeError, ValueError):
        return None


class ShopifyConnector(Connector):
    """Shopify Admin GraphQL, one location per listing.

    Listings: ``external_id`` is the inventory item id (numeric or gid), ``external_sku`` the
    SKU, ``extra_identifiers["variant_id"]`` the variant and, optionally,
    ``extra_identifiers["location_id"]`` a location overriding the channel's
    ``platform_settings["location_id"]``.

    Webhook lines (§1.1: orders carry variant and SKU, never the inventory item) are matched in
    ``identifier_order``: the line's ``variant_id`` against ``extra_identifiers["variant_id"]``,
    then its ``inventory_item_id`` against ``external_id``, then its ``sku`` against
    ``external_sku``.

    ``platform_settings``: ``api_version`` (default 2026-01), ``location_id``,
    ``max_batch_size`` (default 250), ``timeout_s`` (read timeout, default 5).
    """

    platform = "shopify"
    api_domains = API_DOMAINS
    capabilities = frozenset(
        {
            Capability.COMPARE_AND_SET,
            Capability.HTTP_WEBHOOKS,
            Capability.LEVEL_MESSAGES,
            Capability.ORDER_POLL,
        }
    )
    max_batch_size = DEFAULT_MAX_BATCH_SIZE
    max_read_batch_size = MAX_NODE_IDS
    identifier_order = ("variant_id", "external_id", "external_sku")
    listing_field_of_identifier = {"inventory_item_id": "external_id", "sku": "external_sku"}
    # X-Shopify-Topic, -Webhook-Id, -Hmac-Sha256 (to verify again later), -Shop-Domain...
    kept_headers = ("content-type", "x-shopify-")
    # §1.1: 8 retries over 4 hours.
    order_redelivery_window_s = 4 * 3600.0

    def __init__(self, channel: Channel) -> None:
        super().__init__(channel)
        settings: Mapping[str, Any] = channel.platform_settings or {}
        self.api_version = str(settings.get("api_version") or DEFAULT_API_VERSION)
        self.default_location_id = settings.get("location_id")
        base_url = channel.api_base_url.rstrip("/")
        self.client = ShopifyClient(
            admin_url=f"{base_url}/admin/api/{self.api_version}",
            access_token=str((channel.credentials or {}).get("access_token", "")),
            read_timeout_s=float(settings.get("timeout_s") or DEFAULT_READ_TIMEOUT_S),
        )

    @property
    def uses_change_from_quantity(self) -> bool:
        version = self.api_version
        return not version[:1].isdigit() or version >= CHANGE_FROM_QUANTITY_SINCE

    @property
    def takes_idempotency_key(self) -> bool:
        version = self.api_version
        return not version[:1].isdigit() or version >= IDEMPOTENT_SINCE

    # -- Writes ------------------------------------------------------------------------------

    def _refusal(self, update: QuantityUpdate) -> str:
        try:
            self._location_gid(update.extra_identifiers)
            _gid("InventoryItem", update.external_id)
        except ValueError as error:
            return str(error)
        return ""

    def _send_batch(self, updates: Sequence[QuantityUpdate]) -> list[ItemResult]:
        """Set absolute ``available`` quantities, in as few atomic mutations as it takes.

        The mutation is atomic (§6 Shopify), so after a userError the items that were fine are
        sent again without the bad ones: one bad item fails only itself.
        """
        results: dict[int, ItemResult] = {}
        for group in self._compare_groups(updates):
            results.update(self._push_atomic(updates, group))
        return [results[index] for index in range(len(updates))]

    def _compare_groups(self, updates: Sequence[QuantityUpdate]) -> list[list[int]]:
        indexes = list(range(len(updates)))
        if self.uses_change_from_quantity:
            return [indexes] if indexes else []
        # Up to 2025-10 ignoreCompareQuantity covers the whole call (§1.2), so updates with
        # and without a compare figure travel in separate calls.
        compared = [i for i in indexes if updates[i].compare_quantity is not None]
        uncompared = [i for i in indexes if updates[i].compare_quantity is None]
        return [group for group in (compared, uncompared) if group]

    def _push_atomic(
        self, updates: Sequence[QuantityUpdate], indexes: list[int]
    ) -> dict[int, ItemResult]:
        results: dict[int, ItemResult] = {}
        pending = list(indexes)
        while pending:
            user_errors = self._set_quantities([updates[i] for i in pending])
            if not user_errors:
                for index in pending:
                    results[index] = ItemResult(updates[index].listing_id, ItemStatus.APPLIED)
                break
            failed: dict[int, dict[str, Any]] = {}
            for error in user_errors:
                position = _error_index(error.get("field"))
                if position is not None and 0 <= position < len(pending):
                    failed.setdefault(pending[position], error)
            if not failed:
                # An error about the call itself (reason, batch size...): no item can pass,
                # and none is to blame, so each is tried again with its backoff.
                message = "; ".join(_describe(error) for error in user_errors)
                for index in pending:
                    results[index] = ItemResult(
                        updates[index].listing_id, ItemStatus.RETRY, message
                    )
                break
            for index, error in failed.items():
                # A stale item's figure is read back by the base class's flow.
                status = (
                    ItemStatus.STALE if error.get("code") in STALE_CODES else ItemStatus.REJECTED
                )
                results[index] = ItemResult(updates[index].listing_id, status, _describe(error))
            pending = [index for index in pending if index not in failed]
        return results

    def _set_quantities(self, batch: Sequence[QuantityUpdate]) -> list[dict[str, Any]]:
        """One atomic mutation; its userErrors (empty when everything was applied)."""
        key = str(
            uuid.uuid5(
                IDEMPOTENCY_NAMESPACE,
                "\n".join(sorted(update.idempotency_key for update in batch)),
            )
        )
        quantities: list[dict[str, Any]] = []
        for update in batch:
            quantity: dict[str, Any] = {
                "inventoryItemId": _gid("InventoryItem", update.external_id),
                "locationId": self._location_gid(update.extra_identifiers),
                "quantity": update.quantity,
            }
            if self.uses_change_from_quantity:
                # §1.2: mandatory from 2026-01; null skips the check.
                quantity["changeFromQuantity"] = update.compare_quantity
            elif update.compare_quantity is not None:
                quantity["compareQuantity"] = update.compare_quantity
            quantities.append(quantity)
        input_: dict[str, Any] = {
            "name": "available",
            "reason": "correction",
            "referenceDocumentUri": f"gid://nventory/Push/{key}",
            "quantities": quantities,
        }
        if not self.uses_change_from_quantity:
            input_["ignoreCompareQuantity"] = batch[0].compare_quantity is None
        directive = f' @idempotent(key: "{key}")' if self.takes_idempotency_key else ""
        data = self.client.graphql(SET_QUANTITIES_MUTATION % directive, {"input": input_})
        payload = data.get("inventorySetQuantities")
        if not isinstance(payload, dict):
            raise ChannelError("Shopify answered inventorySetQuantities without a payload.")
        return list(payload.get("userErrors") or [])

    # -- Reads -------------------------------------------------------------------------------

    def _read_batch(self, listings: Sequence[ListingRef]) -> dict[int, int | None]:
        """``available`` per listing id, one ``nodes`` query per location."""
        by_location: dict[str, list[ListingRef]] = {}
        quantities: dict[int, int | None] = {}
        for listing in listings:
            try:
                location = self._location_gid(listing.extra_identifiers)
                _gid("InventoryItem", listing.external_id)
            except ValueError:
                quantities[listing.listing_id] = None
                continue
            by_location.setdefault(location, []).append(listing)
        for location, located in by_location.items():
            ids = [_gid("InventoryItem", listing.external_id) for listing in located]
            data = self.client.graphql(READ_LEVELS_QUERY, {"ids": ids, "locationId": location})
            nodes = data.get("nodes")
            if not isinstance(nodes, list) or len(nodes) != len(located):
                raise ChannelError("Shopify answered nodes with the wrong number of items.")
            for listing, node in zip(located, nodes, strict=True):
                quantities[listing.listing_id] = _available(node)
        return quantities

    # -- Inbound (``channels.connectors.shopify.webhooks``) ----------------------------------

    def _signature_matches(self, *, secret: str, headers: Mapping[str, str], body: bytes) -> bool:
        return webhooks.verify_shopify_webhook(secret=secret, headers=headers, body=body)

    def webhook_envelope(self, headers: Mapping[str, str], body: bytes) -> WebhookEnvelope:
        return webhooks.shopify_webhook_envelope(headers)

    def webhook_contradiction(self, topic: str, body: bytes) -> str:
        return webhooks.topic_contradiction(topic, body)

    def acts_on_topic(self, topic: str) -> bool:
        return webhooks.acts_on_topic(topic)

    def parse_webhook(self, topic: str, body: bytes) -> WebhookMessage:
        return webhooks.parse_shopify_webhook(topic, body)

    def poll_orders(self, *, since: dt.datetime) -> list[PulledNotification]:
        """The REST orders list (its Order is the webhooks' payload shape, §1.1), as the
        orders/create, orders/cancelled and refunds/create events it implies."""
        pages = self.client.rest_pages(
            "orders.json",
            {"status": "any", "updated_at_min": since.isoformat(), "limit": "250"},
        )
        events = []
        for page in pages:
            for order in page.get("orders") or []:
                events.extend(webhooks.events_of_polled_order(order))
        return events

    def lookup_values(self, identifier: str, value: str) -> tuple[str, ...]:
        # Listings may hold the GraphQL global id where webhooks send the bare number.
        if identifier == "external_id" and value.isdigit():
            return (value, f"gid://shopify/InventoryItem/{value}")
        return (value,)

    def level_applies_to(self, *, listing: ListingRef, line: MessageLine) -> bool:
        ours = listing.extra_identifiers.get("location_id") or self.default_location_id
        theirs = line.identifiers.get("location_id")
        if not ours or not theirs:
            return True
        return _id_tail(str(ours)) == _id_tail(theirs)

    def _location_gid(self, extra_identifiers: Mapping[str, object]) -> str:
        location = extra_identifiers.get("location_id") or self.default_location_id
        if location in (None, ""):
            raise ValueError("No Shopify location: set platform_settings['location_id'].")
        return _gid("Location", location)


def _id_tail(identifier: str) -> str:
    # A numeric id and its GraphQL gid ("gid://shopify/Location/12") name the same thing.
    return identifier.rsplit("/", 1)[-1]


def _available(node: object) -> int | None:
    if not isinstance(node, dict) or not isinstance(node.get("inventoryLevel"), dict):
        return None
    for quantity in node["inventoryLevel"].get("quantities") or []:
        if quantity.get("name") == "available":
            return int(quantity["quantity"])
    return None


def _describe(error: Mapping[str, Any]) -> str:
    return f"{error.get('code') or 'ERROR'}: {error.get('message', '')}".strip()
