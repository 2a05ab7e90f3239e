"""A Shopify stand-in: the Admin GraphQL inventory dialect, cost throttling and signed webhooks.

Plain standard library (``http.server``), no Django and no database, so it runs anywhere a test
or a demo needs it. Several shops live side by side under ``/shops/<shop>``; a channel's
``api_base_url`` is ``http://HOST:PORT/shops/<shop>`` where the real platform would be
``https://<shop>.myshopify.com``.

Facts reproduced here come from ``CHANNEL_APIS.md`` §1 and §6 "Shopify" (shared folder). The
control API under ``/_sim/`` seeds stock, places orders (delivered as signed webhooks) and
injects faults; its routes are listed in ``_CONTROL_ROUTES``.
"""

from __future__ import annotations

import base64
import collections
import copy
import datetime as dt
import hashlib
import hmac
import http.client
import itertools
import json
import math
import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

JSON = dict[str, Any]

# §1.2: inventorySetQuantities takes only these two names.
SETTABLE_QUANTITY_NAMES = frozenset({"available", "on_hand"})
# §1.2: Shopify's fixed reason list (the list itself is [M]).
ADJUSTMENT_REASONS = frozenset(
    {
        "correction",
        "cycle_count_available",
        "damaged",
        "movement_canceled",
        "movement_created",
        "movement_received",
        "movement_updated",
        "other",
        "promotion",
        "quality_control",
        "received",
        "reservation_created",
        "reservation_deleted",
        "reservation_updated",
        "restock",
        "safety_stock",
        "shrinkage",
    }
)
# §1.2: from this version changeFromQuantity replaces compareQuantity/ignoreCompareQuantity.
CHANGE_FROM_QUANTITY_SINCE = "2026-01"
# §1.5
INVALID_TOKEN_BODY: JSON = {
    "errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"
}
# §1.4: requested costs; the cap is the older docs' single-query limit.
MUTATION_COST = 10
MAX_QUERY_COST = 1000
MAX_NODE_IDS = 250
THROTTLE_DOCUMENTATION = "https://shopify.dev/api/usage/rate-limits"
# §1.1: 1 s to connect, 5 s for the whole answer, 8 retries with exponential backoff.
WEBHOOK_CONNECT_TIMEOUT_S = 1.0
WEBHOOK_RESPONSE_TIMEOUT_S = 5.0
WEBHOOK_MAX_RETRIES = 8
# §1.1 / SH17
RESTOCK_TYPES = frozenset({"no_restock", "cancel", "return", "legacy_restock"})
RESTOCKING_TYPES = frozenset({"cancel", "return", "legacy_restock"})
# A long demo at 50 orders/s must not grow the logs without bound.
MAX_LOG_ENTRIES = 100_000

_IDEMPOTENT_KEY = re.compile(r'@idempotent\s*\(\s*key\s*:\s*"([^"]*)"\s*\)')
_QUANTITY_NAMES_LITERAL = re.compile(r"quantities\s*\(\s*names\s*:\s*\[([^\]]*)\]")
_GID = re.compile(r"^gid://shopify/(?P<kind>\w+)/(?P<id>\d+)(?:\?.*)?$")


def _now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def _gid(kind: str, number: int) -> str:
    return f"gid://shopify/{kind}/{number}"


def _parse_id(value: object, kind: str) -> int | None:
    """A numeric id from a gid of the given kind, or from a bare number; None if neither."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if not isinstance(value, str):
        return None
    if value.isdigit():
        return int(value)
    match = _GID.match(value)
    if match is None or match["kind"] != kind:
        return None
    return int(match["id"])


def _uses_change_from_quantity(api_version: str) -> bool:
    # "unstable" and any future "YYYY-MM" sort after the switch; the format compares as text.
    return not api_version[:1].isdigit() or api_version >= CHANGE_FROM_QUANTITY_SINCE


class ControlError(Exception):
    """A bad control-API call: answered with ``status`` and ``{"error": message}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _GraphQLError(Exception):
    """A request-level GraphQL error: ``{"errors": [...]}`` with no ``data``."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Response:
    status: int
    body: JSON
    headers: dict[str, str] = field(default_factory=dict)
    # The "unknown outcome" fault: the write is applied, then the answer comes too late.
    delay_s: float = 0.0


@dataclass
class Item:
    inventory_item_id: int
    variant_id: int
    sku: str
    product_id: int
    available: int
    committed: int = 0
    updated_at: str = field(default_factory=_now_iso)

    @property
    def on_hand(self) -> int:
        return self.available + self.committed

    def quantity(self, name: str) -> int:
        if name == "available":
            return self.available
        if name == "committed":
            return self.committed
        if name == "on_hand":
            return self.on_hand
        # incoming, reserved, damaged, quality_control, safety_stock: not modelled, always 0.
        return 0

    def as_json(self) -> JSON:
        return {
            "inventory_item_id": self.inventory_item_id,
            "variant_id": self.variant_id,
            "sku": self.sku,
            "product_id": self.product_id,
            "available": self.available,
            "committed": self.committed,
            "on_hand": self.on_hand,
            "updated_at": self.updated_at,
        }


@dataclass
class Faults:
    """Injected failures for the shop's Admin API calls (never for the control API)."""

    latency_ms: int = 0
    fail_next: int = 0
    fail_status: int = 503
    # Apply the write, then sleep this long before answering.
    timeout_next: int = 0
    timeout_s: float = 10.0
    # Answer success and apply nothing ("accepted but not applied"); writes only.
    drop_next: int = 0
    throttle_next: int = 0
    fail_rate: float = 0.0
    drop_rate: float = 0.0

    def update(self, values: Mapping[str, object]) -> None:
        known = {f.name: f for f in fields(self)}
        for name, value in values.items():
            if name == "reset":
                continue
            if name not in known:
                raise ControlError(400, f"Unknown fault {name!r}.")
            kind = type(getattr(Faults(), name))
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise ControlError(400, f"Fault {name!r} must be a number.")
            setattr(self, name, kind(value))


@dataclass
class ShopSettings:
    shop: str
    access_token: str
    webhook_url: str = ""
    webhook_secret: str = ""
    api_version: str = "2026-01"
    location_id: int = 1
    bucket_size: float = 1000.0
    restore_rate: float = 100.0
    # 200 (Shopify's usual answer) or 429, §1.4.
    throttle_status: int = 200
    max_quantities_per_call: int = 250
    webhook_retry_base_s: float = 1.0
    # Send inventory_levels/update for every change of an item's available quantity, ours
    # and the API's alike, as Shopify does to a shop subscribed to that topic; each is sent
    # on its own thread, so it may reach the receiver before or after the order behind it.
    level_webhooks: bool = False

    @classmethod
    def from_json(cls, body: Mapping[str, object]) -> ShopSettings:
        known = {f.name for f in fields(cls)}
        unknown = set(body) - known
        if unknown:
            raise ControlError(400, f"Unknown shop settings: {sorted(unknown)}.")
        if not isinstance(body.get("shop"), str) or not body["shop"]:
            raise ControlError(400, "'shop' is required.")
        if not isinstance(body.get("access_token"), str):
            raise ControlError(400, "'access_token' is required.")
        if body.get("throttle_status", 200) not in (200, 429):
            raise ControlError(400, "'throttle_status' is 200 or 429.")
        defaults = cls(shop="", access_token="")
        values: dict[str, Any] = {}
        for name in known & set(body):
            value = body[name]
            if name == "location_id":
                value = _parse_id(value, "Location")
            if name == "level_webhooks" and not isinstance(value, bool):
                raise ControlError(400, "'level_webhooks' is true or false.")
            try:
                values[name] = type(getattr(defaults, name))(value)
            except (TypeError, ValueError):
                raise ControlError(400, f"Bad value for {name!r}: {value!r}.") from None
        return cls(**values)


@dataclass
class Delivery:
    webhook_id: str
    topic: str
    # Retries go to the address set when the event fired (§1.1).
    url: str
    headers: dict[str, str]
    body: bytes
    attempts: list[JSON] = field(default_factory=list)

    def as_json(self) -> JSON:
        return {
            "webhook_id": self.webhook_id,
            "topic": self.topic,
            "url": self.url,
            "headers": self.headers,
            "payload": json.loads(self.body),
            "attempts": list(self.attempts),
        }


@dataclass
class LineItem:
    id: int
    variant_id: int
    sku: str
    product_id: int
    quantity: int
    refunded: int = 0
    restocked: int = 0

    def as_json(self) -> JSON:
        return {
            "id": self.id,
            "admin_graphql_api_id": _gid("LineItem", self.id),
            "product_id": self.product_id,
            "variant_id": self.variant_id,
            "sku": self.sku,
            "title": f"Product {self.sku}",
            "name": f"Product {self.sku}",
            "quantity": self.quantity,
            "fulfillable_quantity": self.quantity,
            "fulfillment_service": "manual",
            "requires_shipping": True,
            "price": "10.00",
        }


@dataclass
class Order:
    id: int
    name: str
    created_at: str
    line_items: list[LineItem]
    cancelled_at: str | None = None

    def as_json(self) -> JSON:
        return {
            "id": self.id,
            "admin_graphql_api_id": _gid("Order", self.id),
            "name": self.name,
            "order_number": int(self.name.lstrip("#")),
            "created_at": self.created_at,
            "updated_at": self.cancelled_at or self.created_at,
            "cancelled_at": self.cancelled_at,
            "cancel_reason": "customer" if self.cancelled_at else None,
            "financial_status": "paid",
            "fulfillment_status": None,
            "location_id": None,
            "currency": "USD",
            "line_items": [line.as_json() for line in self.line_items],
        }


class Shop:
    def __init__(self, settings: ShopSettings) -> None:
        self.settings = settings
        self.items: dict[int, Item] = {}
        self.faults = Faults()
        self.orders: dict[int, Order] = {}
        self.deliveries: dict[str, Delivery] = {}
        self.idempotent_results: dict[str, JSON] = {}
        self.requests: collections.deque[JSON] = collections.deque(maxlen=MAX_LOG_ENTRIES)
        self.changes: collections.deque[JSON] = collections.deque(maxlen=MAX_LOG_ENTRIES)
        self.request_seq = itertools.count(1)
        self.change_seq = itertools.count(1)
        self.bucket_available = settings.bucket_size
        self.bucket_updated = time.monotonic()

    @property
    def domain(self) -> str:
        return f"{self.settings.shop}.myshopify.com"

    def item_by_variant(self, variant_id: int) -> Item | None:
        return next((i for i in self.items.values() if i.variant_id == variant_id), None)

    def refill_bucket(self) -> None:
        now = time.monotonic()
        self.bucket_available = min(
            self.settings.bucket_size,
            self.bucket_available + (now - self.bucket_updated) * self.settings.restore_rate,
        )
        self.bucket_updated = now

    def throttle_status(self) -> JSON:
        return {
            "maximumAvailable": float(self.settings.bucket_size),
            "currentlyAvailable": math.floor(self.bucket_available),
            "restoreRate": float(self.settings.restore_rate),
        }


class ShopifySimulator:
    """All shops' state behind one lock; never held while delivering or sleeping."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._shops: dict[str, Shop] = {}
        self._stopping = threading.Event()
        # Shop-independent so ids never collide across shops or resets.
        self._order_ids = itertools.count(5_000_000_001)
        self._line_item_ids = itertools.count(11_000_000_001)
        self._refund_ids = itertools.count(900_000_001)
        self._event_ids = itertools.count(7_000_000_001)
        self._adjustment_ids = itertools.count(1)
        self._order_numbers = itertools.count(1001)

    def stop(self) -> None:
        self._stopping.set()

    # -- Admin API ---------------------------------------------------------------------------

    def handle_admin(
        self, *, shop_name: str, api_version: str, headers: Mapping[str, str], body: bytes
    ) -> Response:
        """Answer one Admin GraphQL call, logging it in the shop's request log."""
        with self._lock:
            shop = self._shops.get(shop_name)
            if shop is None:
                return Response(404, {"errors": "Not Found"})
            entry: JSON = {
                "seq": next(shop.request_seq),
                "time": time.time(),
                "api_version": api_version,
                "headers": dict(headers),
                "body": body.decode("utf-8", errors="replace"),
                "status": None,
            }
            shop.requests.append(entry)
        response = self._admin_response(shop, api_version, headers, body)
        with self._lock:
            entry["status"] = response.status
        return response

    def _admin_response(
        self, shop: Shop, api_version: str, headers: Mapping[str, str], body: bytes
    ) -> Response:
        token = next(
            (value for name, value in headers.items() if name.lower() == "x-shopify-access-token"),
            "",
        )
        if not hmac.compare_digest(token.encode(), shop.settings.access_token.encode()):
            return Response(401, INVALID_TOKEN_BODY)
        latency_ms = shop.faults.latency_ms
        if latency_ms:
            time.sleep(latency_ms / 1000)
        try:
            payload = json.loads(body)
            query = payload["query"]
            variables = payload.get("variables") or {}
            if not isinstance(query, str) or not isinstance(variables, dict):
                raise ValueError
        except (ValueError, KeyError, TypeError):
            return Response(400, {"errors": [{"message": "Invalid JSON or missing query."}]})
        with self._lock:
            return self._admin_call(shop, api_version, query, variables)

    def _admin_call(self, shop: Shop, api_version: str, query: str, variables: JSON) -> Response:
        faults = shop.faults
        if faults.fail_next > 0 or (faults.fail_rate and random.random() < faults.fail_rate):
            faults.fail_next = max(0, faults.fail_next - 1)
            return Response(faults.fail_status, {"errors": "Service Unavailable"})
        is_mutation = re.search(r"\binventorySetQuantities\s*\(", query) is not None
        is_nodes = not is_mutation and re.search(r"\bnodes\s*\(", query) is not None
        if is_nodes:
            ids = variables.get("ids")
            requested_cost = 1 + (len(ids) if isinstance(ids, list) else 0)
        else:
            requested_cost = MUTATION_COST
        shop.refill_bucket()
        if faults.throttle_next > 0 or shop.bucket_available < requested_cost:
            faults.throttle_next = max(0, faults.throttle_next - 1)
            return self._throttled(shop, requested_cost)
        if requested_cost > MAX_QUERY_COST:
            return self._graphql_errors(
                shop,
                requested_cost,
                f"Query cost is {requested_cost}, which exceeds the single query max cost "
                f"limit ({MAX_QUERY_COST}).",
                "MAX_COST_EXCEEDED",
            )
        shop.bucket_available -= requested_cost
        delay_s = 0.0
        if faults.timeout_next > 0:
            faults.timeout_next -= 1
            delay_s = faults.timeout_s
        try:
            data: JSON
            if is_mutation:
                dropped = faults.drop_next > 0 or bool(
                    faults.drop_rate and random.random() < faults.drop_rate
                )
                faults.drop_next = max(0, faults.drop_next - 1)
                data = {
                    "inventorySetQuantities": self._set_quantities(
                        shop, api_version, query, variables, apply=not dropped
                    )
                }
            elif is_nodes:
                data = {"nodes": self._nodes(shop, query, variables)}
            else:
                raise _GraphQLError(
                    "Field doesn't exist on type 'QueryRoot' or 'Mutation' (this simulator "
                    "knows inventorySetQuantities and nodes).",
                    "undefinedField",
                )
        except _GraphQLError as error:
            return self._graphql_errors(shop, requested_cost, str(error), error.code)
        return Response(
            200, {"data": data, "extensions": self._cost(shop, requested_cost)}, delay_s=delay_s
        )

    def _cost(self, shop: Shop, requested: int, *, actual: int | None = -1) -> JSON:
        return {
            "cost": {
                "requestedQueryCost": requested,
                "actualQueryCost": requested if actual == -1 else actual,
                "throttleStatus": shop.throttle_status(),
            }
        }

    def _throttled(self, shop: Shop, requested_cost: int) -> Response:
        body = {
            "errors": [
                {
                    "message": "Throttled",
                    "extensions": {
                        "code": "THROTTLED",
                        "documentation": THROTTLE_DOCUMENTATION,
                    },
                }
            ],
            "extensions": self._cost(shop, requested_cost, actual=None),
        }
        if shop.settings.throttle_status != 429:
            return Response(200, body)
        deficit = requested_cost - shop.bucket_available
        retry_after_s = max(0.1, deficit / shop.settings.restore_rate)
        return Response(
            429, body, headers={"Retry-After": f"{math.ceil(retry_after_s * 10) / 10}"}
        )

    def _graphql_errors(
        self, shop: Shop, requested_cost: int, message: str, code: str
    ) -> Response:
        return Response(
            200,
            {
                "errors": [{"message": message, "extensions": {"code": code}}],
                "extensions": self._cost(shop, requested_cost, actual=0),
            },
        )

    def _set_quantities(
        self, shop: Shop, api_version: str, query: str, variables: JSON, *, apply: bool
    ) -> JSON:
        key_match = _IDEMPOTENT_KEY.search(query)
        idempotency_key = key_match[1] if key_match else None
        if idempotency_key is not None and idempotency_key in shop.idempotent_results:
            # SH9: a repeated key returns the first call's result without applying again.
            return copy.deepcopy(shop.idempotent_results[idempotency_key])
        user_errors, targets = self._validate_set_quantities(shop, api_version, variables)
        input_ = variables["input"]
        if user_errors:
            result: JSON = {"inventoryAdjustmentGroup": None, "userErrors": user_errors}
        else:
            result = {
                "inventoryAdjustmentGroup": self._apply_set_quantities(
                    shop, input_, targets, idempotency_key, apply=apply
                ),
                "userErrors": [],
            }
        if idempotency_key is not None:
            _store_bounded(shop.idempotent_results, idempotency_key, copy.deepcopy(result))
        return result

    def _validate_set_quantities(
        self, shop: Shop, api_version: str, variables: JSON
    ) -> tuple[list[JSON], list[tuple[Item, int]]]:
        input_ = variables.get("input")
        if not isinstance(input_, dict) or not isinstance(input_.get("quantities"), list):
            raise _GraphQLError(
                "Variable $input of type InventorySetQuantitiesInput! was provided invalid value",
                "INVALID_VARIABLE",
            )
        quantities: list[Any] = input_["quantities"]
        new_dialect = _uses_change_from_quantity(api_version)
        if new_dialect and "ignoreCompareQuantity" in input_:
            raise _GraphQLError(
                "Variable $input of type InventorySetQuantitiesInput! was provided invalid value "
                "for ignoreCompareQuantity (Field is not defined on InventorySetQuantitiesInput)",
                "INVALID_VARIABLE",
            )
        for index, quantity in enumerate(quantities):
            self._check_quantity_shape(index, quantity, new_dialect=new_dialect)

        errors: list[JSON] = []
        name = input_.get("name")
        if name not in SETTABLE_QUANTITY_NAMES:
            errors.append(
                {
                    "code": "INVALID_NAME",
                    "field": ["input", "name"],
                    "message": "The quantity name must be either 'available' or 'on_hand'.",
                }
            )
        if input_.get("reason") not in ADJUSTMENT_REASONS:
            errors.append(
                {
                    "code": "INVALID_REASON",
                    "field": ["input", "reason"],
                    "message": "The specified reason is invalid.",
                }
            )
        if len(quantities) > shop.settings.max_quantities_per_call:
            errors.append(
                {
                    "code": "TOO_MANY_QUANTITIES",
                    "field": ["input", "quantities"],
                    "message": f"At most {shop.settings.max_quantities_per_call} quantities "
                    "can be set in one call.",
                }
            )
        if errors:
            return errors, []

        ignore_compare = bool(input_.get("ignoreCompareQuantity", False))
        targets: list[tuple[Item, int]] = []
        for index, quantity in enumerate(quantities):
            path = ["input", "quantities", str(index)]
            item_id = _parse_id(quantity.get("inventoryItemId"), "InventoryItem")
            location_id = _parse_id(quantity.get("locationId"), "Location")
            item = shop.items.get(item_id) if item_id is not None else None
            if item is None or location_id != shop.settings.location_id:
                errors.append(
                    {
                        "code": "ITEM_NOT_STOCKED_AT_LOCATION",
                        "field": [*path, "inventoryItemId" if item is None else "locationId"],
                        "message": "The specified inventory item is not stocked at the location.",
                    }
                )
                continue
            current = item.quantity(str(name))
            if new_dialect:
                expected = quantity["changeFromQuantity"]
                if expected is not None and expected != current:
                    errors.append(
                        {
                            "code": "CHANGE_FROM_QUANTITY_STALE",
                            "field": [*path, "changeFromQuantity"],
                            "message": "The changeFromQuantity argument no longer matches the "
                            "persisted quantity.",
                        }
                    )
                    continue
            elif not ignore_compare:
                expected = quantity.get("compareQuantity")
                if expected is None:
                    errors.append(
                        {
                            "code": "COMPARE_QUANTITY_REQUIRED",
                            "field": [*path, "compareQuantity"],
                            "message": "The compareQuantity argument must be given to each "
                            "quantity or ignored using ignoreCompareQuantity.",
                        }
                    )
                    continue
                if expected != current:
                    errors.append(
                        {
                            "code": "COMPARE_QUANTITY_STALE",
                            "field": [*path, "compareQuantity"],
                            "message": "The compareQuantity argument no longer matches the "
                            "persisted quantity.",
                        }
                    )
                    continue
            targets.append((item, quantity["quantity"]))
        return errors, targets

    @staticmethod
    def _check_quantity_shape(index: int, quantity: object, *, new_dialect: bool) -> None:
        where = f"quantities.{index}"
        if not isinstance(quantity, dict):
            raise _GraphQLError(f"Invalid value for {where}.", "INVALID_VARIABLE")
        value = quantity.get("quantity")
        if not isinstance(value, int) or isinstance(value, bool):
            raise _GraphQLError(
                f"Invalid value for {where}.quantity (Expected an Int).", "INVALID_VARIABLE"
            )
        if new_dialect:
            # SH7/SH8: mandatory but nullable from 2026-01.
            if "changeFromQuantity" not in quantity:
                raise _GraphQLError(
                    f"Variable $input of type InventorySetQuantitiesInput! was provided invalid "
                    f"value for {where}.changeFromQuantity (Expected value to not be absent)",
                    "INVALID_VARIABLE",
                )
            if "compareQuantity" in quantity:
                raise _GraphQLError(
                    f"Invalid value for {where}.compareQuantity (Field is not defined on "
                    "InventoryQuantityInput)",
                    "INVALID_VARIABLE",
                )
        elif "changeFromQuantity" in quantity:
            raise _GraphQLError(
                f"Invalid value for {where}.changeFromQuantity (Field is not defined on "
                "InventoryQuantityInput)",
                "INVALID_VARIABLE",
            )

    def _apply_set_quantities(
        self,
        shop: Shop,
        input_: JSON,
        targets: list[tuple[Item, int]],
        idempotency_key: str | None,
        *,
        apply: bool,
    ) -> JSON:
        name = input_["name"]
        other_name = "on_hand" if name == "available" else "available"
        location_gid = _gid("Location", shop.settings.location_id)
        changes: list[JSON] = []
        for item, quantity in targets:
            delta = quantity - item.quantity(name)
            if apply:
                item.available += delta
                item.updated_at = _now_iso()
                self._record_change(
                    shop, item, delta, "api", idempotency_key or input_.get("referenceDocumentUri")
                )
            item_gid = _gid("InventoryItem", item.inventory_item_id)
            for changed_name in (name, other_name):
                changes.append(
                    {
                        "name": changed_name,
                        "delta": delta,
                        "quantityAfterChange": item.quantity(changed_name)
                        + (0 if apply else delta),
                        "item": {"id": item_gid},
                        "location": {"id": location_gid},
                    }
                )
        return {
            "id": _gid("InventoryAdjustmentGroup", next(self._adjustment_ids)),
            "createdAt": _now_iso(),
            "reason": input_["reason"],
            "referenceDocumentUri": input_.get("referenceDocumentUri"),
            "changes": changes,
        }

    def _nodes(self, shop: Shop, query: str, variables: JSON) -> list[JSON | None]:
        ids = variables.get("ids")
        if not isinstance(ids, list):
            raise _GraphQLError(
                "Variable $ids of type [ID!]! was not provided.", "INVALID_VARIABLE"
            )
        if len(ids) > MAX_NODE_IDS:
            raise _GraphQLError(
                f"The maximum number of ids is {MAX_NODE_IDS}.", "MAX_INPUT_SIZE_EXCEEDED"
            )
        location_id = _parse_id(variables.get("locationId", shop.settings.location_id), "Location")
        names_variable = variables.get("names")
        names_literal = _QUANTITY_NAMES_LITERAL.search(query)
        if isinstance(names_variable, list):
            names = [str(name) for name in names_variable]
        elif names_literal is not None:
            names = re.findall(r'"(\w+)"', names_literal[1])
        else:
            names = ["available"]
        nodes: list[JSON | None] = []
        for node_id in ids:
            item_id = _parse_id(node_id, "InventoryItem")
            item = shop.items.get(item_id) if item_id is not None else None
            if item is None:
                nodes.append(None)
                continue
            level: JSON | None = None
            if location_id == shop.settings.location_id:
                level = {
                    "id": f"gid://shopify/InventoryLevel/{shop.settings.location_id}"
                    f"?inventory_item_id={item.inventory_item_id}",
                    "quantities": [
                        {"name": name, "quantity": item.quantity(name)} for name in names
                    ],
                }
            nodes.append(
                {
                    "__typename": "InventoryItem",
                    "id": _gid("InventoryItem", item.inventory_item_id),
                    "sku": item.sku,
                    "inventoryLevel": level,
                }
            )
        return nodes

    def _level_delivery(self, shop: Shop, item: Item) -> Delivery:
        return self._new_delivery(
            shop,
            "inventory_levels/update",
            {
                "inventory_item_id": item.inventory_item_id,
                "location_id": shop.settings.location_id,
                "available": item.available,
                "updated_at": item.updated_at,
                "admin_graphql_api_id": f"gid://shopify/InventoryLevel/"
                f"{shop.settings.location_id}?inventory_item_id={item.inventory_item_id}",
            },
        )

    def _record_change(
        self, shop: Shop, item: Item, delta: int, source: str, reference: object
    ) -> None:
        if shop.settings.level_webhooks and delta:
            delivery = self._level_delivery(shop, item)
            threading.Thread(
                target=self._send_new_delivery,
                args=(shop, delivery),
                kwargs={"duplicates": 0, "deliver": True},
                name=f"webhook-{delivery.webhook_id}",
                daemon=True,
            ).start()
        shop.changes.append(
            {
                "seq": next(shop.change_seq),
                "time": time.time(),
                "inventory_item_id": item.inventory_item_id,
                "variant_id": item.variant_id,
                "sku": item.sku,
                "delta": delta,
                "available": item.available,
                "committed": item.committed,
                "on_hand": item.on_hand,
                "source": source,
                "reference": reference,
            }
        )

    # -- Control API -------------------------------------------------------------------------

    def _shop(self, shop_name: str) -> Shop:
        shop = self._shops.get(shop_name)
        if shop is None:
            raise ControlError(404, f"No shop {shop_name!r}.")
        return shop

    def reset(self) -> JSON:
        with self._lock:
            self._shops.clear()
        return {"ok": True}

    def create_shop(self, body: JSON) -> JSON:
        settings = ShopSettings.from_json(body)
        with self._lock:
            self._shops[settings.shop] = Shop(settings)
        return {"shop": asdict(settings) | {"access_token": "***", "webhook_secret": "***"}}

    def shop_state(self, shop_name: str) -> JSON:
        with self._lock:
            shop = self._shop(shop_name)
            shop.refill_bucket()
            return {
                "shop": asdict(shop.settings) | {"access_token": "***", "webhook_secret": "***"},
                "faults": asdict(shop.faults),
                "throttle_status": shop.throttle_status(),
            }

    def add_items(self, shop_name: str, body: JSON) -> JSON:
        raw_items = body.get("items")
        if not isinstance(raw_items, list):
            raise ControlError(400, "'items' must be a list.")
        with self._lock:
            shop = self._shop(shop_name)
            added = []
            for raw in raw_items:
                try:
                    item = Item(
                        inventory_item_id=int(raw["inventory_item_id"]),
                        variant_id=int(raw["variant_id"]),
                        sku=str(raw.get("sku", "")),
                        product_id=int(raw.get("product_id", raw["variant_id"])),
                        available=int(raw.get("available", 0)),
                        committed=int(raw.get("committed", 0)),
                    )
                except (KeyError, TypeError, ValueError) as error:
                    raise ControlError(400, f"Bad item {raw!r}: {error!r}") from None
                shop.items[item.inventory_item_id] = item
                added.append(item.as_json())
        return {"items": added}

    def list_items(self, shop_name: str) -> JSON:
        with self._lock:
            shop = self._shop(shop_name)
            return {"items": [item.as_json() for item in shop.items.values()]}

    def set_item(self, shop_name: str, inventory_item_id: int, body: JSON) -> JSON:
        available = body.get("available")
        if not isinstance(available, int) or isinstance(available, bool):
            raise ControlError(400, "'available' must be an integer.")
        with self._lock:
            shop = self._shop(shop_name)
            item = shop.items.get(inventory_item_id)
            if item is None:
                raise ControlError(404, f"No inventory item {inventory_item_id}.")
            delta = available - item.available
            item.available = available
            item.updated_at = _now_iso()
            self._record_change(shop, item, delta, "manual", None)
            answer: JSON = {"item": item.as_json(), "webhook_id": None, "delivery_status": None}
            delivery = None
            if body.get("notify", False) and not shop.settings.level_webhooks:
                delivery = self._level_delivery(shop, item)
        if delivery is not None:
            answer |= self._send_new_delivery(shop, delivery, duplicates=0, deliver=True)
        return answer

    def set_faults(self, shop_name: str, body: JSON) -> JSON:
        with self._lock:
            shop = self._shop(shop_name)
            if body.get("reset"):
                shop.faults = Faults()
            shop.faults.update(body)
            return {"faults": asdict(shop.faults)}

    def place_order(self, shop_name: str, body: JSON) -> JSON:
        raw_lines = body.get("lines")
        if not isinstance(raw_lines, list) or not raw_lines:
            raise ControlError(400, "'lines' must be a non-empty list.")
        with self._lock:
            shop = self._shop(shop_name)
            wanted: list[tuple[Item, int]] = []
            for raw in raw_lines:
                try:
                    variant_id, quantity = int(raw["variant_id"]), int(raw["quantity"])
                except (KeyError, TypeError, ValueError):
                    raise ControlError(400, f"Bad line {raw!r}.") from None
                item = shop.item_by_variant(variant_id)
                if item is None:
                    raise ControlError(400, f"No variant {variant_id} in shop {shop_name!r}.")
                if quantity <= 0:
                    raise ControlError(400, "Line quantities are positive.")
                wanted.append((item, quantity))
            order = Order(
                id=next(self._order_ids),
                name=f"#{next(self._order_numbers)}",
                created_at=_now_iso(),
                line_items=[],
            )
            for item, quantity in wanted:
                # §1.6: placing an order commits units; available may go negative (oversold).
                item.available -= quantity
                item.committed += quantity
                item.updated_at = order.created_at
                self._record_change(shop, item, -quantity, "order", order.id)
                order.line_items.append(
                    LineItem(
                        id=next(self._line_item_ids),
                        variant_id=item.variant_id,
                        sku=item.sku,
                        product_id=item.product_id,
                        quantity=quantity,
                    )
                )
            shop.orders[order.id] = order
            delivery = self._new_delivery(shop, "orders/create", order.as_json())
        answer: JSON = {
            "order_id": order.id,
            "order_name": order.name,
            "line_item_ids": [line.id for line in order.line_items],
        }
        return answer | self._send_new_delivery(
            shop,
            delivery,
            duplicates=int(body.get("duplicates", 0)),
            deliver=bool(body.get("deliver", True)),
        )

    def cancel_order(self, shop_name: str, order_id: int, body: JSON) -> JSON:
        with self._lock:
            shop = self._shop(shop_name)
            order = shop.orders.get(order_id)
            if order is None:
                raise ControlError(404, f"No order {order_id}.")
            if order.cancelled_at is not None:
                raise ControlError(409, f"Order {order_id} is already cancelled.")
            order.cancelled_at = _now_iso()
            for line in order.line_items:
                self._restock(shop, line, line.quantity - line.restocked, "cancel", order.id)
            delivery = self._new_delivery(shop, "orders/cancelled", order.as_json())
        answer: JSON = {
            "order_id": order.id,
            "line_item_ids": [line.id for line in order.line_items],
        }
        return answer | self._send_new_delivery(
            shop,
            delivery,
            duplicates=int(body.get("duplicates", 0)),
            deliver=bool(body.get("deliver", True)),
        )

    def refund(self, shop_name: str, order_id: int, body: JSON) -> JSON:
        raw_lines = body.get("lines")
        if not isinstance(raw_lines, list) or not raw_lines:
            raise ControlError(400, "'lines' must be a non-empty list.")
        with self._lock:
            shop = self._shop(shop_name)
            order = shop.orders.get(order_id)
            if order is None:
                raise ControlError(404, f"No order {order_id}.")
            lines_by_id = {line.id: line for line in order.line_items}
            wanted: list[tuple[LineItem, int, str]] = []
            for raw in raw_lines:
                try:
                    line = lines_by_id[int(raw["line_item_id"])]
                    quantity = int(raw["quantity"])
                except (KeyError, TypeError, ValueError):
                    raise ControlError(400, f"Bad refund line {raw!r}.") from None
                restock_type = str(raw.get("restock_type", "return"))
                if restock_type not in RESTOCK_TYPES:
                    raise ControlError(400, f"restock_type is one of {sorted(RESTOCK_TYPES)}.")
                if quantity <= 0 or line.refunded + quantity > line.quantity:
                    raise ControlError(400, f"Cannot refund {quantity} of line {line.id}.")
                wanted.append((line, quantity, restock_type))
            refund_id = next(self._refund_ids)
            refund_lines = []
            for line, quantity, restock_type in wanted:
                line.refunded += quantity
                if restock_type in RESTOCKING_TYPES:
                    restockable = min(quantity, line.quantity - line.restocked)
                    self._restock(shop, line, restockable, "refund", refund_id)
                refund_lines.append(
                    {
                        "id": next(self._line_item_ids),
                        "line_item_id": line.id,
                        "quantity": quantity,
                        "restock_type": restock_type,
                        "location_id": (
                            None if restock_type == "no_restock" else shop.settings.location_id
                        ),
                        "subtotal": f"{10 * quantity:.2f}",
                        "line_item": line.as_json(),
                    }
                )
            created_at = _now_iso()
            payload = {
                "id": refund_id,
                "admin_graphql_api_id": _gid("Refund", refund_id),
                "order_id": order.id,
                "created_at": created_at,
                "processed_at": created_at,
                "note": None,
                "restock": any(t in RESTOCKING_TYPES for _, _, t in wanted),
                "refund_line_items": refund_lines,
            }
            delivery = self._new_delivery(shop, "refunds/create", payload)
        answer: JSON = {
            "order_id": order.id,
            "refund_id": refund_id,
            "line_item_ids": [line.id for line, _, _ in wanted],
        }
        return answer | self._send_new_delivery(
            shop,
            delivery,
            duplicates=int(body.get("duplicates", 0)),
            deliver=bool(body.get("deliver", True)),
        )

    def _restock(
        self, shop: Shop, line: LineItem, quantity: int, source: str, reference: int
    ) -> None:
        if quantity <= 0:
            return
        line.restocked += quantity
        item = shop.item_by_variant(line.variant_id)
        if item is None:
            return
        item.committed = max(0, item.committed - quantity)
        item.available += quantity
        item.updated_at = _now_iso()
        self._record_change(shop, item, quantity, source, reference)

    def redeliver(self, shop_name: str, body: JSON) -> JSON:
        with self._lock:
            shop = self._shop(shop_name)
            delivery = shop.deliveries.get(str(body.get("webhook_id")))
            if delivery is None:
                raise ControlError(404, f"No delivery {body.get('webhook_id')!r}.")
        return {"webhook_id": delivery.webhook_id, "delivery_status": self._attempt(delivery)}

    def log_since(self, shop_name: str, log_name: str, since: int) -> JSON:
        with self._lock:
            shop = self._shop(shop_name)
            if log_name == "webhooks":
                return {"webhooks": [delivery.as_json() for delivery in shop.deliveries.values()]}
            log = shop.requests if log_name == "requests" else shop.changes
            return {log_name: [dict(entry) for entry in log if entry["seq"] > since]}

    # -- Webhook delivery --------------------------------------------------------------------

    def _new_delivery(self, shop: Shop, topic: str, payload: JSON) -> Delivery:
        """Build and store a signed delivery (lock held); nothing is sent yet."""
        body = json.dumps(payload).encode()
        signature = hmac.new(shop.settings.webhook_secret.encode(), body, hashlib.sha256)
        webhook_id = str(uuid.uuid4())
        delivery = Delivery(
            webhook_id=webhook_id,
            topic=topic,
            url=shop.settings.webhook_url,
            headers={
                "Content-Type": "application/json",
                "X-Shopify-Topic": topic,
                "X-Shopify-Shop-Domain": shop.domain,
                "X-Shopify-API-Version": shop.settings.api_version,
                "X-Shopify-Webhook-Id": webhook_id,
                "X-Shopify-Event-Id": str(next(self._event_ids)),
                "X-Shopify-Triggered-At": _now_iso(),
                "X-Shopify-Hmac-Sha256": base64.b64encode(signature.digest()).decode(),
            },
            body=body,
        )
        _store_bounded(shop.deliveries, webhook_id, delivery)
        return delivery

    def _send_new_delivery(
        self, shop: Shop, delivery: Delivery, *, duplicates: int, deliver: bool
    ) -> JSON:
        """Send once now (lock free); retry in the background if that failed."""
        status = None
        if deliver and delivery.url:
            status = self._attempt(delivery)
            if not _is_success(status):
                threading.Thread(
                    target=self._retry,
                    args=(shop, delivery),
                    name=f"webhook-retry-{delivery.webhook_id}",
                    daemon=True,
                ).start()
            for _ in range(max(0, duplicates)):
                self._attempt(delivery)
        return {"webhook_id": delivery.webhook_id, "delivery_status": status}

    def _retry(self, shop: Shop, delivery: Delivery) -> None:
        for retry in range(WEBHOOK_MAX_RETRIES):
            delay_s = shop.settings.webhook_retry_base_s * 2**retry
            if self._stopping.wait(delay_s):
                return
            with self._lock:
                # A replaced or dropped shop takes its pending retries with it.
                if self._shops.get(shop.settings.shop) is not shop:
                    return
            if _is_success(self._attempt(delivery)):
                return

    def _attempt(self, delivery: Delivery) -> int | None:
        """POST the delivery as is; the HTTP status, or None if nothing answered in time.

        Over a kept-alive connection of this thread when there is one, as a platform's
        delivery workers do; a kept connection the receiver has closed meanwhile is
        replaced once.
        """
        started = time.time()
        status: int | None = None
        error = ""
        parts = urlsplit(delivery.url)
        path = parts.path or "/"
        if parts.query:
            path = f"{path}?{parts.query}"
        for reused in (True, False):
            was_kept = False
            try:
                connection, was_kept = _webhook_connection(parts, fresh=not reused)
                connection.request("POST", path, body=delivery.body, headers=delivery.headers)
                response = connection.getresponse()
                response.read()
                status, error = response.status, ""
                if response.will_close:
                    _drop_webhook_connection(parts)
                break
            except (OSError, http.client.HTTPException) as exc:
                _drop_webhook_connection(parts)
                error = f"{type(exc).__name__}: {exc}"
                if not was_kept:
                    break
        with self._lock:
            delivery.attempts.append(
                {
                    "time": started,
                    "status": status,
                    "error": error,
                    "duration_ms": round((time.time() - started) * 1000, 1),
                }
            )
        return status


_kept_connections = threading.local()


def _webhook_connection(parts: Any, *, fresh: bool) -> tuple[http.client.HTTPConnection, bool]:
    """This thread's connection to the receiver (new if ``fresh``), and whether it was kept."""
    kept: dict[tuple[str, str, int | None], http.client.HTTPConnection] = (
        getattr(_kept_connections, "by_address", None) or {}
    )
    _kept_connections.by_address = kept
    address = (parts.scheme, parts.hostname or "", parts.port)
    connection = None if fresh else kept.get(address)
    if connection is not None:
        return connection, True
    connection_class = (
        http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    )
    connection = connection_class(address[1], parts.port, timeout=WEBHOOK_CONNECT_TIMEOUT_S)
    connection.connect()
    if connection.sock is not None:
        connection.sock.settimeout(WEBHOOK_RESPONSE_TIMEOUT_S)
    kept[address] = connection
    return connection, False


def _drop_webhook_connection(parts: Any) -> None:
    kept = getattr(_kept_connections, "by_address", {})
    connection = kept.pop((parts.scheme, parts.hostname or "", parts.port), None)
    if connection is not None:
        connection.close()


def _store_bounded(store: dict[str, Any], key: str, value: object) -> None:
    """Insert, dropping the oldest entry past ``MAX_LOG_ENTRIES`` (dicts keep insertion order)."""
    store[key] = value
    if len(store) > MAX_LOG_ENTRIES:
        del store[next(iter(store))]


def _is_success(status: int | None) -> bool:
    return status is not None and 200 <= status < 300


# -- HTTP ------------------------------------------------------------------------------------

_ADMIN_ROUTE = re.compile(
    r"^/shops/(?P<shop>[\w.-]+)/admin/api/(?P<version>[\w-]+)/graphql\.json$"
)

ControlHandler = Callable[[ShopifySimulator, "re.Match[str]", JSON, dict[str, list[str]]], JSON]


def _since(query: dict[str, list[str]]) -> int:
    try:
        return int(query.get("since", ["0"])[0])
    except ValueError:
        raise ControlError(400, "'since' is a sequence number.") from None


_CONTROL_ROUTES: list[tuple[str, re.Pattern[str], ControlHandler, int]] = [
    ("POST", re.compile(r"^/_sim/reset$"), lambda sim, m, body, q: sim.reset(), 200),
    ("POST", re.compile(r"^/_sim/shops$"), lambda sim, m, body, q: sim.create_shop(body), 201),
    (
        "GET",
        re.compile(r"^/_sim/shops/(?P<shop>[\w.-]+)$"),
        lambda sim, m, body, q: sim.shop_state(m["shop"]),
        200,
    ),
    (
        "POST",
        re.compile(r"^/_sim/shops/(?P<shop>[\w.-]+)/items$"),
        lambda sim, m, body, q: sim.add_items(m["shop"], body),
        200,
    ),
    (
        "GET",
        re.compile(r"^/_sim/shops/(?P<shop>[\w.-]+)/items$"),
        lambda sim, m, body, q: sim.list_items(m["shop"]),
        200,
    ),
    (
        "POST",
        re.compile(r"^/_sim/shops/(?P<shop>[\w.-]+)/items/(?P<item>\d+)/set$"),
        lambda sim, m, body, q: sim.set_item(m["shop"], int(m["item"]), body),
        200,
    ),
    (
        "POST",
        re.compile(r"^/_sim/shops/(?P<shop>[\w.-]+)/faults$"),
        lambda sim, m, body, q: sim.set_faults(m["shop"], body),
        200,
    ),
    (
        "POST",
        re.compile(r"^/_sim/shops/(?P<shop>[\w.-]+)/orders$"),
        lambda sim, m, body, q: sim.place_order(m["shop"], body),
        200,
    ),
    (
        "POST",
        re.compile(r"^/_sim/shops/(?P<shop>[\w.-]+)/orders/(?P<order>\d+)/cancel$"),
        lambda sim, m, body, q: sim.cancel_order(m["shop"], int(m["order"]), body),
        200,
    ),
    (
        "POST",
        re.compile(r"^/_sim/shops/(?P<shop>[\w.-]+)/orders/(?P<order>\d+)/refund$"),
        lambda sim, m, body, q: sim.refund(m["shop"], int(m["order"]), body),
        200,
    ),
    (
        "POST",
        re.compile(r"^/_sim/shops/(?P<shop>[\w.-]+)/redeliver$"),
        lambda sim, m, body, q: sim.redeliver(m["shop"], body),
        200,
    ),
    (
        "GET",
        re.compile(r"^/_sim/shops/(?P<shop>[\w.-]+)/(?P<log>requests|changes|webhooks)$"),
        lambda sim, m, body, q: sim.log_since(m["shop"], m["log"], _since(q)),
        200,
    ),
]


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 keeps connections alive: a new TCP connection per call would cost the latency
    # budget at 50 orders/s.
    protocol_version = "HTTP/1.1"
    # Headers and body go out as two writes; with Nagle on, delayed ACKs add ~40 ms to each.
    disable_nagle_algorithm = True
    # An idle keep-alive connection frees its thread after this long.
    timeout = 120
    server: ShopifySimulatorServer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the request log under /_sim/ is the record."""

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        simulator = self.server.simulator
        try:
            admin = _ADMIN_ROUTE.match(parts.path)
            if admin is not None:
                if method != "POST":
                    self._send(Response(405, {"errors": "Method Not Allowed"}))
                    return
                response = simulator.handle_admin(
                    shop_name=admin["shop"],
                    api_version=admin["version"],
                    headers=dict(self.headers.items()),
                    body=body,
                )
                if response.delay_s:
                    time.sleep(response.delay_s)
                self._send(response)
                return
            self._send(self._control(method, parts.path, parts.query, body))
        except Exception as error:
            # One broken call answers 500 instead of killing its connection thread.
            self._send(Response(500, {"error": f"{type(error).__name__}: {error}"}))

    def _control(self, method: str, path: str, query: str, body: bytes) -> Response:
        try:
            payload = json.loads(body) if body else {}
            if not isinstance(payload, dict):
                raise ValueError
        except ValueError:
            return Response(400, {"error": "The body must be a JSON object."})
        for route_method, pattern, handler, status in _CONTROL_ROUTES:
            match = pattern.match(path)
            if match is None or route_method != method:
                continue
            try:
                return Response(
                    status, handler(self.server.simulator, match, payload, parse_qs(query))
                )
            except ControlError as error:
                return Response(error.status, {"error": str(error)})
        return Response(404, {"error": f"No route {method} {path}."})

    def _send(self, response: Response) -> None:
        data = json.dumps(response.body).encode()
        try:
            self.send_response(response.status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (the timeout fault): what it missed is the point of the fault.
            self.close_connection = True


class ShopifySimulatorServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # The default backlog of 5 refuses connections when 100+ orders arrive at once.
    request_queue_size = 512

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.simulator = ShopifySimulator()
        super().__init__((host, port), _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def server_close(self) -> None:
        self.simulator.stop()
        super().server_close()

    def start_in_thread(self) -> threading.Thread:
        """Serve from a daemon thread (in-process use); stop with ``shutdown()``."""
        thread = threading.Thread(target=self.serve_forever, name="shopify-simulator", daemon=True)
        thread.start()
        return thread
