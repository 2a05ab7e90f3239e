"""Shopify: absolute quantities through the Admin GraphQL ``inventorySetQuantities`` mutation.

Wire facts cite ``CHANNEL_APIS.md`` §1 (shared folder). The simulator in
``channels.simulators.shopify`` speaks the same dialect.
"""

from __future__ import annotations

import functools
import os
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import requests
from django.utils import timezone
from requests.adapters import HTTPAdapter

from channels.connectors.base import (
    ChannelAuthError,
    ChannelError,
    ChannelThrottled,
    Connector,
    ItemResult,
    ItemStatus,
    ListingRef,
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
CONNECT_TIMEOUT_S = 1.0
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

_sessions = threading.local()


def _session() -> requests.Session:
    """One keep-alive session per process and thread.

    Reusing connections keeps a push within the latency budget; a forked worker must not share
    its parent's sockets, and a Session's cookie jar is not thread-safe.
    """
    session: requests.Session | None = getattr(_sessions, "session", None)
    if session is None or _sessions.pid != os.getpid():
        session = requests.Session()
        session.mount("https://", HTTPAdapter(pool_connections=8, pool_maxsize=32))
        session.mount("http://", HTTPAdapter(pool_connections=8, pool_maxsize=32))
        # requests reads the proxy, CA-bundle and .netrc settings from the environment on
        # every call when trust_env is on: a scan of every variable, a quarter of a push's
        # CPU. They are read once instead: here, and per URL in _proxies_for.
        session.trust_env = False
        session.verify = (
            os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        )
        _sessions.session, _sessions.pid = session, os.getpid()
    return session


@functools.lru_cache(maxsize=256)
def _proxies_for(url: str) -> dict[str, str]:
    """The proxies the environment sets for this URL (none if NO_PROXY covers it)."""
    return dict(requests.utils.get_environ_proxies(url))


def _gid(kind: str, value: object) -> str:
    """Shopify's global id for a numeric id; a gid passes through unchanged."""
    text = str(value).strip()
    if text.startswith("gid://"):
        return text
    if not text.isdigit():
        raise ValueError(f"{kind} id {text!r} is neither numeric nor a gid")
    return f"gid://shopify/{kind}/{text}"


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


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
    max_batch_size = DEFAULT_MAX_BATCH_SIZE
    identifier_order = ("variant_id", "external_id", "external_sku")

    def __init__(self, channel: Channel) -> None:
        super().__init__(channel)
        settings: Mapping[str, Any] = channel.platform_settings or {}
        self.api_version = str(settings.get("api_version") or DEFAULT_API_VERSION)
        self.default_location_id = settings.get("location_id")
        self.read_timeout_s = float(settings.get("timeout_s") or DEFAULT_READ_TIMEOUT_S)
        self.max_batch_size = int(settings.get("max_batch_size") or DEFAULT_MAX_BATCH_SIZE)
        base_url = channel.api_base_url.rstrip("/")
        self.graphql_url = f"{base_url}/admin/api/{self.api_version}/graphql.json"

    @property
    def uses_change_from_quantity(self) -> bool:
        version = self.api_version
        return not version[:1].isdigit() or version >= CHANGE_FROM_QUANTITY_SINCE

    @property
    def takes_idempotency_key(self) -> bool:
        version = self.api_version
        return not version[:1].isdigit() or version >= IDEMPOTENT_SINCE

    # -- Push --------------------------------------------------------------------------------

    def push_quantities(self, updates: Sequence[QuantityUpdate]) -> list[ItemResult]:
        """Set absolute ``available`` quantities; one result per update, in input order.

        The mutation is atomic (§6 Shopify), so after a userError the items that were fine are
        sent again without the bad ones: one bad item fails only itself. Stale items are read
        back for ``actual_quantity``. Raises ``ChannelThrottled``, ``ChannelAuthError`` or
        ``ChannelError`` when a call fails as a whole.
        """
        results: dict[int, ItemResult] = {}
        sendable: list[int] = []
        locations: dict[int, str] = {}
        for index, update in enumerate(updates):
            try:
                locations[index] = self._location_gid(update.extra_identifiers)
                _gid("InventoryItem", update.external_id)
            except ValueError as error:
                results[index] = ItemResult(update.listing_id, ItemStatus.REJECTED, str(error))
                continue
            sendable.append(index)
        for group in self._compare_groups(updates, sendable):
            for chunk in _chunks(group, self.max_batch_size):
                results.update(self._push_atomic_batch(updates, list(chunk), locations))
        return [results[index] for index in range(len(updates))]

    def _compare_groups(
        self, updates: Sequence[QuantityUpdate], indexes: list[int]
    ) -> list[list[int]]:
        if self.uses_change_from_quantity:
            return [indexes] if indexes else []
        # Up to 2025-10 ignoreCompareQuantity covers the whole call (§1.2), so updates with
        # and without a compare figure travel in separate calls.
        compared = [i for i in indexes if updates[i].compare_quantity is not None]
        uncompared = [i for i in indexes if updates[i].compare_quantity is None]
        return [group for group in (compared, uncompared) if group]

    def _push_atomic_batch(
        self, updates: Sequence[QuantityUpdate], indexes: list[int], locations: dict[int, str]
    ) -> dict[int, ItemResult]:
        results: dict[int, ItemResult] = {}
        pending = list(indexes)
        while pending:
            user_errors = self._set_quantities([updates[i] for i in pending], pending, locations)
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
            results.update(self._failed_results(updates, failed))
            pending = [index for index in pending if index not in failed]
        return results

    def _failed_results(
        self, updates: Sequence[QuantityUpdate], failed: dict[int, dict[str, Any]]
    ) -> dict[int, ItemResult]:
        stale = [index for index, error in failed.items() if error.get("code") in STALE_CODES]
        actual: dict[int, int | None] = {}
        if stale:
            actual = self.read_quantities(
                [
                    ListingRef(
                        updates[i].listing_id, updates[i].external_id, updates[i].extra_identifiers
                    )
                    for i in stale
                ]
            )
        results: dict[int, ItemResult] = {}
        for index, error in failed.items():
            update = updates[index]
            if index in stale:
                results[index] = ItemResult(
                    update.listing_id,
                    ItemStatus.STALE,
                    _describe(error),
                    actual_quantity=actual.get(update.listing_id),
                )
            else:
                results[index] = ItemResult(
                    update.listing_id, ItemStatus.REJECTED, _describe(error)
                )
        return results

    def _set_quantities(
        self, batch: Sequence[QuantityUpdate], indexes: list[int], locations: dict[int, str]
    ) -> list[dict[str, Any]]:
        """One atomic mutation; its userErrors (empty when everything was applied)."""
        key = str(
            uuid.uuid5(
                IDEMPOTENCY_NAMESPACE,
                "\n".join(sorted(update.idempotency_key for update in batch)),
            )
        )
        quantities: list[dict[str, Any]] = []
        for update, index in zip(batch, indexes, strict=True):
            quantity: dict[str, Any] = {
                "inventoryItemId": _gid("InventoryItem", update.external_id),
                "locationId": locations[index],
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
        data = self._graphql(SET_QUANTITIES_MUTATION % directive, {"input": input_})
        payload = data.get("inventorySetQuantities")
        if not isinstance(payload, dict):
            raise ChannelError("Shopify answered inventorySetQuantities without a payload.")
        return list(payload.get("userErrors") or [])

    # -- Read --------------------------------------------------------------------------------

    def read_quantities(self, listings: Sequence[ListingRef]) -> dict[int, int | None]:
        """``available`` per listing id, from ``nodes`` queries of up to 250 items each."""
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
            for chunk in _chunks(located, MAX_NODE_IDS):
                ids = [_gid("InventoryItem", listing.external_id) for listing in chunk]
                data = self._graphql(READ_LEVELS_QUERY, {"ids": ids, "locationId": location})
                nodes = data.get("nodes")
                if not isinstance(nodes, list) or len(nodes) != len(chunk):
                    raise ChannelError("Shopify answered nodes with the wrong number of items.")
                for listing, node in zip(chunk, nodes, strict=True):
                    quantities[listing.listing_id] = _available(node)
        return quantities

    # -- Webhooks (``channels.connectors.shopify.webhooks``) ---------------------------------

    def verify_webhook(self, headers: Mapping[str, str], body: bytes) -> bool:
        from channels.connectors.shopify.webhooks import verify_shopify_webhook

        secrets = self.channel.webhook_secrets(timezone.now())
        return any(
            verify_shopify_webhook(secret=secret, headers=headers, body=body) for secret in secrets
        )

    def webhook_envelope(self, headers: Mapping[str, str], body: bytes) -> WebhookEnvelope:
        from channels.connectors.shopify.webhooks import shopify_webhook_envelope

        return shopify_webhook_envelope(headers)

    def parse_webhook(self, topic: str, body: bytes) -> WebhookMessage:
        from channels.connectors.shopify.webhooks import parse_shopify_webhook

        return parse_shopify_webhook(topic, body)

    # -- HTTP --------------------------------------------------------------------------------

    def _location_gid(self, extra_identifiers: Mapping[str, object]) -> str:
        location = extra_identifiers.get("location_id") or self.default_location_id
        if location in (None, ""):
            raise ValueError("No Shopify location: set platform_settings['location_id'].")
        return _gid("Location", location)

    def _graphql(self, query: str, variables: Mapping[str, Any]) -> dict[str, Any]:
        """POST one GraphQL call; its ``data``, or the matching ``ChannelError``."""
        token = str((self.channel.credentials or {}).get("access_token", ""))
        try:
            response = _session().post(
                self.graphql_url,
                json={"query": query, "variables": variables},
                headers={"X-Shopify-Access-Token": token, "Accept": "application/json"},
                timeout=(CONNECT_TIMEOUT_S, self.read_timeout_s),
                proxies=_proxies_for(self.graphql_url),
            )
        except requests.Timeout:
            raise ChannelError(
                f"Shopify did not answer within {self.read_timeout_s:g} s: the outcome is unknown."
            ) from None
        except requests.RequestException as error:
            raise ChannelError(f"Cannot reach Shopify: {type(error).__name__}.") from None
        retry_after_s = _retry_after(response.headers.get("Retry-After"))
        if response.status_code in (401, 403):
            raise ChannelAuthError(
                f"Shopify refused the access token (HTTP {response.status_code})."
            )
        body = _json_or_none(response)
        if response.status_code == 429:
            raise ChannelThrottled(
                "Shopify throttled the call (HTTP 429).",
                retry_after_s=retry_after_s or _throttle_wait_s(body),
            )
        if response.status_code != 200 or body is None:
            raise ChannelError(
                f"Shopify answered HTTP {response.status_code}.", retry_after_s=retry_after_s
            )
        errors = body.get("errors")
        if errors:
            if any(_error_code(error) == "THROTTLED" for error in errors):
                # §1.4: usually HTTP 200 with a THROTTLED error and no data.
                raise ChannelThrottled(
                    "Shopify throttled the call (THROTTLED).",
                    retry_after_s=_throttle_wait_s(body),
                )
            messages = "; ".join(
                str(error.get("message", error)) if isinstance(error, dict) else str(error)
                for error in (errors if isinstance(errors, list) else [errors])
            )
            raise ChannelError(f"Shopify GraphQL error: {messages}")
        data = body.get("data")
        if not isinstance(data, dict):
            raise ChannelError("Shopify answered without data.")
        return data


def _available(node: object) -> int | None:
    if not isinstance(node, dict) or not isinstance(node.get("inventoryLevel"), dict):
        return None
    for quantity in node["inventoryLevel"].get("quantities") or []:
        if quantity.get("name") == "available":
            return int(quantity["quantity"])
    return None


def _describe(error: Mapping[str, Any]) -> str:
    return f"{error.get('code') or 'ERROR'}: {error.get('message', '')}".strip()


def _error_code(error: object) -> str | None:
    if isinstance(error, dict) and isinstance(error.get("extensions"), dict):
        return error["extensions"].get("code")
    return None


def _json_or_none(response: requests.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _retry_after(header: str | None) -> float | None:
    try:
        return float(header) if header else None
    except ValueError:
        return None


def _throttle_wait_s(body: Mapping[str, Any] | None) -> float | None:
    """Seconds until the bucket holds the requested cost again (§1.4 throttleStatus)."""
    try:
        cost = body["extensions"]["cost"]  # type: ignore[index]
        status = cost["throttleStatus"]
        deficit = float(cost["requestedQueryCost"]) - float(status["currentlyAvailable"])
        restore_rate = float(status["restoreRate"])
    except (KeyError, TypeError, ValueError):
        return None
    if restore_rate <= 0:
        return None
    # A throttle with the bucket apparently full still deserves a short pause.
    return max(deficit / restore_rate, 1 / restore_rate)
