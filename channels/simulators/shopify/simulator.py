"""A Shopify stand-in: the Admin GraphQL inventory API, cost throttling and signed webhooks.

Several shops live side by side. A channel's ``api_base_url`` is
``http://HOST:PORT/shops/<shop>`` where the real platform would be
``https://<shop>.myshopify.com``; a client that builds Shopify's own URL (the ShopifyAPI
library) reaches the same shop through ``http://<shop>.myshopify.com:PORT/admin/api/...``
with the simulator as its HTTP proxy, the shop being taken from the Host header.

Facts reproduced here come from ``CHANNEL_APIS.md`` §1 and §6 "Shopify" (shared folder).
Besides the harness's control routes (``harness.server``), ``/_sim/shops/<shop>/`` has:

- ``POST items`` ``{"items": [{inventory_item_id, variant_id, sku, available, committed,
  incoming, reserved, damaged, quality_control, safety_stock, levels: [{location_id, ...}]}]}``;
  ``GET items``; ``POST items/<id>/set`` ``{"available": n, "notify": bool}`` (a manual
  edit in the admin, ``inventory_levels/update`` sent when ``notify``);
- ``POST orders`` ``{"lines": [{variant_id, quantity}], "duplicates": n, "deliver": bool}``
  (commits units, sends ``orders/create``); ``POST orders/<id>/cancel``;
  ``POST orders/<id>/refund`` ``{"lines": [{line_item_id, quantity, restock_type}]}``;
- ``GET changes?since=<seq>``: every change of a quantity, with its source.

Fault endpoints: ``graphql`` (every Admin GraphQL call) and ``graphql:<root field>``
(``graphql:inventorySetQuantities``, ``graphql:nodes``, ``graphql:inventoryItem``...).
"""

from __future__ import annotations

import datetime as dt
import hmac
import itertools
import math
import re
import time
import urllib.parse
from typing import Any

from channels.simulators.harness import (
    JSON,
    ControlError,
    Delivery,
    Request,
    Response,
    RetryPolicy,
    Route,
    Simulator,
    route,
    since,
)
from channels.simulators.shopify import webhooks
from channels.simulators.shopify.graphql import (
    MAX_QUERY_COST,
    THROTTLE_DOCUMENTATION,
    Context,
    RequestError,
    coerce_variables,
    idempotency_key,
    prepare,
    requested_cost,
    run,
    validation_errors,
)
from channels.simulators.shopify.schema import dialect_of, schema_for
from channels.simulators.shopify.state import (
    STORED_STATES,
    Item,
    Level,
    LineItem,
    Order,
    Shop,
    ShopSettings,
    gid,
    parse_id,
)

# §1.5
INVALID_TOKEN_BODY: JSON = {
    "errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"
}
# §1.1 / SH17
RESTOCK_TYPES = frozenset({"no_restock", "cancel", "return", "legacy_restock"})
RESTOCKING_TYPES = frozenset({"cancel", "return", "legacy_restock"})
SHOPIFY_DOMAIN = ".myshopify.com"

_ADMIN_PATH = re.compile(
    r"^/shops/(?P<shop>[\w.-]+)/admin/api/(?P<version>[\w-]+)/(?P<resource>graphql|orders)\.json$"
)
_HOST_ADMIN_PATH = re.compile(
    r"^/admin/api/(?P<version>[\w-]+)/(?P<resource>graphql|orders)\.json$"
)
_SHOP = r"/_sim/shops/(?P<tenant>[\w.-]+)"


class ShopifySimulator(Simulator[Shop]):
    display_name = "Shopify"
    tenant_collection = "shops"
    tenant_kind = "shop"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Shop-independent so ids never collide across shops or resets.
        self._order_ids = itertools.count(5_000_000_001)
        self._line_item_ids = itertools.count(11_000_000_001)
        self._refund_ids = itertools.count(900_000_001)
        self._adjustment_ids = itertools.count(1)
        self._order_numbers = itertools.count(1001)

    # -- Tenants -----------------------------------------------------------------------------

    def create_tenant(self, body: JSON) -> JSON:
        settings = ShopSettings.from_json(body)
        self.tenants.put(Shop(settings, self.clock.time()))
        return {"shop": settings.public()}

    def tenant_state(self, shop: Shop) -> JSON:
        shop.refill_bucket(self.clock.time())
        return {
            "shop": shop.settings.public(),
            "throttle_status": shop.throttle_status(),
            "items": len(shop.items),
            "orders": len(shop.orders),
        }

    def update_settings(self, shop: Shop, body: JSON) -> JSON:
        with shop.lock:
            shop.settings.update(body)
            shop.read_lag.lag_s = shop.settings.read_lag_s
            if "webhook_url" in body:
                # A new subscription: deliveries go out again.
                shop.subscription_removed = False
            return {"shop": shop.settings.public()}

    def retry_policy(self, shop: Shop) -> RetryPolicy:
        return webhooks.retry_policy(shop)

    def seed(self, seed: JSON) -> int:
        """``{"shops": [{...shop settings, "items": [...]}]}``, as ``prepare_local`` writes."""
        shops = seed.get("shops", [])
        for raw in shops:
            body = dict(raw)
            items = body.pop("items", [])
            self.create_tenant(body)
            self.add_items(body["shop"], {"items": items})
        return len(shops)

    # -- Fault answers -----------------------------------------------------------------------

    def error_response(self, status: int, with_body: bool) -> Response:
        return Response(status, {"errors": "Service Unavailable"} if with_body else b"")

    def expired_token_response(self, shop: Shop) -> Response:
        return Response(401, INVALID_TOKEN_BODY)

    def _cost(self, shop: Shop, requested: int, *, actual: int | None = -1) -> JSON:
        return {
            "cost": {
                "requestedQueryCost": requested,
                "actualQueryCost": requested if actual == -1 else actual,
                "throttleStatus": shop.throttle_status(),
            }
        }

    def _throttled(self, shop: Shop, requested_cost: int) -> Response:
        """§1.4: THROTTLED with no data, HTTP 200 by default or 429 with Retry-After."""
        body = {
            "errors": [
                {
                    "message": "Throttled",
                    "extensions": {"code": "THROTTLED", "documentation": THROTTLE_DOCUMENTATION},
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

    # -- Admin API ---------------------------------------------------------------------------

    def handle_api(self, request: Request) -> Response:
        match = _ADMIN_PATH.match(request.path)
        if match is not None:
            shop_name = match["shop"]
        else:
            match = _HOST_ADMIN_PATH.match(request.path)
            host = request.host.rsplit(":", 1)[0] if request.host else ""
            if match is None or not host.endswith(SHOPIFY_DOMAIN):
                return Response(404, {"errors": "Not Found"})
            shop_name = host.removesuffix(SHOPIFY_DOMAIN)
        shop = self.tenants.get(shop_name)
        if shop is None:
            return Response(404, {"errors": "Not Found"})
        entry = self.log_request(shop, request, api_version=match["version"])
        if match["resource"] == "orders":
            response = self._orders_list(shop, request, entry)
        else:
            response = self._admin(shop, match["version"], request, entry)
        entry["status"] = response.status if not response.reset else None
        return response

    def _orders_list(self, shop: Shop, request: Request, entry: JSON) -> Response:
        """REST ``GET orders.json`` (the Order resource, the webhooks' payload shape):
        ``status=any``, ``updated_at_min``, ``limit`` (at most 250), oldest change first."""
        entry["endpoint"] = "rest:orders"
        if request.method != "GET":
            return Response(405, {"errors": "Method Not Allowed"})
        token = request.header("X-Shopify-Access-Token")
        if not hmac.compare_digest(token.encode(), shop.settings.access_token.encode()):
            return Response(401, INVALID_TOKEN_BODY)
        with shop.lock:
            fault = shop.faults.draw(["rest:orders", "rest"])
        entry["fault"] = fault.name
        answer = self.fault_response(shop, fault)
        if answer is not None:
            return answer
        # Shopify pages with an opaque page_info cursor in the Link header; here the cursor
        # is the position, and the next page's URL carries the filter again.
        since = (request.query.get("updated_at_min") or [""])[0]
        try:
            limit = min(int((request.query.get("limit") or ["50"])[0]), 250)
            offset = int((request.query.get("page_info") or ["0"])[0])
            since_at = dt.datetime.fromisoformat(since) if since else None
        except ValueError:
            return Response(400, {"errors": {"updated_at_min": ["is invalid"]}})
        with shop.lock:
            orders = [
                order
                for order in shop.orders.values()
                if since_at is None or dt.datetime.fromisoformat(order.updated_at) >= since_at
            ]
            orders.sort(key=lambda order: (order.updated_at, order.id))
            page = [order.as_json() for order in orders[offset : offset + limit]]
        headers = {}
        if offset + limit < len(orders):
            query = urllib.parse.urlencode(
                {"limit": limit, "updated_at_min": since, "page_info": offset + limit}
            )
            headers["Link"] = f'<http://{request.host}{request.path}?{query}>; rel="next"'
        return Response(200, {"orders": page}, headers=headers)

    def _admin(self, shop: Shop, api_version: str, request: Request, entry: JSON) -> Response:
        if request.method != "POST":
            return Response(405, {"errors": "Method Not Allowed"})
        token = request.header("X-Shopify-Access-Token")
        if not hmac.compare_digest(token.encode(), shop.settings.access_token.encode()):
            return Response(401, INVALID_TOKEN_BODY)
        try:
            payload = _json_object(request.body)
            query = payload["query"]
            raw_variables = payload.get("variables") or {}
            operation_name = payload.get("operationName") or None
            if not isinstance(query, str) or not isinstance(raw_variables, dict):
                raise ValueError
        except (ValueError, KeyError, TypeError):
            return Response(400, {"errors": [{"message": "Invalid JSON or missing query."}]})
        try:
            prepared = prepare(query, operation_name)
        except RequestError as error:
            return Response(200, {"errors": error.errors})
        operation = prepared.operation
        roots = [field.name.value for field in operation.root_fields]
        endpoints = [f"graphql:{name}" for name in roots] + ["graphql"]
        entry["endpoint"] = endpoints[0]
        with shop.lock:
            fault = shop.faults.draw(endpoints)
        entry["fault"] = fault.name
        if not fault.throttle:
            answer = self.fault_response(shop, fault)
            if answer is not None:
                return answer
        if fault.latency_s:
            time.sleep(fault.latency_s)

        dialect = dialect_of(api_version)
        schema = schema_for(dialect)
        key = idempotency_key(prepared, raw_variables)
        errors = validation_errors(dialect, prepared)
        variables = None
        if not errors:
            variables, errors = coerce_variables(schema, operation, raw_variables)
        if errors or variables is None:
            return Response(200, {"errors": errors})
        cost = requested_cost(schema, operation, variables.coerced)
        pending: list[Delivery] = []
        with shop.lock:
            now = self.clock.time()
            shop.refill_bucket(now)
            if fault.throttle or shop.bucket_available < cost:
                return self._throttled(shop, cost)
            if cost > MAX_QUERY_COST:
                return Response(
                    200,
                    {
                        "errors": [
                            {
                                "message": f"Query cost is {cost}, which exceeds the single "
                                f"query max cost limit ({MAX_QUERY_COST}).",
                                "extensions": {"code": "MAX_COST_EXCEEDED", "cost": cost},
                            }
                        ],
                        "extensions": self._cost(shop, cost, actual=0),
                    },
                )
            shop.bucket_available -= cost
            dropped = operation.is_mutation and shop.faults.take_drop(endpoints)
            if dropped:
                entry["fault"] = "drop"

            def on_change(item: Item, location_id: int, level: Level, delta: int) -> None:
                delivery = self._record_change(shop, item, location_id, level, delta, "api", key)
                if delivery is not None:
                    pending.append(delivery)

            ctx = Context(
                shop=shop,
                dialect=dialect,
                now=now,
                now_iso=self.clock.iso(),
                apply=not dropped,
                idempotency_key=key,
                next_adjustment_id=lambda: next(self._adjustment_ids),
                on_change=on_change,
            )
            body = run(ctx, operation, variables)
            body["extensions"] = self._cost(shop, cost)
        for delivery in pending:
            self.emitter.emit(shop, delivery, self.retry_policy(shop), wait=False)
        return Response(200, body, delay_s=fault.timeout_s if fault.timeout_applied else 0.0)

    # -- Changes and level webhooks ----------------------------------------------------------

    def _record_change(
        self,
        shop: Shop,
        item: Item,
        location_id: int,
        level: Level,
        delta: int,
        source: str,
        reference: object,
    ) -> Delivery | None:
        """Log one change (lock held); the level webhook to send, for a subscribed shop."""
        shop.changes.append(
            {
                "time": self.clock.time(),
                "inventory_item_id": item.inventory_item_id,
                "variant_id": item.variant_id,
                "sku": item.sku,
                "location_id": location_id,
                "delta": delta,
                "available": level.available,
                "committed": level.committed,
                "on_hand": level.on_hand,
                "source": source,
                "reference": reference,
            }
        )
        if shop.settings.level_webhooks and delta:
            return self._level_delivery(shop, item, location_id, level)
        return None

    def _level_delivery(self, shop: Shop, item: Item, location_id: int, level: Level) -> Delivery:
        return webhooks.new_delivery(
            shop,
            "inventory_levels/update",
            webhooks.level_payload(item, location_id, level),
            self.clock.time(),
            self.clock.iso(),
        )

    def _send_later(self, shop: Shop, deliveries: list[Delivery]) -> None:
        for delivery in deliveries:
            self.emitter.emit(shop, delivery, self.retry_policy(shop), wait=False)

    # -- Control API -------------------------------------------------------------------------

    def control_routes(self) -> list[Route]:
        return [
            route("POST", f"{_SHOP}/items", lambda m, b, q: self.add_items(m["tenant"], b)),
            route("GET", f"{_SHOP}/items", lambda m, b, q: self.list_items(m["tenant"])),
            route(
                "POST",
                rf"{_SHOP}/items/(?P<item>\d+)/set",
                lambda m, b, q: self.set_item(m["tenant"], int(m["item"]), b),
            ),
            route("POST", f"{_SHOP}/orders", lambda m, b, q: self.place_order(m["tenant"], b)),
            route(
                "POST",
                rf"{_SHOP}/orders/(?P<order>\d+)/cancel",
                lambda m, b, q: self.cancel_order(m["tenant"], int(m["order"]), b),
            ),
            route(
                "POST",
                rf"{_SHOP}/orders/(?P<order>\d+)/refund",
                lambda m, b, q: self.refund(m["tenant"], int(m["order"]), b),
            ),
            route("GET", f"{_SHOP}/changes", lambda m, b, q: self.changes(m["tenant"], since(q))),
        ]

    def add_items(self, shop_name: str, body: JSON) -> JSON:
        raw_items = body.get("items")
        if not isinstance(raw_items, list):
            raise ControlError(400, "'items' must be a list.")
        shop = self.tenants.require(shop_name)
        now_iso = self.clock.iso()
        with shop.lock:
            primary = shop.settings.location_id
            added = []
            for raw in raw_items:
                try:
                    levels = {primary: _level(raw, now_iso)}
                    for extra in raw.get("levels", []):
                        location_id = parse_id(extra["location_id"], "Location")
                        if location_id not in shop.location_ids:
                            raise ValueError(f"unknown location {extra['location_id']!r}")
                        levels[location_id] = _level(extra, now_iso)
                    item = Item(
                        inventory_item_id=int(raw["inventory_item_id"]),
                        variant_id=int(raw["variant_id"]),
                        sku=str(raw.get("sku", "")),
                        product_id=int(raw.get("product_id", raw["variant_id"])),
                        levels=levels,
                        tracked=bool(raw.get("tracked", True)),
                        created_at=now_iso,
                    )
                except (KeyError, TypeError, ValueError, AttributeError) as error:
                    raise ControlError(400, f"Bad item {raw!r}: {error!r}") from None
                shop.add_item(item)
                added.append(item.as_json(primary))
        return {"items": added}

    def list_items(self, shop_name: str) -> JSON:
        shop = self.tenants.require(shop_name)
        with shop.lock:
            primary = shop.settings.location_id
            return {"items": [item.as_json(primary) for item in shop.items.values()]}

    def set_item(self, shop_name: str, inventory_item_id: int, body: JSON) -> JSON:
        available = body.get("available")
        if not isinstance(available, int) or isinstance(available, bool):
            raise ControlError(400, "'available' must be an integer.")
        shop = self.tenants.require(shop_name)
        with shop.lock:
            item = shop.items.get(inventory_item_id)
            if item is None:
                raise ControlError(404, f"No inventory item {inventory_item_id}.")
            location_id = parse_id(body.get("location_id", shop.settings.location_id), "Location")
            level = item.levels.get(location_id) if location_id is not None else None
            if level is None or location_id is None:
                raise ControlError(404, f"Item {inventory_item_id} is not stocked there.")
            now = self.clock.time()
            shop.read_lag.before_write((inventory_item_id, location_id), level.snapshot(), now)
            delta = available - level.available
            level.available = available
            level.updated_at = self.clock.iso()
            subscribed = self._record_change(shop, item, location_id, level, delta, "manual", None)
            answer: JSON = {
                "item": item.as_json(shop.settings.location_id),
                "webhook_id": None,
                "delivery_status": None,
            }
            notify = None
            if body.get("notify", False) and not shop.settings.level_webhooks:
                notify = self._level_delivery(shop, item, location_id, level)
        if subscribed is not None:
            self._send_later(shop, [subscribed])
        if notify is not None:
            answer |= self.deliver(shop, notify)
        return answer

    def place_order(self, shop_name: str, body: JSON) -> JSON:
        raw_lines = body.get("lines")
        if not isinstance(raw_lines, list) or not raw_lines:
            raise ControlError(400, "'lines' must be a non-empty list.")
        shop = self.tenants.require(shop_name)
        with shop.lock:
            wanted: list[tuple[Item, int]] = []
            for raw in raw_lines:
                try:
                    variant_id, quantity = int(raw["variant_id"]), int(raw["quantity"])
                except (KeyError, TypeError, ValueError):
                    raise ControlError(400, f"Bad line {raw!r}.") from None
                item = shop.by_variant.get(variant_id)
                if item is None:
                    raise ControlError(400, f"No variant {variant_id} in shop {shop_name!r}.")
                if quantity <= 0:
                    raise ControlError(400, "Line quantities are positive.")
                wanted.append((item, quantity))
            now = self.clock.time()
            order = Order(
                id=next(self._order_ids),
                name=f"#{next(self._order_numbers)}",
                created_at=self.clock.iso(),
                line_items=[],
            )
            location_id = shop.settings.location_id
            levels_sent: list[Delivery] = []
            for item, quantity in wanted:
                level = item.levels[location_id]
                shop.read_lag.before_write(
                    (item.inventory_item_id, location_id), level.snapshot(), now
                )
                # §1.6: placing an order commits units; available may go negative (oversold).
                level.available -= quantity
                level.committed += quantity
                level.updated_at = order.created_at
                delivery = self._record_change(
                    shop, item, location_id, level, -quantity, "order", order.id
                )
                if delivery is not None:
                    levels_sent.append(delivery)
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
            delivery = webhooks.new_delivery(
                shop, "orders/create", order.as_json(), now, order.created_at
            )
        self._send_later(shop, levels_sent)
        answer: JSON = {
            "order_id": order.id,
            "order_name": order.name,
            "line_item_ids": [line.id for line in order.line_items],
        }
        return answer | self.deliver(shop, delivery, body)

    def cancel_order(self, shop_name: str, order_id: int, body: JSON) -> JSON:
        shop = self.tenants.require(shop_name)
        with shop.lock:
            order = shop.orders.get(order_id)
            if order is None:
                raise ControlError(404, f"No order {order_id}.")
            if order.cancelled_at is not None:
                raise ControlError(409, f"Order {order_id} is already cancelled.")
            order.cancelled_at = self.clock.iso()
            levels_sent: list[Delivery] = []
            for line in order.line_items:
                levels_sent += self._restock(
                    shop, line, line.quantity - line.restocked, "cancel", order.id
                )
            delivery = webhooks.new_delivery(
                shop, "orders/cancelled", order.as_json(), self.clock.time(), order.cancelled_at
            )
        self._send_later(shop, levels_sent)
        answer: JSON = {
            "order_id": order.id,
            "line_item_ids": [line.id for line in order.line_items],
        }
        return answer | self.deliver(shop, delivery, body)

    def refund(self, shop_name: str, order_id: int, body: JSON) -> JSON:
        raw_lines = body.get("lines")
        if not isinstance(raw_lines, list) or not raw_lines:
            raise ControlError(400, "'lines' must be a non-empty list.")
        shop = self.tenants.require(shop_name)
        with shop.lock:
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
            levels_sent: list[Delivery] = []
            for line, quantity, restock_type in wanted:
                line.refunded += quantity
                if restock_type in RESTOCKING_TYPES:
                    restockable = min(quantity, line.quantity - line.restocked)
                    levels_sent += self._restock(shop, line, restockable, "refund", refund_id)
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
            created_at = self.clock.iso()
            payload = {
                "id": refund_id,
                "admin_graphql_api_id": gid("Refund", refund_id),
                "order_id": order.id,
                "created_at": created_at,
                "processed_at": created_at,
                "note": None,
                "restock": any(t in RESTOCKING_TYPES for _, _, t in wanted),
                "refund_line_items": refund_lines,
            }
            order.refunds.append(payload)
            delivery = webhooks.new_delivery(
                shop, "refunds/create", payload, self.clock.time(), created_at
            )
        self._send_later(shop, levels_sent)
        answer: JSON = {
            "order_id": order.id,
            "refund_id": refund_id,
            "line_item_ids": [line.id for line, _, _ in wanted],
        }
        return answer | self.deliver(shop, delivery, body)

    def _restock(
        self, shop: Shop, line: LineItem, quantity: int, source: str, reference: int
    ) -> list[Delivery]:
        if quantity <= 0:
            return []
        line.restocked += quantity
        item = shop.by_variant.get(line.variant_id)
        if item is None:
            return []
        location_id = shop.settings.location_id
        level = item.levels[location_id]
        now = self.clock.time()
        shop.read_lag.before_write((item.inventory_item_id, location_id), level.snapshot(), now)
        level.committed = max(0, level.committed - quantity)
        level.available += quantity
        level.updated_at = self.clock.iso()
        delivery = self._record_change(shop, item, location_id, level, quantity, source, reference)
        return [] if delivery is None else [delivery]

    def changes(self, shop_name: str, seq: int) -> JSON:
        shop = self.tenants.require(shop_name)
        with shop.lock:
            return {"changes": shop.changes.since(seq)}


def _json_object(body: bytes) -> JSON:
    import json

    value = json.loads(body)
    if not isinstance(value, dict):
        raise ValueError
    return value


def _level(raw: JSON, now_iso: str) -> Level:
    values = {name: int(raw.get(name, 0)) for name in STORED_STATES}
    return Level(**values, created_at=now_iso, updated_at=now_iso)
