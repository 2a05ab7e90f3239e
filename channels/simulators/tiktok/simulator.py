"""A TikTok Shop stand-in: signed calls, token refresh, inventory, orders, webhooks.

Facts reproduced here come from ``CHANNEL_APIS.md`` §4 and §6 "TikTok Shop" (shared
folder); what is marked [M] there is a shop setting (``state.ShopSettings``).

A channel's ``api_base_url`` is ``http://HOST:PORT`` where the real platform would be
``https://open-api.tiktokglobalshop.com``: the shop is found by its ``shop_cipher`` (§4.2),
as on the platform. Every API call is checked, in this order, each failure answered with
the envelope ``{"code": <non-zero>, "message", "request_id", "data": {}}``:

- ``shop_cipher`` names a shop (``invalid_shop_cipher``), ``app_key`` is its app's;
- ``timestamp`` is within ``timestamp_skew_s`` of the clock;
- ``sign`` recomputed over path + sorted parameters + the raw body (``signing``);
- ``x-tts-access-token`` is a live token (HTTP 401, ``expired_token``).

API:

- ``GET /api/v2/token/refresh?app_key=&app_secret=&refresh_token=&grant_type=refresh_token``
  (§4.2, served on the same host): a new access token lasting ``token_ttl_s``;
- ``POST /product/202309/products/{product_id}/inventory/update``: absolute quantities,
  0 <= q < 99999, ``warehouse_id`` required where the SKU has several; a SKU that fails
  (not live, unknown, out of range) is reported in ``data.errors`` of a ``code: 0`` answer
  while the others are applied (§4.3);
- ``POST /product/202309/inventory/search``: ``{"sku_ids": [≤600]}`` or
  ``{"product_ids": [≤100]}``, each warehouse's ``available_quantity`` and the
  in-shop / campaign / creator split (§4.4);
- ``GET /order/202309/orders?ids=a,b``: order detail, one line item per unit (§4.1 [M]);
- ``POST /order/202309/orders/search?page_size=&page_token=`` ``{"update_time_ge",
  "update_time_lt"}``: orders changed in the window, oldest first;
- ``POST /return_refund/202309/cancellations/search`` ``{"cancel_ids"}`` or
  ``{"order_ids"}``: ``data.cancellations[]`` with ``cancel_id``, ``order_id``,
  ``cancel_status``, ``cancel_type``, ``role``, ``create_time``, ``update_time`` and
  ``cancel_line_items[]`` (``cancel_line_item_id``, ``order_line_item_id``, ``sku_id``,
  ``seller_sku``), one per unit;
- ``POST /return_refund/202309/returns/search`` ``{"return_ids"}`` or ``{"order_ids"}``:
  ``data.return_orders[]`` with ``return_id``, ``order_id``, ``return_status``,
  ``return_type`` (``REFUND``, ``RETURN_AND_REFUND``, ``REPLACEMENT``), ``role`` and
  ``return_line_items[]`` (``return_line_item_id``, ``order_line_item_id``, ``sku_id``,
  ``seller_sku``).

The field and status names of the two searches follow a third-party client's types for
the 202309 return_refund API; paging (one page here), the webhook data of types 11 and 12
(``{order_id, cancel_id, cancel_status, cancellations_role, update_time}`` and
``{order_id, return_id, return_status, return_type, return_role, create_time,
update_time}``) and the order detail's per-line ``display_status`` / ``is_cancelled``
are [M].

Besides the harness's control routes, ``/_sim/shops/<shop>/`` has: ``POST skus``
``{"skus": [{sku_id, product_id, seller_sku, quantity | warehouses, status,
campaign_quantity, creator_quantity}]}``; ``GET skus``; ``POST orders``
``{"lines": [{sku_id, quantity}], "status", "duplicates", "deliver"}`` (a type 1 webhook
without lines); ``POST orders/<id>/status`` ``{"status"}`` (CANCELLED gives the units
back; line items a partial cancellation took already are not given back twice);
``POST notify`` ``{"type": 6 | 7}`` (deauthorization, upcoming expiry);
``GET changes?since=``.

Partial cancellations: ``POST orders/<id>/cancellations`` ``{"lines": [{sku_id,
quantity}], "status", "then", "after_s", "duplicates", "deliver"}`` cancels those units
(one unit of the order's first SKU without ``lines``) of an order not shipped yet
(``UNPAID``, ``ON_HOLD``, ``AWAITING_SHIPMENT``; 409 otherwise) and sends a type 11
webhook naming the cancellation only. ``CANCELLATION_REQUEST_SUCCESS`` (the default) gives
the units back to the shop's available stock, marks the line items ``CANCELLED`` in the
order detail and moves the order's ``update_time`` (the order search shows it); once every
line item is cancelled the order is ``CANCELLED``. ``CANCELLATION_REQUEST_PENDING`` moves
nothing until ``POST cancellations/<cancel_id>/status`` ``{"status"}`` grants it
(``_SUCCESS``) or withdraws it (``_CANCEL``), or ``then`` does so ``after_s`` later (1 s by
default) on the simulator's clock.

Returns: ``POST orders/<id>/returns`` ``{"lines", "return_type", "status", "then",
"after_s", "duplicates", "deliver"}`` opens a return of units not cancelled nor already
being returned (``RETURN_AND_REFUND`` and ``RETURN_OR_REFUND_REQUEST_PENDING`` by default)
and sends a type 12 webhook; ``POST returns/<return_id>/status`` ``{"status"}`` (or
``then``) moves it on, each change announced, until it is complete, rejected or cancelled
(409 after). A return moves nothing in the shop's stock [M]: restocking is the seller's.

Auto-cancel: with the shop setting ``auto_cancel_after_s`` (0, the default, never), an order
still ``UNPAID``, ``ON_HOLD`` or ``AWAITING_SHIPMENT`` that long after it was placed (on the
simulator's clock) is cancelled by the platform: its units are given back and a type 1
webhook with ``CANCELLED`` announces it; the order detail says
``cancellation_initiator: "SYSTEM"``. An order moved on to shipping is left alone.

Viral mode (a creator's video selling one SKU at a rate): ``POST viral`` ``{"sku_id",
"orders", "per_s", "quantity"}`` starts a burst in the background, ``orders`` orders of
``quantity`` units paced at ``per_s`` a second on the real clock, each announced by its
type 1 webhook; a buyer buys only what the shop shows, so an order the SKU's available
quantity cannot cover is not placed (counted ``sold_out``). It answers at once with the
burst's ``burst_id``; ``GET viral`` reports every burst of the shop (``placed``,
``sold_out``, ``done``, ``order_ids`` with the unix time each was placed at).

Fault endpoints: ``token``; ``inventory:update`` (also ``write``); ``inventory:search``,
``orders:get``, ``orders:search``, ``cancellations:search`` and ``returns:search`` (also
``read``).
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
import uuid
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
from channels.simulators.tiktok import signing
from channels.simulators.tiktok.state import (
    CANCEL_PENDING,
    CANCEL_STATUSES,
    CANCEL_SUCCESS,
    DEFAULT_WAREHOUSE,
    MAX_SEARCH_PRODUCT_IDS,
    MAX_SEARCH_SKU_IDS,
    ORDER_STATUSES,
    QUANTITY_LIMIT,
    RETURN_STATUSES,
    RETURN_TYPES,
    Cancellation,
    Order,
    Return,
    Shop,
    ShopSettings,
    Sku,
    WarehouseStock,
)

_SHOP = r"/_sim/shops/(?P<tenant>[\w.-]+)"
_UPDATE_PATH = re.compile(r"^/product/202309/products/(?P<product>[\w-]+)/inventory/update$")
# §4.1 type codes.
ORDER_STATUS_CHANGE = 1
SELLER_DEAUTHORIZATION = 6
UPCOMING_AUTHORIZATION_EXPIRATION = 7
CANCELLATION_STATUS_CHANGE = 11
RETURN_STATUS_CHANGE = 12
ORDERS_PAGE = 50
# Statuses in which an order has not shipped: the platform's auto-cancel applies to them,
# and a buyer may still cancel some of its line items.
_CANCELLABLE_UNSHIPPED = frozenset({"UNPAID", "ON_HOLD", "AWAITING_SHIPMENT"})
# A cancellation or return in one of these is over: its status moves no more.
_CANCELLATION_CLOSED = frozenset(CANCEL_STATUSES) - {CANCEL_PENDING}
_RETURN_CLOSED = frozenset(
    {
        "RETURN_OR_REFUND_REQUEST_REJECT",
        "RETURN_OR_REFUND_REQUEST_CANCEL",
        "RETURN_OR_REFUND_REQUEST_COMPLETE",
    }
)
# A return in one of these gave nothing back: its line items may be returned again.
_RETURN_ABANDONED = frozenset(
    {"RETURN_OR_REFUND_REQUEST_REJECT", "RETURN_OR_REFUND_REQUEST_CANCEL"}
)
_SEARCH_PATHS = {
    "/return_refund/202309/cancellations/search": "cancellations:search",
    "/return_refund/202309/returns/search": "returns:search",
}
CONNECT_TIMEOUT_S = 1.0
RESPONSE_TIMEOUT_S = 5.0


def envelope(code: int, message: str, data: JSON | None = None) -> JSON:
    """§4.5: every answer, success or not."""
    return {
        "code": code,
        "message": message,
        "request_id": uuid.uuid4().hex[:20],
        "data": data if data is not None else {},
    }


class TikTokSimulator(Simulator[Shop]):
    display_name = "TikTok Shop"
    tenant_collection = "shops"
    tenant_kind = "shop"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Shop-independent so ids never collide across shops or resets.
        self._order_ids = itertools.count(576460000000000001)
        self._line_ids = itertools.count(577000000000000001)
        self._notification_ids = itertools.count(7327112393057371910)
        self._cancel_ids = itertools.count(578000000000000001)
        self._return_ids = itertools.count(579000000000000001)

    # -- Tenants -----------------------------------------------------------------------------

    def create_tenant(self, body: JSON) -> JSON:
        values = dict(body)
        skus = values.pop("skus", [])
        settings = ShopSettings.from_json(values)
        self.tenants.put(Shop(settings, self.clock.time()))
        if skus:
            self.add_skus(settings.shop, {"skus": skus})
        return {"shop": settings.public()}

    def tenant_state(self, shop: Shop) -> JSON:
        return {"shop": shop.settings.public(), "skus": len(shop.skus), "orders": len(shop.orders)}

    def update_settings(self, shop: Shop, body: JSON) -> JSON:
        with shop.lock:
            try:
                shop.settings.update(body)
            except (TypeError, ValueError) as error:
                raise ControlError(400, f"Bad setting: {error}") from None
            shop.read_lag.lag_s = shop.settings.read_lag_s
            return {"shop": shop.settings.public()}

    def retry_policy(self, shop: Shop) -> RetryPolicy:
        return RetryPolicy(
            retries=shop.settings.webhook_retries,
            base_s=shop.settings.webhook_retry_base_s,
            connect_timeout_s=CONNECT_TIMEOUT_S,
            response_timeout_s=RESPONSE_TIMEOUT_S,
        )

    # -- Fault answers -----------------------------------------------------------------------

    def error_response(self, status: int, with_body: bool) -> Response:
        if not with_body:
            return Response(status, b"")
        return Response(status, envelope(status * 100, "Internal error, try again."))

    def throttled_response(self, shop: Shop) -> Response:
        # §4.5 [M]: 429 and the envelope with a rate-limit code.
        return Response(
            429,
            envelope(shop.settings.codes.rate_limited, "Too many requests."),
            headers={"Retry-After": str(shop.settings.throttle_retry_after_s)},
        )

    def expired_token_response(self, shop: Shop) -> Response:
        return Response(
            401,
            envelope(shop.settings.codes.expired_token, "Access token is expired or invalid."),
        )

    # -- API ---------------------------------------------------------------------------------

    def handle_api(self, request: Request) -> Response:
        params = {key: values[0] for key, values in request.query.items() if values}
        if request.path == "/api/v2/token/refresh" and request.method == "GET":
            return self._refresh(params)
        endpoint = self._endpoint(request)
        if endpoint is None:
            return Response(404, envelope(40400, f"No route {request.method} {request.path}."))
        shop = self.tenants.find(
            lambda candidate: candidate.settings.shop_cipher == params.get("shop_cipher")
        )
        if shop is None:
            return Response(200, envelope(106011, "shop_cipher is missing or invalid."))
        entry = self.log_request(shop, request, endpoint=endpoint, params=params)
        response = self._checked(shop, request, endpoint, params, entry)
        entry["status"] = None if response.reset else response.status
        if isinstance(response.body, dict):
            entry["code"] = response.body.get("code")
        return response

    def _endpoint(self, request: Request) -> str | None:
        method, path = request.method, request.path
        if method == "POST" and _UPDATE_PATH.match(path):
            return "inventory:update"
        if method == "POST" and path == "/product/202309/inventory/search":
            return "inventory:search"
        if method == "GET" and path == "/order/202309/orders":
            return "orders:get"
        if method == "POST" and path == "/order/202309/orders/search":
            return "orders:search"
        if method == "POST" and path in _SEARCH_PATHS:
            return _SEARCH_PATHS[path]
        return None

    def _checked(
        self, shop: Shop, request: Request, endpoint: str, params: dict[str, str], entry: JSON
    ) -> Response:
        refusal = self._refuse(shop, request, params)
        if refusal is not None:
            return refusal
        group = "write" if endpoint == "inventory:update" else "read"
        with shop.lock:
            fault = shop.faults.draw([endpoint, group])
            dropped = group == "write" and shop.faults.take_drop([endpoint, group])
            allowed = self._take_call(shop)
        entry["fault"] = fault.name
        if not allowed:
            return self.throttled_response(shop)
        answer = self.fault_response(shop, fault)
        if answer is not None:
            return answer
        if fault.latency_s:
            time.sleep(fault.latency_s)
        try:
            body = json.loads(request.body) if request.body else {}
            if not isinstance(body, dict):
                raise ValueError
        except ValueError:
            return Response(200, envelope(shop.settings.codes.invalid_body, "Invalid JSON body."))
        if endpoint == "inventory:update":
            match = _UPDATE_PATH.match(request.path)
            assert match is not None
            response = self._update(shop, match["product"], body, apply=not dropped)
        elif endpoint == "inventory:search":
            response = self._search_inventory(shop, body)
        elif endpoint == "orders:get":
            response = self._get_orders(shop, params)
        elif endpoint == "orders:search":
            response = self._search_orders(shop, params, body)
        elif endpoint == "cancellations:search":
            response = self._search_after_sales(shop, body, kind="cancel")
        else:
            response = self._search_after_sales(shop, body, kind="return")
        if fault.timeout_s:
            # Applied; the answer comes after the client gave up.
            response.delay_s = fault.timeout_s
        return response

    def _refuse(self, shop: Shop, request: Request, params: dict[str, str]) -> Response | None:
        """§4.2 and §6: app key, timestamp, sign, then the access token."""
        settings, codes = shop.settings, shop.settings.codes
        if params.get("app_key") != settings.app_key:
            return Response(200, envelope(codes.invalid_app_key, "app_key is invalid."))
        try:
            timestamp = float(params["timestamp"])
        except (KeyError, ValueError):
            return Response(200, envelope(codes.invalid_timestamp, "timestamp is missing."))
        if abs(timestamp - self.clock.time()) > settings.timestamp_skew_s:
            return Response(200, envelope(codes.invalid_timestamp, "timestamp is expired."))
        expected = signing.request_sign(
            secret=settings.app_secret, path=request.path, params=params, body=request.body
        )
        if params.get("sign", "") != expected:
            return Response(200, envelope(codes.invalid_sign, "Invalid sign."))
        token = request.header("x-tts-access-token")
        now = self.clock.time()
        with shop.lock:
            expires_at = shop.tokens.get(token)
        if expires_at is None or expires_at <= now:
            return self.expired_token_response(shop)
        return None

    def _take_call(self, shop: Shop) -> bool:
        """The ``qps`` limit per shop (lock held), counted per second of the clock."""
        if shop.settings.qps <= 0:
            return True
        second = int(self.clock.time())
        if second != shop.second:
            shop.second, shop.calls_this_second = second, 0
        shop.calls_this_second += 1
        return shop.calls_this_second <= shop.settings.qps

    def _refresh(self, params: dict[str, str]) -> Response:
        """§4.2: a refresh token (with the app's key and secret) for a new access token."""
        shop = self.tenants.find(
            lambda candidate: params.get("refresh_token", "") in candidate.refresh_tokens
        )
        if shop is None:
            return Response(200, envelope(105003, "refresh_token is invalid."))
        with shop.lock:
            fault = shop.faults.draw(["token"])
        if fault.reset or fault.fail_status is not None or fault.throttle:
            answer = self.fault_response(shop, fault)
            if answer is not None:
                return answer
        settings = shop.settings
        if (
            params.get("app_key") != settings.app_key
            or params.get("app_secret") != settings.app_secret
            or params.get("grant_type") != "refresh_token"
        ):
            return Response(200, envelope(settings.codes.invalid_app_key, "Invalid app."))
        token = f"TTP_{uuid.uuid4().hex}"
        with shop.lock:
            now = self.clock.time()
            shop.tokens = {t: at for t, at in shop.tokens.items() if at > now}
            shop.tokens[token] = now + settings.token_ttl_s
        return Response(
            200,
            envelope(
                0,
                "success",
                {
                    "access_token": token,
                    "access_token_expire_in": int(now + settings.token_ttl_s),
                    "refresh_token": params["refresh_token"],
                    "refresh_token_expire_in": int(now + 365 * 86400),
                    "open_id": settings.shop_id,
                    "seller_name": settings.shop,
                },
            ),
        )

    # -- Inventory ---------------------------------------------------------------------------

    def _update(self, shop: Shop, product_id: str, body: JSON, *, apply: bool) -> Response:
        """§4.3: absolute figures per SKU and warehouse; a failing SKU is reported inside a
        ``code: 0`` answer, the others applied."""
        codes = shop.settings.codes
        entries = body.get("skus")
        if not isinstance(entries, list) or not entries:
            return Response(200, envelope(codes.invalid_body, "skus is required."))
        errors: list[JSON] = []
        with shop.lock:
            if not any(sku.product_id == product_id for sku in shop.skus.values()):
                return Response(
                    200, envelope(codes.product_not_found, f"Product {product_id} not found.")
                )
            for entry in entries:
                error = self._update_sku(shop, product_id, entry, apply=apply)
                if error is not None:
                    errors.append(error)
        return Response(200, envelope(0, "Success", {"errors": errors} if errors else {}))

    def _update_sku(
        self, shop: Shop, product_id: str, entry: object, *, apply: bool
    ) -> JSON | None:
        codes = shop.settings.codes
        if not isinstance(entry, dict):
            return _sku_error(codes.invalid_body, "A SKU entry is an object.", "")
        sku_id = str(entry.get("id", ""))
        sku = shop.skus.get(sku_id)
        if sku is None or sku.product_id != product_id:
            return _sku_error(codes.sku_not_found, f"SKU {sku_id} not found.", sku_id)
        if sku.status != "LIVE":
            return _sku_error(
                codes.sku_not_live, f"SKU {sku_id} is {sku.status}: only live SKUs.", sku_id
            )
        inventory = entry.get("inventory")
        if not isinstance(inventory, list) or not inventory:
            return _sku_error(codes.invalid_body, "inventory is required.", sku_id)
        planned: list[tuple[str, int]] = []
        extra: list[JSON] = []
        for part in inventory:
            warehouse_id = str((part or {}).get("warehouse_id") or "")
            quantity = (part or {}).get("quantity")
            if not warehouse_id and len(sku.warehouses) > 1:
                extra.append(_extra(codes.warehouse_required, "warehouse_id is required.", ""))
                continue
            warehouse_id = warehouse_id or next(iter(sku.warehouses))
            if warehouse_id not in sku.warehouses:
                extra.append(_extra(codes.warehouse_not_found, "Unknown warehouse.", warehouse_id))
                continue
            if (
                isinstance(quantity, bool)
                or not isinstance(quantity, int)
                or not 0 <= quantity < QUANTITY_LIMIT
            ):
                extra.append(
                    _extra(
                        codes.quantity_out_of_range,
                        f"quantity must be from 0 to {QUANTITY_LIMIT - 1}.",
                        warehouse_id,
                    )
                )
                continue
            planned.append((warehouse_id, quantity))
        if extra:
            return _sku_error(
                extra[0]["code"], "The SKU's inventory was not updated.", sku_id, extra
            )
        if apply:
            for warehouse_id, quantity in planned:
                self._set(shop, sku, warehouse_id, quantity, "api", None)
            sku.api_writes += 1
        return None

    def _set(
        self, shop: Shop, sku: Sku, warehouse_id: str, quantity: int, source: str, ref: str | None
    ) -> None:
        """Change a warehouse's available figure (lock held), recording the change."""
        stock = sku.warehouses[warehouse_id]
        now = self.clock.time()
        shop.read_lag.before_write((sku.sku_id, warehouse_id), stock.available, now)
        delta = quantity - stock.available
        stock.available = quantity
        shop.changes.append(
            {
                "time": now,
                "sku_id": sku.sku_id,
                "warehouse_id": warehouse_id,
                "delta": delta,
                "quantity": quantity,
                "source": source,
                "order_id": ref,
            }
        )

    def _search_inventory(self, shop: Shop, body: JSON) -> Response:
        """§4.4: sku_ids (≤600) win over product_ids (≤100)."""
        codes = shop.settings.codes
        sku_ids = body.get("sku_ids")
        product_ids = body.get("product_ids")
        if isinstance(sku_ids, list) and sku_ids:
            if len(sku_ids) > MAX_SEARCH_SKU_IDS:
                return Response(
                    200, envelope(codes.too_many_ids, f"At most {MAX_SEARCH_SKU_IDS} sku_ids.")
                )
            wanted = {str(s) for s in sku_ids}
            keep = lambda sku: sku.sku_id in wanted  # noqa: E731
        elif isinstance(product_ids, list) and product_ids:
            if len(product_ids) > MAX_SEARCH_PRODUCT_IDS:
                return Response(
                    200,
                    envelope(codes.too_many_ids, f"At most {MAX_SEARCH_PRODUCT_IDS} product_ids."),
                )
            products = {str(p) for p in product_ids}
            keep = lambda sku: sku.product_id in products  # noqa: E731
        else:
            return Response(200, envelope(codes.invalid_body, "sku_ids or product_ids."))
        by_product: dict[str, list[JSON]] = {}
        now = self.clock.time()
        with shop.lock:
            for sku in shop.skus.values():
                if keep(sku):
                    by_product.setdefault(sku.product_id, []).append(
                        self._sku_json(shop, sku, now)
                    )
        inventory = [{"product_id": p, "skus": skus} for p, skus in by_product.items()]
        return Response(200, envelope(0, "Success", {"inventory": inventory}))

    def _sku_json(self, shop: Shop, sku: Sku, now: float) -> JSON:
        warehouses = [
            {
                "warehouse_id": warehouse_id,
                "available_quantity": shop.read_lag.visible(
                    (sku.sku_id, warehouse_id), stock.available, now
                ),
                "committed_quantity": stock.committed,
            }
            for warehouse_id, stock in sku.warehouses.items()
        ]
        available = sum(w["available_quantity"] for w in warehouses)
        campaign = min(sku.campaign_quantity, available)
        creator = min(sku.creator_quantity, available - campaign)
        return {
            "id": sku.sku_id,
            "seller_sku": sku.seller_sku,
            "total_available_quantity": available,
            "total_committed_quantity": sum(w["committed_quantity"] for w in warehouses),
            "warehouse_inventory": warehouses,
            "total_available_inventory_distribution": {
                "in_shop_inventory": {"quantity": available - campaign - creator},
                "campaign_inventory": (
                    [{"campaign_name": "Flash sale", "quantity": campaign}] if campaign else []
                ),
                "creator_inventory": (
                    [{"creator_name": "creator", "quantity": creator}] if creator else []
                ),
            },
        }

    # -- Orders ------------------------------------------------------------------------------

    def _get_orders(self, shop: Shop, params: dict[str, str]) -> Response:
        """§4.1: ``ids`` comma separated; unknown ids are left out."""
        ids = [i for i in params.get("ids", "").split(",") if i]
        if not ids:
            return Response(200, envelope(shop.settings.codes.invalid_body, "ids is required."))
        with shop.lock:
            orders = [_order_json(shop, shop.orders[i]) for i in ids if i in shop.orders]
        return Response(200, envelope(0, "Success", {"orders": orders}))

    def _search_orders(self, shop: Shop, params: dict[str, str], body: JSON) -> Response:
        try:
            since_s = int(body.get("update_time_ge", 0))
            until_s = int(body.get("update_time_lt", 2**62))
            page_size = min(int(params.get("page_size", ORDERS_PAGE)), 100)
            start = int(params.get("page_token") or 0)
        except (TypeError, ValueError):
            return Response(200, envelope(shop.settings.codes.invalid_body, "Bad search."))
        with shop.lock:
            matching = sorted(
                (o for o in shop.orders.values() if since_s <= o.update_time < until_s),
                key=lambda o: (o.update_time, o.order_id),
            )
            page = [_order_json(shop, o) for o in matching[start : start + page_size]]
        more = start + page_size < len(matching)
        return Response(
            200,
            envelope(
                0,
                "Success",
                {
                    "orders": page,
                    "total_count": len(matching),
                    "next_page_token": str(start + page_size) if more else "",
                },
            ),
        )

    def _search_after_sales(self, shop: Shop, body: JSON, *, kind: str) -> Response:
        """Search Cancellations (``{"cancel_ids"}`` or ``{"order_ids"}``) or Search Returns
        (``{"return_ids"}`` or ``{"order_ids"}``), oldest first, in one page [M]."""
        ids_key, records, answer_key = (
            ("cancel_ids", shop.cancellations, "cancellations")
            if kind == "cancel"
            else ("return_ids", shop.returns, "return_orders")
        )
        ids, order_ids = body.get(ids_key), body.get("order_ids")
        if not (isinstance(ids, list) and ids) and not (isinstance(order_ids, list) and order_ids):
            return Response(
                200, envelope(shop.settings.codes.invalid_body, f"{ids_key} or order_ids.")
            )
        wanted = {str(i) for i in ids or []}
        orders = {str(o) for o in order_ids or []}
        with shop.lock:
            found = [
                _after_sale_json(shop, record)
                for record in records.values()
                if (not wanted or _record_id(record) in wanted)
                and (not orders or record.order_id in orders)
            ]
        return Response(
            200,
            envelope(
                0,
                "Success",
                {answer_key: found, "total_count": len(found), "next_page_token": ""},
            ),
        )

    # -- Control -----------------------------------------------------------------------------

    def control_routes(self) -> list[Route]:
        return [
            route("POST", f"{_SHOP}/skus", lambda m, b, q: self.add_skus(m["tenant"], b)),
            route("GET", f"{_SHOP}/skus", lambda m, b, q: self.list_skus(m["tenant"])),
            route("POST", f"{_SHOP}/orders", lambda m, b, q: self.place_order(m["tenant"], b)),
            route(
                "POST",
                rf"{_SHOP}/orders/(?P<order>\w+)/status",
                lambda m, b, q: self.set_order_status(m["tenant"], m["order"], b),
            ),
            route(
                "POST",
                rf"{_SHOP}/orders/(?P<order>\w+)/cancellations",
                lambda m, b, q: self.request_cancellation(m["tenant"], m["order"], b),
            ),
            route(
                "POST",
                rf"{_SHOP}/cancellations/(?P<record>\w+)/status",
                lambda m, b, q: self.advance(m["tenant"], "cancel", m["record"], b),
            ),
            route(
                "POST",
                rf"{_SHOP}/orders/(?P<order>\w+)/returns",
                lambda m, b, q: self.request_return(m["tenant"], m["order"], b),
            ),
            route(
                "POST",
                rf"{_SHOP}/returns/(?P<record>\w+)/status",
                lambda m, b, q: self.advance(m["tenant"], "return", m["record"], b),
            ),
            route("POST", f"{_SHOP}/notify", lambda m, b, q: self.notify(m["tenant"], b)),
            route("POST", f"{_SHOP}/viral", lambda m, b, q: self.start_viral(m["tenant"], b)),
            route("GET", f"{_SHOP}/viral", lambda m, b, q: self.viral_bursts(m["tenant"])),
            route("GET", f"{_SHOP}/changes", lambda m, b, q: self.changes(m["tenant"], since(q))),
        ]

    def add_skus(self, shop_name: str, body: JSON) -> JSON:
        raw_skus = body.get("skus")
        if not isinstance(raw_skus, list):
            raise ControlError(400, "'skus' must be a list.")
        shop = self.tenants.require(shop_name)
        added = []
        with shop.lock:
            for raw in raw_skus:
                try:
                    sku_id = str(raw["sku_id"])
                    warehouses = raw.get("warehouses") or {
                        DEFAULT_WAREHOUSE: int(raw.get("quantity", 0))
                    }
                    sku = Sku(
                        sku_id=sku_id,
                        product_id=str(raw.get("product_id") or f"17{sku_id}"),
                        seller_sku=str(raw.get("seller_sku") or sku_id),
                        status=str(raw.get("status") or "LIVE"),
                        warehouses={str(w): WarehouseStock(int(q)) for w, q in warehouses.items()},
                        campaign_quantity=int(raw.get("campaign_quantity", 0)),
                        creator_quantity=int(raw.get("creator_quantity", 0)),
                    )
                except (KeyError, TypeError, ValueError, AttributeError) as error:
                    raise ControlError(400, f"Bad SKU {raw!r}: {error!r}") from None
                shop.skus[sku.sku_id] = sku
                added.append(sku.as_json())
        return {"skus": added}

    def list_skus(self, shop_name: str) -> JSON:
        shop = self.tenants.require(shop_name)
        with shop.lock:
            return {"skus": [sku.as_json() for sku in shop.skus.values()]}

    def place_order(self, shop_name: str, body: JSON) -> JSON:
        """A buyer's order: units move from available to committed; a type 1 webhook that
        names the order only (§4.1)."""
        raw_lines = body.get("lines")
        if not isinstance(raw_lines, list) or not raw_lines:
            raise ControlError(400, "'lines' must be a non-empty list.")
        status = str(body.get("status") or "AWAITING_SHIPMENT")
        if status not in ORDER_STATUSES or status == "CANCELLED":
            raise ControlError(400, f"An order is placed in an open status, not {status!r}.")
        shop = self.tenants.require(shop_name)
        with shop.lock:
            wanted: list[tuple[Sku, int]] = []
            for raw in raw_lines:
                try:
                    sku_id, quantity = str(raw["sku_id"]), int(raw["quantity"])
                except (KeyError, TypeError, ValueError, AttributeError):
                    raise ControlError(400, f"Bad line {raw!r}.") from None
                sku = shop.skus.get(sku_id)
                if sku is None:
                    raise ControlError(400, f"No SKU {sku_id!r} in shop {shop_name!r}.")
                if quantity <= 0:
                    raise ControlError(400, "Line quantities are positive.")
                wanted.append((sku, quantity))
            order = self._place(shop, wanted, status)
            delivery = self._order_delivery(shop, order)
        return {"order_id": order.order_id} | self.deliver(shop, delivery, body)

    def _place(self, shop: Shop, wanted: list[tuple[Sku, int]], status: str) -> Order:
        """An order of these units (lock held): available to committed, one line a unit."""
        now = int(self.clock.time())
        order = Order(str(next(self._order_ids)), status, [], now, now)
        for sku, quantity in wanted:
            warehouse_id = next(iter(sku.warehouses))
            stock = sku.warehouses[warehouse_id]
            self._set(shop, sku, warehouse_id, stock.available - quantity, "order", None)
            stock.committed += quantity
            order.lines += [
                (str(next(self._line_ids)), sku.sku_id, warehouse_id) for _ in range(quantity)
            ]
        shop.orders[order.order_id] = order
        if shop.settings.auto_cancel_after_s > 0:
            order_id = order.order_id
            self.scheduler.call_later(
                shop.settings.auto_cancel_after_s, lambda: self._auto_cancel(shop, order_id)
            )
        return order

    def _auto_cancel(self, shop: Shop, order_id: str) -> None:
        """The platform cancels an order not shipped in time, and says so by webhook."""
        with shop.lock:
            order = shop.orders.get(order_id)
            if order is None or order.status not in _CANCELLABLE_UNSHIPPED:
                return
            self._cancel(shop, order, initiator="SYSTEM")
            delivery = self._order_delivery(shop, order)
        self.deliver(shop, delivery)

    def _cancel(self, shop: Shop, order: Order, *, initiator: str) -> None:
        """Give the order's units back and mark it cancelled (lock held); line items a
        partial cancellation took off gave theirs back already."""
        for line_id, sku_id, warehouse_id in order.lines:
            if line_id in order.cancelled_lines:
                continue
            sku = shop.skus[sku_id]
            stock = sku.warehouses[warehouse_id]
            stock.committed = max(0, stock.committed - 1)
            self._set(shop, sku, warehouse_id, stock.available + 1, "cancel", order.order_id)
        order.status = "CANCELLED"
        order.cancellation_initiator = initiator
        order.update_time = int(self.clock.time())

    # -- Cancellations and returns -----------------------------------------------------------

    def request_cancellation(self, shop_name: str, order_id: str, body: JSON) -> JSON:
        """A buyer cancels some units of an order not shipped yet (a partial cancellation,
        or the whole order when every unit is named): a type 11 webhook announces it. Granted
        (``CANCELLATION_REQUEST_SUCCESS``, the default), the units go back to the shop's
        available stock; pending, nothing moves until ``then`` grants or withdraws it."""
        status = str(body.get("status") or CANCEL_SUCCESS)
        if status not in (CANCEL_PENDING, CANCEL_SUCCESS):
            raise ControlError(400, f"A cancellation starts pending or granted, not {status!r}.")
        later = _later_statuses(body, CANCEL_STATUSES)
        shop = self.tenants.require(shop_name)
        with shop.lock:
            order = self._order(shop, order_id)
            if order.status not in _CANCELLABLE_UNSHIPPED:
                raise ControlError(409, f"Order {order_id} is {order.status}: too late to cancel.")
            taken = {
                line_id
                for cancellation in shop.cancellations.values()
                if cancellation.order_id == order_id
                and cancellation.status in (CANCEL_PENDING, CANCEL_SUCCESS)
                for line_id in cancellation.line_ids
            }
            line_ids = _pick_lines(order, body.get("lines"), taken)
            now = int(self.clock.time())
            cancellation = Cancellation(
                str(next(self._cancel_ids)), order_id, CANCEL_PENDING, line_ids, now, now
            )
            shop.cancellations[cancellation.cancel_id] = cancellation
            delivery = self._move_cancellation(shop, cancellation, status)
        self._schedule(shop, "cancel", cancellation.cancel_id, later, body)
        return {"cancel_id": cancellation.cancel_id, "cancel_status": status} | self.deliver(
            shop, delivery, body
        )

    def request_return(self, shop_name: str, order_id: str, body: JSON) -> JSON:
        """A buyer asks to return (``RETURN_AND_REFUND``) or be refunded for (``REFUND``)
        some units of an order: a type 12 webhook announces it, and each later status
        another. Nothing moves in the shop's stock: restocking a returned unit is the
        seller's call."""
        return_type = str(body.get("return_type") or "RETURN_AND_REFUND")
        if return_type not in RETURN_TYPES:
            raise ControlError(400, f"Unknown return_type {return_type!r}.")
        status = str(body.get("status") or RETURN_STATUSES[0])
        if status not in RETURN_STATUSES:
            raise ControlError(400, f"Unknown return status {status!r}.")
        later = _later_statuses(body, RETURN_STATUSES)
        shop = self.tenants.require(shop_name)
        with shop.lock:
            order = self._order(shop, order_id)
            if order.status == "CANCELLED":
                raise ControlError(409, f"Order {order_id} is cancelled.")
            taken = set(order.cancelled_lines) | {
                line_id
                for record in shop.returns.values()
                if record.order_id == order_id and record.status not in _RETURN_ABANDONED
                for line_id in record.line_ids
            }
            line_ids = _pick_lines(order, body.get("lines"), taken)
            now = int(self.clock.time())
            record = Return(
                str(next(self._return_ids)), order_id, status, return_type, line_ids, now, now
            )
            shop.returns[record.return_id] = record
            delivery = self._after_sale_delivery(shop, record)
        self._schedule(shop, "return", record.return_id, later, body)
        return {"return_id": record.return_id, "return_status": status} | self.deliver(
            shop, delivery, body
        )

    def advance(self, shop_name: str, kind: str, record_id: str, body: JSON) -> JSON:
        """Move a cancellation or a return on to ``status``, announced by its webhook."""
        shop = self.tenants.require(shop_name)
        status = str(body.get("status") or "")
        with shop.lock:
            delivery = self._advance(shop, kind, record_id, status)
        return {"status": status} | self.deliver(shop, delivery, body)

    def _advance(self, shop: Shop, kind: str, record_id: str, status: str) -> Delivery:
        """The status change and its webhook (lock held); ControlError when not allowed."""
        if kind == "cancel":
            cancellation = shop.cancellations.get(record_id)
            if cancellation is None:
                raise ControlError(404, f"No cancellation {record_id}.")
            if status not in CANCEL_STATUSES or cancellation.status in _CANCELLATION_CLOSED:
                raise ControlError(
                    409, f"Cancellation {record_id} is {cancellation.status}: not {status!r}."
                )
            return self._move_cancellation(shop, cancellation, status)
        record = shop.returns.get(record_id)
        if record is None:
            raise ControlError(404, f"No return {record_id}.")
        if status not in RETURN_STATUSES or record.status in _RETURN_CLOSED:
            raise ControlError(409, f"Return {record_id} is {record.status}: not {status!r}.")
        record.status = status
        record.update_time = int(self.clock.time())
        return self._after_sale_delivery(shop, record)

    def _move_cancellation(self, shop: Shop, cancellation: Cancellation, status: str) -> Delivery:
        """Set the cancellation's status (lock held): granted, its units go back to the
        shop, the order's update time moves (the order search shows it), and the order is
        cancelled once none of its line items is left."""
        now = int(self.clock.time())
        cancellation.status = status
        cancellation.update_time = now
        order = shop.orders[cancellation.order_id]
        if status == CANCEL_SUCCESS:
            lines = {line_id: (sku_id, w) for line_id, sku_id, w in order.lines}
            for line_id in cancellation.line_ids:
                if line_id in order.cancelled_lines or order.status == "CANCELLED":
                    continue
                sku_id, warehouse_id = lines[line_id]
                sku = shop.skus[sku_id]
                stock = sku.warehouses[warehouse_id]
                stock.committed = max(0, stock.committed - 1)
                self._set(shop, sku, warehouse_id, stock.available + 1, "cancel", order.order_id)
                order.cancelled_lines.add(line_id)
            if len(order.cancelled_lines) == len(order.lines):
                order.status = "CANCELLED"
                order.cancellation_initiator = cancellation.role
        order.update_time = now
        return self._after_sale_delivery(shop, cancellation)

    def _schedule(
        self, shop: Shop, kind: str, record_id: str, statuses: list[str], body: JSON
    ) -> None:
        """Each of ``statuses`` in turn, ``after_s`` apart on the clock, each announced
        (with the control call's ``duplicates``); one not allowed by then ends the flow."""
        if not statuses:
            return
        try:
            after_s = float(body.get("after_s", 1.0))
        except (TypeError, ValueError):
            raise ControlError(400, "'after_s' is a number of seconds.") from None

        def step() -> None:
            with shop.lock:
                try:
                    delivery = self._advance(shop, kind, record_id, statuses[0])
                except ControlError:
                    return
            self.deliver(shop, delivery, {"duplicates": body.get("duplicates", 0)})
            self._schedule(shop, kind, record_id, statuses[1:], body)

        self.scheduler.call_later(after_s, step)

    def _order(self, shop: Shop, order_id: str) -> Order:
        order = shop.orders.get(order_id)
        if order is None:
            raise ControlError(404, f"No order {order_id}.")
        return order

    # -- Viral mode --------------------------------------------------------------------------

    def start_viral(self, shop_name: str, body: JSON) -> JSON:
        """Start a burst of orders on one SKU in the background (see the module's doc)."""
        shop = self.tenants.require(shop_name)
        try:
            sku_id = str(body["sku_id"])
            orders = int(body.get("orders", 300))
            per_s = float(body.get("per_s", 15))
            quantity = int(body.get("quantity", 1))
        except (KeyError, TypeError, ValueError):
            raise ControlError(400, "'sku_id', and numbers for orders, per_s, quantity.") from None
        if orders <= 0 or per_s <= 0 or quantity <= 0:
            raise ControlError(400, "orders, per_s and quantity are positive.")
        with shop.lock:
            sku = shop.skus.get(sku_id)
            if sku is None:
                raise ControlError(400, f"No SKU {sku_id!r} in shop {shop_name!r}.")
            burst: JSON = {
                "burst_id": len(shop.viral_bursts) + 1,
                "sku_id": sku_id,
                "orders": orders,
                "per_s": per_s,
                "placed": 0,
                "sold_out": 0,
                "done": False,
                "order_ids": [],
            }
            shop.viral_bursts.append(burst)
        threading.Thread(
            target=self._run_viral,
            args=(shop, sku, burst, quantity),
            name=f"viral-{shop_name}-{burst['burst_id']}",
            daemon=True,
        ).start()
        return {key: value for key, value in burst.items() if key != "order_ids"}

    def _run_viral(self, shop: Shop, sku: Sku, burst: JSON, quantity: int) -> None:
        started = time.monotonic()
        for number in range(int(burst["orders"])):
            # Paced on the real clock from the start, so a slow delivery is caught up.
            delay = started + number / float(burst["per_s"]) - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            with shop.lock:
                if sku.warehouse(None).available < quantity:
                    burst["sold_out"] += 1
                    continue
                order = self._place(shop, [(sku, quantity)], "AWAITING_SHIPMENT")
                delivery = self._order_delivery(shop, order)
                burst["placed"] += 1
                burst["order_ids"].append([order.order_id, time.time()])
            self.deliver(shop, delivery)
        with shop.lock:
            burst["done"] = True

    def viral_bursts(self, shop_name: str) -> JSON:
        shop = self.tenants.require(shop_name)
        with shop.lock:
            return {"bursts": json.loads(json.dumps(shop.viral_bursts))}

    def set_order_status(self, shop_name: str, order_id: str, body: JSON) -> JSON:
        status = str(body.get("status") or "")
        if status not in ORDER_STATUSES:
            raise ControlError(400, f"Unknown status {status!r}.")
        shop = self.tenants.require(shop_name)
        with shop.lock:
            order = shop.orders.get(order_id)
            if order is None:
                raise ControlError(404, f"No order {order_id}.")
            if order.status == "CANCELLED":
                raise ControlError(409, "The order is cancelled.")
            if status == "CANCELLED":
                self._cancel(shop, order, initiator="SELLER")
            else:
                order.status = status
                order.update_time = int(self.clock.time())
            delivery = self._order_delivery(shop, order)
        return {"order_id": order_id, "status": status} | self.deliver(shop, delivery, body)

    def notify(self, shop_name: str, body: JSON) -> JSON:
        """Types 6 and 7 (§4.1): the seller took the app's access away, or it ends soon."""
        kind = body.get("type")
        if kind not in (SELLER_DEAUTHORIZATION, UPCOMING_AUTHORIZATION_EXPIRATION):
            raise ControlError(400, "'type' is 6 (deauthorization) or 7 (upcoming expiry).")
        shop = self.tenants.require(shop_name)
        data: JSON = {"message": "The seller deauthorized the app."}
        if kind == UPCOMING_AUTHORIZATION_EXPIRATION:
            data = {
                "message": "Authorization expires soon.",
                "expire_time": int(self.clock.time() + 7 * 86400),
            }
        with shop.lock:
            delivery = self._new_delivery(shop, int(kind), data)
        return self.deliver(shop, delivery)

    def changes(self, shop_name: str, seq: int) -> JSON:
        shop = self.tenants.require(shop_name)
        with shop.lock:
            return {"changes": shop.changes.since(seq)}

    # -- Webhooks ----------------------------------------------------------------------------

    def _order_delivery(self, shop: Shop, order: Order) -> Delivery:
        """§4.1: type 1 names the order and its status, never its lines."""
        return self._new_delivery(
            shop,
            ORDER_STATUS_CHANGE,
            {
                "order_id": order.order_id,
                "order_status": order.status,
                "is_on_hold_order": order.status == "ON_HOLD",
                "update_time": order.update_time,
            },
        )

    def _after_sale_delivery(self, shop: Shop, record: Cancellation | Return) -> Delivery:
        """Types 11 and 12 (§4.1 [M] shapes): the cancellation or return and its status,
        never its line items (Search Cancellations / Search Returns has them)."""
        if isinstance(record, Cancellation):
            return self._new_delivery(
                shop,
                CANCELLATION_STATUS_CHANGE,
                {
                    "order_id": record.order_id,
                    "cancel_id": record.cancel_id,
                    "cancel_status": record.status,
                    "cancellations_role": record.role,
                    "update_time": record.update_time,
                },
            )
        return self._new_delivery(
            shop,
            RETURN_STATUS_CHANGE,
            {
                "order_id": record.order_id,
                "return_id": record.return_id,
                "return_status": record.status,
                "return_type": record.return_type,
                "return_role": record.role,
                "create_time": record.create_time,
                "update_time": record.update_time,
            },
        )

    def _new_delivery(self, shop: Shop, kind: int, data: JSON) -> Delivery:
        """A delivery signed in ``Authorization`` (§4.1), lock held; nothing sent yet.

        Every attempt carries the same ``tts_notification_id``, the key to deduplicate on.
        """
        notification_id = str(next(self._notification_ids))
        body = json.dumps(
            {
                "type": kind,
                "tts_notification_id": notification_id,
                "shop_id": shop.settings.shop_id,
                "timestamp": int(self.clock.time()),
                "data": data,
            }
        ).encode()
        signature = signing.webhook_signature(
            app_key=shop.settings.app_key, secret=shop.settings.app_secret, body=body
        )
        return Delivery(
            webhook_id=notification_id,
            topic=str(kind),
            url=shop.settings.webhook_url,
            headers={"Content-Type": "application/json", "Authorization": signature},
            body=body,
            created_at=self.clock.time(),
        )


def _sku_error(code: int, message: str, sku_id: str, extra: list[JSON] | None = None) -> JSON:
    """§4.3: one entry of ``data.errors``, the warehouses' own errors in ``extra_errors``."""
    return {
        "code": code,
        "message": message,
        "detail": {"sku_id": sku_id, "extra_errors": extra or []},
    }


def _extra(code: int, message: str, warehouse_id: str) -> JSON:
    return {"warehouse_id": warehouse_id, "code": code, "message": message}


def _order_json(shop: Shop, order: Order) -> JSON:
    """§4.1: Get Order Detail's order, one line item per unit."""
    return {
        "id": order.order_id,
        "status": order.status,
        "cancellation_initiator": order.cancellation_initiator,
        "create_time": order.create_time,
        "update_time": order.update_time,
        "line_items": [
            {
                "id": line_id,
                "sku_id": sku_id,
                "seller_sku": shop.skus[sku_id].seller_sku if sku_id in shop.skus else "",
                "product_id": shop.skus[sku_id].product_id if sku_id in shop.skus else "",
                # [M]: a line item a partial cancellation took off says so; the others
                # show the order's status.
                "display_status": (
                    "CANCELLED" if line_id in order.cancelled_lines else order.status
                ),
                "is_cancelled": line_id in order.cancelled_lines,
            }
            for line_id, sku_id, _ in order.lines
        ],
    }


def _later_statuses(body: JSON, known: tuple[str, ...]) -> list[str]:
    """The control call's ``then``: one status or a list, each one of ``known``."""
    then = body.get("then") or []
    statuses = [then] if isinstance(then, str) else then
    if not isinstance(statuses, list) or any(status not in known for status in statuses):
        raise ControlError(400, f"'then' is a status or a list of them, each one of {known}.")
    return [str(status) for status in statuses]


def _pick_lines(order: Order, raw_lines: object, taken: set[str]) -> list[str]:
    """The order's line items for ``[{sku_id, quantity}]`` (one unit of its first SKU when
    none is named), never one in ``taken``; ControlError when the order has too few."""
    free = [(line_id, sku_id) for line_id, sku_id, _ in order.lines if line_id not in taken]
    if raw_lines is None:
        if not free:
            raise ControlError(409, f"Order {order.order_id} has no line item left.")
        raw_lines = [{"sku_id": free[0][1], "quantity": 1}]
    if not isinstance(raw_lines, list) or not raw_lines:
        raise ControlError(400, "'lines' is a non-empty list of {sku_id, quantity}.")
    picked: list[str] = []
    for raw in raw_lines:
        try:
            sku_id, quantity = str(raw["sku_id"]), int(raw["quantity"])
        except (KeyError, TypeError, ValueError):
            raise ControlError(400, f"Bad line {raw!r}.") from None
        candidates = [line_id for line_id, sku in free if sku == sku_id and line_id not in picked]
        if quantity <= 0 or len(candidates) < quantity:
            raise ControlError(
                409, f"Order {order.order_id} has {len(candidates)} unit(s) of {sku_id} left."
            )
        picked += candidates[:quantity]
    return picked


def _record_id(record: Cancellation | Return) -> str:
    return record.cancel_id if isinstance(record, Cancellation) else record.return_id


def _after_sale_json(shop: Shop, record: Cancellation | Return) -> JSON:
    """A cancellation (``cancel_line_items``) or return (``return_line_items``) as Search
    Cancellations / Search Returns answers it, one line item per unit."""
    skus_by_line = {line_id: sku_id for line_id, sku_id, _ in shop.orders[record.order_id].lines}
    items = [
        {
            "order_line_item_id": line_id,
            "sku_id": skus_by_line[line_id],
            "seller_sku": (
                shop.skus[skus_by_line[line_id]].seller_sku
                if skus_by_line[line_id] in shop.skus
                else ""
            ),
        }
        for line_id in record.line_ids
    ]
    common = {
        "order_id": record.order_id,
        "role": record.role,
        "create_time": record.create_time,
        "update_time": record.update_time,
    }
    if isinstance(record, Cancellation):
        return common | {
            "cancel_id": record.cancel_id,
            "cancel_status": record.status,
            "cancel_type": "BUYER_CANCEL",
            "cancel_line_items": [
                {"cancel_line_item_id": f"c{item['order_line_item_id']}"} | item for item in items
            ],
        }
    return common | {
        "return_id": record.return_id,
        "return_status": record.status,
        "return_type": record.return_type,
        "return_line_items": [
            {"return_line_item_id": f"r{item['order_line_item_id']}"} | item for item in items
        ],
    }
