"""A Walmart Marketplace stand-in: tokens, inventory, inventory feeds, orders, webhooks.

Several sellers live side by side. A channel's ``api_base_url`` is
``http://HOST:PORT/sellers/<seller>`` where the real platform would be
``https://marketplace.walmartapis.com``; the API paths below it are Walmart's (``/v3/...``).

Facts reproduced here come from ``CHANNEL_APIS.md`` §3 and §6 "Walmart" (shared folder).

- ``POST /v3/token``: Basic client credentials, ``grant_type=client_credentials``; a
  token that really expires after ``token_ttl_s`` (900) on the simulator's clock;
- every other call needs ``WM_SEC.ACCESS_TOKEN`` (or Basic client credentials, as some
  doc samples show), ``WM_QOS.CORRELATION_ID`` and ``WM_SVC.NAME`` (400
  ``INVALID_REQUEST_HEADER`` without them, 401 for a bad or expired token);
- ``PUT /v3/inventory?sku=[&shipNode=]`` (absolute), ``GET /v3/inventory?sku=[&shipNode=]``,
  ``PUT /v3/inventories/<sku>`` (several nodes, a status per node),
  ``GET /v3/inventories/<sku>[?shipNode=]`` and ``GET /v3/inventories?limit=&nextCursor=``
  (each node's inputQty, availToSellQty, reservedQty; 10 a page by default, 50 at most);
- ``POST /v3/feeds?feedType=inventory`` (spec 1.4 JSON) and ``feedType=MP_INVENTORY``
  (spec 1.5, each item's ``shipNodes``), as a multipart ``file`` or a raw body; 413 over
  ``max_feed_bytes``, 429 past ``feeds_per_hour``; ``GET /v3/feeds/<id>
  ?includeDetails=true&offset=&limit=`` (RECEIVED, INPROGRESS, PROCESSED or ERROR; each
  line's ``ingestionStatus``);
- ``GET /v3/orders?lastModifiedStartDate=|createdStartDate=&limit=&nextCursor=``;
- ``GET /v3/webhooks/eventTypes``; ``GET|POST /v3/webhooks/subscriptions`` and
  ``PUT|DELETE /v3/webhooks/subscriptions/<id>`` (§3.1): an ACTIVE subscription with an
  ``eventUrl`` and HMAC or BASIC_AUTH ``authDetails`` sets where and how the seller's
  webhooks are delivered (its settings ``webhook_url``, ``webhook_auth_*``,
  ``webhook_secret``); secrets are never answered back;
- every answer carries ``X-Current-Token-Count`` and ``X-Next-Replenishment-Time``; an
  empty bucket answers 429 with ``Retry-After``.

Besides the harness's control routes (``harness.server``), ``/_sim/sellers/<seller>/``
has: ``POST items`` ``{"items": [{sku, quantity, reserved} or {sku, nodes: {node: n}}]}``;
``GET items``; ``POST items/<sku>/set`` ``{"quantity": n, "notify": bool, "ship_node"}``
(an edit in Seller Center; ``INVENTORY_OOS`` sent when it reaches 0 and ``notify``);
``POST orders`` ``{"lines": [{sku, quantity, ship_node}], "duplicates": n, "deliver": bool}``
(``PO_CREATED``);
``POST orders/<po>/cancel`` ``{"lines": [lineNumber...]}`` (``PO_LINE_AUTOCANCELLED``,
every line by default); ``POST orders/<po>/ship``; ``GET feeds``; ``POST feeds/process``
(process every waiting feed now); ``GET changes?since=<seq>``.

Fault endpoints: ``token``; ``inventory:put``, ``inventories:put`` and ``feeds:post`` (also
``write``);
``inventory:get``, ``inventories:get``, ``feeds:get`` and ``orders:get`` (also ``read``).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import email.parser
import email.policy
import hmac
import itertools
import json
import math
import re
import time
import urllib.parse
import uuid
from typing import Any

from channels.simulators.harness import (
    JSON,
    ControlError,
    Request,
    Response,
    RetryPolicy,
    Route,
    Simulator,
    route,
    since,
)
from channels.simulators.walmart import webhooks
from channels.simulators.walmart.state import (
    DEFAULT_NODE,
    Feed,
    FeedLine,
    Item,
    NodeStock,
    Order,
    OrderLine,
    Seller,
    SellerSettings,
)

_API_PATH = re.compile(r"^/sellers/(?P<seller>[\w.-]+)(?P<path>/v3/.*)$")
_SELLER = r"/_sim/sellers/(?P<tenant>[\w.-]+)"
# §3.3 (WM7): 10 items with no parameters, up to 50 a page.
DEFAULT_PAGE = 10
MAX_PAGE = 50
MAX_ORDERS_PAGE = 200
MAX_FEED_DETAILS = 1000
# §3.2 (WM6): spec 1.4 for one node, 1.5 (``MP_INVENTORY`` [M]) for several.
FEED_SPECS = {"inventory": "1.4", "MP_INVENTORY": "1.5"}
_SUBSCRIPTIONS_ROUTES = frozenset(
    {("/v3/webhooks/subscriptions", "GET"), ("/v3/webhooks/subscriptions", "POST")}
)


def error_body(code: str, message: str, *, category: str = "DATA", field: str = "") -> JSON:
    """§3.4 (WM9): ``{"errors": [{code, message, category, severity, field}]}``."""
    error: JSON = {"code": code, "message": message, "category": category, "severity": "ERROR"}
    if field:
        error["field"] = field
    return {"errors": [error]}


class WalmartSimulator(Simulator[Seller]):
    display_name = "Walmart"
    tenant_collection = "sellers"
    tenant_kind = "seller"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Seller-independent so ids never collide across sellers or resets.
        self._order_ids = itertools.count(1_796_277_083_001)
        self._feed_numbers = itertools.count(1)

    # -- Tenants -----------------------------------------------------------------------------

    def create_tenant(self, body: JSON) -> JSON:
        settings = SellerSettings.from_json(body)
        self.tenants.put(Seller(settings, self.clock.time()))
        return {"seller": settings.public()}

    def tenant_state(self, seller: Seller) -> JSON:
        return {
            "seller": seller.settings.public(),
            "items": len(seller.items),
            "orders": len(seller.orders),
            "feeds": len(seller.feeds),
            "tokens": len(seller.tokens),
        }

    def update_settings(self, seller: Seller, body: JSON) -> JSON:
        with seller.lock:
            seller.settings.update(body)
            seller.read_lag.lag_s = seller.settings.read_lag_s
            return {"seller": seller.settings.public()}

    def retry_policy(self, seller: Seller) -> RetryPolicy:
        return webhooks.retry_policy(seller)

    def seed(self, seed: JSON) -> int:
        """``{"sellers": [{...seller settings, "items": [...]}]}``, as ``prepare_local``
        writes."""
        sellers = seed.get("sellers", [])
        for raw in sellers:
            body = dict(raw)
            items = body.pop("items", [])
            self.create_tenant(body)
            self.add_items(body["seller"], {"items": items})
        return len(sellers)

    # -- Fault answers -----------------------------------------------------------------------

    def error_response(self, status: int, with_body: bool) -> Response:
        # §3.4 (WM9): a gateway that is down answers 503 with no body at all.
        if not with_body:
            return Response(status, b"")
        return Response(
            status,
            error_body(
                "SYSTEM_ERROR.GMP_GATEWAY_API", "Internal error, try again.", category="SYSTEM"
            ),
        )

    def throttled_response(self, seller: Seller) -> Response:
        return self._throttled(seller, retry_after_s=1.0)

    def _throttled(self, seller: Seller, *, retry_after_s: float) -> Response:
        """§3.4: 429, ``REQUEST_THRESHOLD_VIOLATED`` [M], Retry-After and the usage headers."""
        replenish_ms = int((self.clock.time() + retry_after_s) * 1000)
        return Response(
            429,
            error_body(
                "REQUEST_THRESHOLD_VIOLATED.GMP_GATEWAY_API",
                "Too many requests.",
                category="REQUEST",
            ),
            headers={
                "Retry-After": str(max(1, math.ceil(retry_after_s))),
                "X-Current-Token-Count": "0",
                "X-Next-Replenishment-Time": str(replenish_ms),
            },
        )

    def expired_token_response(self, seller: Seller) -> Response:
        return Response(
            401,
            error_body(
                "UNAUTHORIZED.GMP_GATEWAY_API",
                "Unauthorized token or the token has expired.",
                category="REQUEST",
            ),
        )

    # -- API ---------------------------------------------------------------------------------

    def handle_api(self, request: Request) -> Response:
        match = _API_PATH.match(request.path)
        seller = self.tenants.get(match["seller"]) if match else None
        if match is None or seller is None:
            return Response(404, error_body("CONTENT_NOT_FOUND.GMP_GATEWAY_API", "Not Found"))
        path = match["path"].rstrip("/")
        entry = self.log_request(seller, request, api_path=path)
        response = self._dispatch(seller, request, path, entry)
        entry["status"] = response.status if not response.reset else None
        return response

    def _dispatch(self, seller: Seller, request: Request, path: str, entry: JSON) -> Response:
        method = request.method
        if path == "/v3/token" and method == "POST":
            return self._token(seller, request, entry)
        if path == "/v3/inventory" and method in ("GET", "PUT"):
            endpoint = f"inventory:{method.lower()}"
        elif path.startswith("/v3/inventories") and method == "GET":
            endpoint = "inventories:get"
        elif path.startswith("/v3/inventories/") and method == "PUT":
            endpoint = "inventories:put"
        elif path == "/v3/feeds" and method == "POST":
            endpoint = "feeds:post"
        elif path.startswith("/v3/feeds/") and method == "GET":
            endpoint = "feeds:get"
        elif path == "/v3/orders" and method == "GET":
            endpoint = "orders:get"
        elif path == "/v3/webhooks/eventTypes" and method == "GET":
            endpoint = "webhooks:get"
        elif (path, method) in _SUBSCRIPTIONS_ROUTES or (
            path.startswith("/v3/webhooks/subscriptions/") and method in ("PUT", "DELETE")
        ):
            endpoint = f"webhooks:{method.lower()}"
        else:
            return Response(
                404, error_body("CONTENT_NOT_FOUND.GMP_GATEWAY_API", f"No route {method} {path}.")
            )
        entry["endpoint"] = endpoint
        refusal = self._refuse_headers(seller, request)
        if refusal is not None:
            return refusal
        group = "write" if method in ("PUT", "POST", "DELETE") else "read"
        with seller.lock:
            fault = seller.faults.draw([endpoint, group])
            dropped = group == "write" and seller.faults.take_drop([endpoint, group])
            allowed = seller.take_token(self.clock.time())
            wait_s = seller.seconds_to_next_token()
        entry["fault"] = fault.name
        if not allowed:
            return self._throttled(seller, retry_after_s=wait_s)
        answer = self.fault_response(seller, fault)
        if answer is not None:
            return answer
        if fault.latency_s:
            time.sleep(fault.latency_s)
        if endpoint == "inventory:put":
            response = self._put_inventory(seller, request, apply=not dropped)
        elif endpoint == "inventory:get":
            response = self._get_inventory(seller, request)
        elif endpoint == "inventories:get":
            response = self._get_inventories(seller, request, path)
        elif endpoint == "inventories:put":
            response = self._put_inventories(seller, request, path, apply=not dropped)
        elif endpoint == "feeds:post":
            response = self._post_feed(seller, request, apply=not dropped)
        elif endpoint == "feeds:get":
            response = self._get_feed(seller, request, path)
        elif endpoint.startswith("webhooks:"):
            response = self._webhooks(seller, request, path)
        else:
            response = self._get_orders(seller, request)
        if fault.timeout_s:
            # The write went through; the answer comes after the client gave up.
            response.delay_s = fault.timeout_s
        with seller.lock:
            response.headers.setdefault("X-Current-Token-Count", str(int(seller.bucket)))
            response.headers.setdefault(
                "X-Next-Replenishment-Time",
                str(int((self.clock.time() + seller.seconds_to_next_token()) * 1000)),
            )
        return response

    def _refuse_headers(self, seller: Seller, request: Request) -> Response | None:
        """§3.5: the token (or Basic client credentials), correlation id and service name."""
        for name in ("WM_QOS.CORRELATION_ID", "WM_SVC.NAME"):
            if not request.header(name):
                return Response(
                    400,
                    error_body(
                        "INVALID_REQUEST_HEADER.GMP_GATEWAY_API",
                        f"Missing required header {name}.",
                        category="REQUEST",
                        field=name,
                    ),
                )
        token = request.header("WM_SEC.ACCESS_TOKEN")
        now = self.clock.time()
        with seller.lock:
            expires_at = seller.tokens.get(token) if token else None
            if expires_at is not None and expires_at <= now:
                seller.tokens.pop(token, None)
        if expires_at is not None and expires_at > now:
            return None
        if not token and self._basic_credentials_match(seller, request):
            return None
        return self.expired_token_response(seller)

    def _basic_credentials_match(self, seller: Seller, request: Request) -> bool:
        header = request.header("Authorization")
        if not header.startswith("Basic "):
            return False
        try:
            decoded = base64.b64decode(header.removeprefix("Basic ").strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        expected = f"{seller.settings.client_id}:{seller.settings.client_secret}".encode()
        return hmac.compare_digest(decoded, expected)

    def _token(self, seller: Seller, request: Request, entry: JSON) -> Response:
        """§3.5: client credentials in, a 15-minute token out."""
        entry["endpoint"] = "token"
        with seller.lock:
            fault = seller.faults.draw(["token"])
        entry["fault"] = fault.name
        if fault.reset or fault.fail_status is not None or fault.throttle:
            answer = self.fault_response(seller, fault)
            if answer is not None:
                return answer
        if not request.header("WM_QOS.CORRELATION_ID"):
            return Response(
                400,
                error_body(
                    "INVALID_REQUEST_HEADER.GMP_GATEWAY_API",
                    "Missing required header WM_QOS.CORRELATION_ID.",
                    category="REQUEST",
                    field="WM_QOS.CORRELATION_ID",
                ),
            )
        if not self._basic_credentials_match(seller, request):
            return Response(
                401,
                error_body(
                    "UNAUTHORIZED.GMP_GATEWAY_API",
                    "Invalid client credentials.",
                    category="REQUEST",
                ),
            )
        form = urllib.parse.parse_qs(request.body.decode("utf-8", errors="replace"))
        if form.get("grant_type") != ["client_credentials"]:
            return Response(
                400,
                error_body(
                    "INVALID_REQUEST_PARAM.GMP_GATEWAY_API",
                    "grant_type must be client_credentials.",
                    field="grant_type",
                ),
            )
        token = f"eyJ{uuid.uuid4().hex}{uuid.uuid4().hex}"
        ttl_s = seller.settings.token_ttl_s
        with seller.lock:
            now = self.clock.time()
            seller.tokens = {t: at for t, at in seller.tokens.items() if at > now}
            seller.tokens[token] = now + ttl_s
        return Response(
            200, {"access_token": token, "token_type": "Bearer", "expires_in": int(ttl_s)}
        )

    # -- Inventory ---------------------------------------------------------------------------

    def _put_inventory(self, seller: Seller, request: Request, *, apply: bool) -> Response:
        """§3.2: an absolute figure for one SKU at one node (``shipNode``, else the item's
        first); no compare, no idempotency key."""
        sku = (request.query.get("sku") or [""])[0]
        ship_node = (request.query.get("shipNode") or [""])[0] or None
        try:
            payload = json.loads(request.body)
            amount = payload["quantity"]["amount"]
            if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
                raise ValueError
        except (ValueError, KeyError, TypeError):
            return Response(
                400,
                error_body(
                    "INVALID_REQUEST_PARAM.GMP_INVENTORY_API",
                    "The value provided for 'quantity.amount' is invalid.",
                    field="quantity.amount",
                ),
            )
        with seller.lock:
            item = seller.items.get(sku)
            if item is None:
                return _sku_not_found(sku)
            if ship_node is not None and not _known_node(seller, ship_node):
                return _node_not_found(ship_node)
            if apply:
                self._apply(seller, item, amount, "api", None, ship_node=ship_node)
        return Response(200, {"sku": sku, "quantity": {"unit": "EACH", "amount": amount}})

    def _put_inventories(
        self, seller: Seller, request: Request, path: str, *, apply: bool
    ) -> Response:
        """§3.2 (WM5/WM7): one SKU's figure at several nodes, a status per node [the
        answer's shape is M]: a node not among the seller's fails alone."""
        sku = urllib.parse.unquote(path.removeprefix("/v3/inventories/"))
        try:
            nodes = json.loads(request.body)["inventories"]["nodes"]
            wanted: list[tuple[str, int]] = []
            for node in nodes:
                amount = node["inputQty"]["amount"]
                if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
                    raise ValueError
                wanted.append((str(node["shipNode"]), amount))
            if not wanted:
                raise ValueError
        except (ValueError, KeyError, TypeError):
            return Response(
                400,
                error_body(
                    "INVALID_REQUEST_PARAM.GMP_INVENTORY_API",
                    "'inventories.nodes' needs each node's shipNode and inputQty.amount.",
                    field="inventories.nodes",
                ),
            )
        statuses: list[JSON] = []
        with seller.lock:
            item = seller.items.get(sku)
            if item is None:
                return _sku_not_found(sku)
            for ship_node, amount in wanted:
                if not _known_node(seller, ship_node):
                    statuses.append(
                        {
                            "shipNode": ship_node,
                            "status": "ERROR",
                            "errors": error_body(
                                "INVALID_REQUEST_PARAM.GMP_INVENTORY_API",
                                f"Ship node {ship_node!r} is not one of the seller's.",
                                field="shipNode",
                            )["errors"],
                        }
                    )
                    continue
                if apply:
                    self._apply(seller, item, amount, "api", None, ship_node=ship_node)
                statuses.append({"shipNode": ship_node, "status": "SUCCESS"})
        return Response(200, {"sku": sku, "inventories": {"nodes": statuses}})

    def _apply(
        self,
        seller: Seller,
        item: Item,
        available: int,
        source: str,
        reference: str | None,
        *,
        ship_node: str | None = None,
    ) -> None:
        """Set what can be bought at a node (lock held; the item's first node unless one
        is named); the reserved units stay on top of it."""
        now = self.clock.time()
        name = item.node_name(ship_node)
        node = item.node(name)
        seller.read_lag.before_write((item.sku, name), node.snapshot(), now)
        delta = available - node.available
        node.available = available
        if source in ("api", "feed"):
            item.api_writes += 1
        seller.changes.append(
            {
                "time": now,
                "sku": item.sku,
                "shipNode": name,
                "delta": delta,
                "available": node.available,
                "reserved": node.reserved,
                "source": source,
                "reference": reference,
            }
        )

    def _visible(self, seller: Seller, item: Item, ship_node: str) -> dict[str, int]:
        """What a read shows of a node (lock held): its figures ``read_lag_s`` ago."""
        shown: dict[str, int] = seller.read_lag.visible(
            (item.sku, ship_node), item.node(ship_node).snapshot(), self.clock.time()
        )
        return shown

    def _get_inventory(self, seller: Seller, request: Request) -> Response:
        """§3.3: one node's figure (``shipNode``, else the default: what can be bought
        [M])."""
        sku = (request.query.get("sku") or [""])[0]
        ship_node = (request.query.get("shipNode") or [""])[0]
        with seller.lock:
            item = seller.items.get(sku)
            if item is None:
                return _sku_not_found(sku)
            if ship_node and ship_node not in item.nodes:
                return _node_not_found(ship_node)
            shown = self._visible(seller, item, item.node_name(ship_node or None))
        return Response(
            200, {"sku": sku, "quantity": {"unit": "EACH", "amount": shown["availToSellQty"]}}
        )

    def _node_json(self, seller: Seller, item: Item, ship_node: str = "") -> JSON:
        return {
            "sku": item.sku,
            "nodes": [
                {
                    "shipNode": name,
                    **{
                        field: {"unit": "EACH", "amount": value}
                        for field, value in self._visible(seller, item, name).items()
                    },
                }
                for name in list(item.nodes)
                if not ship_node or name == ship_node
            ],
        }

    def _get_inventories(self, seller: Seller, request: Request, path: str) -> Response:
        """§3.3 (WM7): one SKU's nodes (or the one ``shipNode``), or every SKU a page at a
        time (``nextCursor``)."""
        if path != "/v3/inventories":
            sku = urllib.parse.unquote(path.removeprefix("/v3/inventories/"))
            ship_node = (request.query.get("shipNode") or [""])[0]
            with seller.lock:
                item = seller.items.get(sku)
                if item is None:
                    return _sku_not_found(sku)
                if ship_node and ship_node not in item.nodes:
                    return _node_not_found(ship_node)
                return Response(200, self._node_json(seller, item, ship_node))
        try:
            limit = min(int((request.query.get("limit") or [str(DEFAULT_PAGE)])[0]), MAX_PAGE)
            cursor = (request.query.get("nextCursor") or [""])[0]
            offset = int(base64.urlsafe_b64decode(cursor.encode()).decode()) if cursor else 0
            if limit <= 0 or offset < 0:
                raise ValueError
        except (ValueError, binascii.Error):
            return Response(
                400,
                error_body(
                    "INVALID_REQUEST_PARAM.GMP_INVENTORY_API",
                    "The value provided for 'limit' or 'nextCursor' is invalid.",
                ),
            )
        with seller.lock:
            skus = sorted(seller.items)
            page = [self._node_json(seller, seller.items[sku]) for sku in skus[offset:][:limit]]
        meta: JSON = {"totalCount": len(skus)}
        if offset + limit < len(skus):
            meta["nextCursor"] = base64.urlsafe_b64encode(str(offset + limit).encode()).decode()
        return Response(200, {"meta": meta, "elements": {"inventories": page}})

    # -- Feeds -------------------------------------------------------------------------------

    def _post_feed(self, seller: Seller, request: Request, *, apply: bool) -> Response:
        """§3.2: accepted at once (``feedId``), processed later; 413 over the size limit."""
        feed_type = (request.query.get("feedType") or [""])[0]
        if feed_type not in FEED_SPECS:
            return Response(
                400,
                error_body(
                    "INVALID_REQUEST_PARAM.GMP_FEED_API",
                    f"Unsupported feedType {feed_type!r}.",
                    field="feedType",
                ),
            )
        content = _feed_file(request)
        if len(content) > seller.settings.max_feed_bytes:
            return Response(
                413,
                error_body(
                    "REQUEST_ENTITY_TOO_LARGE.GMP_FEED_API",
                    f"The feed file is over {seller.settings.max_feed_bytes} bytes.",
                    category="REQUEST",
                ),
            )
        spec = FEED_SPECS[feed_type]
        try:
            document = json.loads(content)
            entries = document["Inventory"]
            version = str((document.get("InventoryHeader") or {}).get("version") or "1.4")
            if not isinstance(entries, list) or version != spec:
                raise ValueError
        except (ValueError, KeyError, TypeError, AttributeError):
            return Response(
                400,
                error_body(
                    "INVALID_REQUEST_CONTENT.GMP_FEED_API",
                    f"The feed file is not a spec {spec} inventory document.",
                ),
            )
        now = self.clock.time()
        with seller.lock:
            wait_s = seller.take_feed_slot(now)
            if wait_s > 0:
                return self._throttled(seller, retry_after_s=wait_s)
            feed_id = f"{uuid.uuid4().hex[:8].upper()}{next(self._feed_numbers):06d}@AQMB"
            lines = [
                _multi_node_line(index, entry) if spec == "1.5" else _feed_line(index, entry)
                for index, entry in enumerate(entries)
            ]
            feed = Feed(feed_id=feed_id, feed_type=feed_type, submitted_at=now, lines=lines)
            seller.feeds[feed_id] = feed
            if not apply:
                # Accepted but never applied: every line ends in a system error.
                feed.outcome = "PROCESSED"
                for line in lines:
                    line.status = "SYSTEM_ERROR"
                    line.errors = [_ingestion_error("SYSTEM_ERROR", "Internal error.")]
            elif seller.settings.feed_processing_s <= 0:
                self._process(seller, feed)
        if apply and seller.settings.feed_processing_s > 0:
            self.scheduler.call_at(
                now + seller.settings.feed_processing_s,
                lambda: self._process_locked(seller, feed_id),
            )
        return Response(200, {"feedId": feed_id})

    def _process_locked(self, seller: Seller, feed_id: str) -> None:
        if not seller.alive:
            return
        with seller.lock:
            feed = seller.feeds.get(feed_id)
            if feed is not None and not feed.outcome:
                self._process(seller, feed)

    def _process(self, seller: Seller, feed: Feed) -> None:
        """Apply a feed's lines (lock held); a PROCESSED feed may still hold failed lines."""
        settings = seller.settings
        if settings.feed_error_next > 0:
            settings.feed_error_next -= 1
            feed.outcome = "ERROR"
            for line in feed.lines:
                line.status = "SYSTEM_ERROR"
                line.errors = [_ingestion_error("SYSTEM_ERROR", "The feed could not be read.")]
            return
        for line in feed.lines:
            item = seller.items.get(line.sku)
            unknown_nodes = [
                node for node in line.node_amounts or {} if not _known_node(seller, node)
            ]
            if line.amount < 0:
                line.status = "DATA_ERROR"
                line.errors = [
                    _ingestion_error(
                        "DATA_ERROR",
                        "shipNodes[].shipNode and quantity.amount are required."
                        if line.node_amounts is not None
                        else "quantity.amount is invalid.",
                    )
                ]
            elif unknown_nodes:
                line.status = "DATA_ERROR"
                line.errors = [
                    _ingestion_error("DATA_ERROR", f"Unknown ship node(s) {unknown_nodes}.")
                ]
            elif item is None:
                line.status = "DATA_ERROR"
                line.errors = [_ingestion_error("DATA_ERROR", f"SKU {line.sku!r} was not found.")]
            elif line.sku in settings.feed_data_error_skus:
                line.status = "DATA_ERROR"
                line.errors = [
                    _ingestion_error(
                        "DATA_ERROR", f"Item {line.sku!r} is retired and cannot take inventory."
                    )
                ]
            elif settings.feed_system_error_next > 0:
                settings.feed_system_error_next -= 1
                line.status = "SYSTEM_ERROR"
                line.errors = [_ingestion_error("SYSTEM_ERROR", "Internal error.")]
            elif settings.feed_timeout_error_next > 0:
                settings.feed_timeout_error_next -= 1
                line.status = "TIMEOUT_ERROR"
                line.errors = [_ingestion_error("TIMEOUT_ERROR", "Timed out, resubmit.")]
            elif line.node_amounts is not None:
                for ship_node, amount in line.node_amounts.items():
                    self._apply(seller, item, amount, "feed", feed.feed_id, ship_node=ship_node)
                line.status = "SUCCESS"
            else:
                self._apply(seller, item, line.amount, "feed", feed.feed_id)
                line.status = "SUCCESS"
        feed.outcome = "PROCESSED"

    def _feed_json(
        self, seller: Seller, feed: Feed, *, details: bool, offset: int, limit: int
    ) -> JSON:
        status = feed.status(self.clock.time(), seller.settings.feed_pickup_s)
        counts = {"SUCCESS": 0, "INPROGRESS": 0, "FAILED": 0}
        for line in feed.lines:
            counts[line.status if line.status in counts else "FAILED"] += 1
        answer: JSON = {
            "feedId": feed.feed_id,
            "feedStatus": status,
            "feedType": feed.feed_type,
            "itemsReceived": len(feed.lines),
            "itemsSucceeded": counts["SUCCESS"],
            "itemsFailed": counts["FAILED"],
            "itemsProcessing": counts["INPROGRESS"],
            "offset": offset,
            "limit": limit,
        }
        if details:
            answer["itemDetails"] = {
                "itemIngestionStatus": [
                    {
                        "martId": 0,
                        "sku": line.sku,
                        "index": line.index,
                        "ingestionStatus": line.status,
                        "ingestionErrors": {"ingestionError": line.errors or None},
                    }
                    for line in feed.lines[offset : offset + limit]
                ]
            }
        return answer

    def _get_feed(self, seller: Seller, request: Request, path: str) -> Response:
        feed_id = urllib.parse.unquote(path.removeprefix("/v3/feeds/"))
        try:
            offset = int((request.query.get("offset") or ["0"])[0])
            limit = min(int((request.query.get("limit") or ["50"])[0]), MAX_FEED_DETAILS)
            if offset < 0 or limit <= 0:
                raise ValueError
        except ValueError:
            return Response(
                400,
                error_body("INVALID_REQUEST_PARAM.GMP_FEED_API", "offset or limit is invalid."),
            )
        details = (request.query.get("includeDetails") or ["false"])[0] == "true"
        with seller.lock:
            feed = seller.feeds.get(feed_id)
            if feed is None:
                return Response(
                    404,
                    error_body(
                        "CONTENT_NOT_FOUND.GMP_FEED_API", f"Feed {feed_id!r} was not found."
                    ),
                )
            return Response(
                200, self._feed_json(seller, feed, details=details, offset=offset, limit=limit)
            )

    # -- Webhook subscriptions ---------------------------------------------------------------

    def _webhooks(self, seller: Seller, request: Request, path: str) -> Response:
        """§3.1 (WM1): the event types, and subscriptions listed, created, replaced and
        deleted [the answers' shapes are M]."""
        if path == "/v3/webhooks/eventTypes":
            return Response(200, {"events": [dict(event) for event in EVENT_TYPES]})
        if path == "/v3/webhooks/subscriptions" and request.method == "GET":
            with seller.lock:
                return Response(
                    200,
                    {"events": [_public_subscription(s) for s in seller.subscriptions.values()]},
                )
        subscription_id = urllib.parse.unquote(
            path.removeprefix("/v3/webhooks/subscriptions").strip("/")
        )
        if request.method == "DELETE":
            with seller.lock:
                if seller.subscriptions.pop(subscription_id, None) is None:
                    return _subscription_not_found(subscription_id)
            return Response(200, {"message": "Subscription deleted successfully."})
        try:
            body = json.loads(request.body)
            if not isinstance(body, dict):
                raise ValueError
        except ValueError:
            return Response(
                400,
                error_body(
                    "INVALID_REQUEST_CONTENT.GMP_WEBHOOK_API", "The body is not a JSON object."
                ),
            )
        with seller.lock:
            if request.method == "PUT":
                current = seller.subscriptions.get(subscription_id)
                if current is None:
                    return _subscription_not_found(subscription_id)
                body = {**current, **body}
            else:
                subscription_id = str(uuid.uuid4())
            subscription, settings, problem = _subscription(seller, subscription_id, body)
            if problem is not None:
                return problem
            seller.subscriptions[subscription_id] = subscription
            if subscription["status"] == "ACTIVE":
                seller.settings.update(settings)
        return Response(200, _public_subscription(subscription))

    # -- Orders ------------------------------------------------------------------------------

    def _get_orders(self, seller: Seller, request: Request) -> Response:
        """Orders changed (or created) since a moment, oldest first, a page at a time [M:
        the cursor is an opaque query string, as Walmart's ``nextCursor`` is]."""
        cursor = (request.query.get("nextCursor") or [""])[0]
        query = urllib.parse.parse_qs(cursor.lstrip("?")) if cursor else request.query
        try:
            since_text = (
                query.get("lastModifiedStartDate") or query.get("createdStartDate") or [""]
            )[0]
            since_ms = _epoch_ms(since_text) if since_text else 0
            limit = min(int((query.get("limit") or ["100"])[0]), MAX_ORDERS_PAGE)
            offset = int((query.get("offset") or ["0"])[0])
        except ValueError:
            return Response(
                400,
                error_body(
                    "INVALID_REQUEST_PARAM.GMP_ORDER_API",
                    "lastModifiedStartDate, limit or the cursor is invalid.",
                ),
            )
        modified = "lastModifiedStartDate" in query
        with seller.lock:
            orders = [
                order
                for order in seller.orders.values()
                if (order.last_modified_ms if modified else order.order_date_ms) >= since_ms
            ]
            orders.sort(key=lambda order: (order.last_modified_ms, order.purchase_order_id))
            page = [_order_json(order) for order in orders[offset : offset + limit]]
        meta: JSON = {"totalCount": len(orders), "limit": limit}
        if offset + limit < len(orders):
            next_query: dict[str, object] = {"limit": limit, "offset": offset + limit}
            next_query["lastModifiedStartDate" if modified else "createdStartDate"] = since_text
            meta["nextCursor"] = "?" + urllib.parse.urlencode(next_query)
        return Response(200, {"list": {"meta": meta, "elements": {"order": page}}})

    # -- Control API -------------------------------------------------------------------------

    def control_routes(self) -> list[Route]:
        return [
            route("POST", f"{_SELLER}/items", lambda m, b, q: self.add_items(m["tenant"], b)),
            route("GET", f"{_SELLER}/items", lambda m, b, q: self.list_items(m["tenant"])),
            route(
                "POST",
                rf"{_SELLER}/items/(?P<sku>[^/]+)/set",
                lambda m, b, q: self.set_item(m["tenant"], urllib.parse.unquote(m["sku"]), b),
            ),
            route("POST", f"{_SELLER}/orders", lambda m, b, q: self.place_order(m["tenant"], b)),
            route(
                "POST",
                rf"{_SELLER}/orders/(?P<po>\w+)/cancel",
                lambda m, b, q: self.cancel_order(m["tenant"], m["po"], b),
            ),
            route(
                "POST",
                rf"{_SELLER}/orders/(?P<po>\w+)/ship",
                lambda m, b, q: self.ship_order(m["tenant"], m["po"]),
            ),
            route("GET", f"{_SELLER}/feeds", lambda m, b, q: self.list_feeds(m["tenant"])),
            route(
                "POST", f"{_SELLER}/feeds/process", lambda m, b, q: self.process_feeds(m["tenant"])
            ),
            route(
                "GET", f"{_SELLER}/changes", lambda m, b, q: self.changes(m["tenant"], since(q))
            ),
        ]

    def add_items(self, seller_name: str, body: JSON) -> JSON:
        raw_items = body.get("items")
        if not isinstance(raw_items, list):
            raise ControlError(400, "'items' must be a list.")
        seller = self.tenants.require(seller_name)
        with seller.lock:
            added = []
            for raw in raw_items:
                try:
                    item = Item(sku=str(raw["sku"]))
                    nodes = raw.get("nodes")
                    if nodes:
                        item.nodes = {str(n): NodeStock(int(q)) for n, q in nodes.items()}
                    else:
                        item.nodes = {
                            DEFAULT_NODE: NodeStock(
                                int(raw.get("quantity", 0)), int(raw.get("reserved", 0))
                            )
                        }
                except (KeyError, TypeError, ValueError, AttributeError) as error:
                    raise ControlError(400, f"Bad item {raw!r}: {error!r}") from None
                if not item.sku:
                    raise ControlError(400, "An item needs a 'sku'.")
                seller.items[item.sku] = item
                added.append(item.as_json())
        return {"items": added}

    def list_items(self, seller_name: str) -> JSON:
        seller = self.tenants.require(seller_name)
        with seller.lock:
            return {"items": [item.as_json() for item in seller.items.values()]}

    def set_item(self, seller_name: str, sku: str, body: JSON) -> JSON:
        quantity = body.get("quantity")
        if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity < 0:
            raise ControlError(400, "'quantity' must be a whole number >= 0.")
        seller = self.tenants.require(seller_name)
        delivery = None
        with seller.lock:
            item = seller.items.get(sku)
            if item is None:
                raise ControlError(404, f"No item {sku!r}.")
            ship_node = item.node_name(str(body.get("ship_node") or "") or None)
            self._apply(seller, item, quantity, "manual", None, ship_node=ship_node)
            if body.get("notify", False) and quantity == 0:
                delivery = webhooks.new_delivery(
                    seller,
                    "INVENTORY_OOS",
                    {"sku": sku, "shipNode": ship_node, "availToSellQty": 0},
                    self.clock.time(),
                    self.clock.iso(),
                )
            answer: JSON = {"item": item.as_json(), "webhook_id": None, "delivery_status": None}
        if delivery is not None:
            answer |= self.deliver(seller, delivery)
        return answer

    def place_order(self, seller_name: str, body: JSON) -> JSON:
        raw_lines = body.get("lines")
        if not isinstance(raw_lines, list) or not raw_lines:
            raise ControlError(400, "'lines' must be a non-empty list.")
        seller = self.tenants.require(seller_name)
        with seller.lock:
            wanted: list[tuple[Item, int, str]] = []
            for raw in raw_lines:
                try:
                    sku, quantity = str(raw["sku"]), int(raw["quantity"])
                    ship_node = str(raw.get("ship_node") or "")
                except (KeyError, TypeError, ValueError, AttributeError):
                    raise ControlError(400, f"Bad line {raw!r}.") from None
                item = seller.items.get(sku)
                if item is None:
                    raise ControlError(400, f"No item {sku!r} for seller {seller_name!r}.")
                if quantity <= 0:
                    raise ControlError(400, "Line quantities are positive.")
                if ship_node and ship_node not in item.nodes:
                    raise ControlError(400, f"Item {sku!r} has no node {ship_node!r}.")
                wanted.append((item, quantity, item.node_name(ship_node or None)))
            now_ms = int(self.clock.time() * 1000)
            purchase_order_id = str(next(self._order_ids))
            order = Order(
                purchase_order_id=purchase_order_id,
                customer_order_id=f"52{purchase_order_id[-11:]}",
                order_date_ms=now_ms,
                last_modified_ms=now_ms,
                lines=[],
            )
            for number, (item, quantity, node_name) in enumerate(wanted, start=1):
                # Sold: units move from what can be bought to reserved (§3.3).
                node = item.node(node_name)
                self._apply(
                    seller,
                    item,
                    node.available - quantity,
                    "order",
                    purchase_order_id,
                    ship_node=node_name,
                )
                node.reserved += quantity
                order.lines.append(OrderLine(str(number), item.sku, quantity, ship_node=node_name))
            seller.orders[purchase_order_id] = order
            event, payload = webhooks.order_event(
                seller, "PO_CREATED", webhooks.order_payload(seller, order, order.lines)
            )
            delivery = webhooks.new_delivery(
                seller, event, payload, self.clock.time(), self.clock.iso()
            )
        answer: JSON = {
            "purchase_order_id": purchase_order_id,
            "line_numbers": [line.line_number for line in order.lines],
        }
        return answer | self.deliver(seller, delivery, body)

    def cancel_order(self, seller_name: str, purchase_order_id: str, body: JSON) -> JSON:
        """Auto-cancel lines (§3.1: not shipped in time): their units can be bought again."""
        seller = self.tenants.require(seller_name)
        with seller.lock:
            order = seller.orders.get(purchase_order_id)
            if order is None:
                raise ControlError(404, f"No order {purchase_order_id}.")
            wanted = body.get("lines")
            numbers = {str(n) for n in wanted} if isinstance(wanted, list) else None
            lines = [
                line
                for line in order.lines
                if line.status == "Created" and (numbers is None or line.line_number in numbers)
            ]
            if not lines:
                raise ControlError(409, "No open line to cancel.")
            for line in lines:
                line.status = "Cancelled"
                item = seller.items.get(line.sku)
                if item is not None:
                    node = item.node(line.ship_node)
                    node.reserved = max(0, node.reserved - line.quantity)
                    self._apply(
                        seller,
                        item,
                        node.available + line.quantity,
                        "cancel",
                        purchase_order_id,
                        ship_node=line.ship_node,
                    )
            order.last_modified_ms = int(self.clock.time() * 1000)
            event, payload = webhooks.order_event(
                seller,
                str(body.get("sub_event_type") or "PO_LINE_AUTOCANCELLED"),
                webhooks.order_payload(seller, order, lines),
            )
            delivery = webhooks.new_delivery(
                seller, event, payload, self.clock.time(), self.clock.iso()
            )
        answer: JSON = {
            "purchase_order_id": purchase_order_id,
            "line_numbers": [line.line_number for line in lines],
        }
        return answer | self.deliver(seller, delivery, body)

    def ship_order(self, seller_name: str, purchase_order_id: str) -> JSON:
        """Ship the open lines: reserved units leave (inputQty drops with them)."""
        seller = self.tenants.require(seller_name)
        with seller.lock:
            order = seller.orders.get(purchase_order_id)
            if order is None:
                raise ControlError(404, f"No order {purchase_order_id}.")
            shipped = []
            for line in order.lines:
                if line.status != "Created":
                    continue
                line.status = "Shipped"
                item = seller.items.get(line.sku)
                if item is not None:
                    node = item.node(line.ship_node)
                    seller.read_lag.before_write(
                        (item.sku, line.ship_node), node.snapshot(), self.clock.time()
                    )
                    node.reserved = max(0, node.reserved - line.quantity)
                shipped.append(line.line_number)
            order.last_modified_ms = int(self.clock.time() * 1000)
        return {"purchase_order_id": purchase_order_id, "line_numbers": shipped}

    def list_feeds(self, seller_name: str) -> JSON:
        seller = self.tenants.require(seller_name)
        with seller.lock:
            return {
                "feeds": [
                    self._feed_json(seller, feed, details=True, offset=0, limit=len(feed.lines))
                    for feed in seller.feeds.values()
                ]
            }

    def process_feeds(self, seller_name: str) -> JSON:
        seller = self.tenants.require(seller_name)
        with seller.lock:
            waiting = [feed for feed in seller.feeds.values() if not feed.outcome]
            for feed in waiting:
                self._process(seller, feed)
        return {"processed": [feed.feed_id for feed in waiting]}

    def changes(self, seller_name: str, seq: int) -> JSON:
        seller = self.tenants.require(seller_name)
        with seller.lock:
            return {"changes": seller.changes.since(seq)}


def _sku_not_found(sku: str) -> Response:
    return Response(
        404,
        error_body(
            "CONTENT_NOT_FOUND.GMP_INVENTORY_API",
            f"The value provided for 'sku' is invalid: {sku!r} was not found.",
            field="sku",
        ),
    )


# §3.1 (WM1/WM4): the events a seller may subscribe to [descriptions M].
EVENT_TYPES: tuple[dict[str, str], ...] = (
    {"eventType": "PO_CREATED", "eventVersion": "V1", "resourceName": "ORDER",
     "description": "A purchase order was created."},
    {"eventType": "PO_LINE_AUTOCANCELLED", "eventVersion": "V1", "resourceName": "ORDER",
     "description": "A purchase order line was cancelled, not shipped in time."},
    {"eventType": "ORDER_UPDATES", "eventVersion": "V1", "resourceName": "ORDER",
     "description": "An order changed; payload.subEventType says how."},
    {"eventType": "OFFER_UNPUBLISHED", "eventVersion": "V1", "resourceName": "ITEM",
     "description": "An offer was unpublished."},
    {"eventType": "BUY_BOX_CHANGED", "eventVersion": "V1", "resourceName": "PRICE",
     "description": "The buy box of an item changed hands."},
    {"eventType": "INVENTORY_OOS", "eventVersion": "V1", "resourceName": "INVENTORY",
     "description": "An item ran out of stock."},
)  # fmt: skip
_EVENT_RESOURCES = {event["eventType"]: event["resourceName"] for event in EVENT_TYPES}


def _subscription(
    seller: Seller, subscription_id: str, body: JSON
) -> tuple[JSON, JSON, Response | None]:
    """The subscription as kept (``_public_subscription`` answers it), the seller settings
    it sets, or why it is refused (400). A replacement without credentials keeps the
    subscription's."""
    event_type = str(body.get("eventType") or "")
    event_url = str(body.get("eventUrl") or "")
    status = str(body.get("status") or "ACTIVE")
    given = body.get("authDetails")
    auth: JSON = given if isinstance(given, dict) else {}
    method = str(auth.get("authMethod") or "HMAC")
    header = str(auth.get("authHeaderName") or seller.settings.webhook_auth_header)
    if method == "BASIC_AUTH":
        secret = f"{auth.get('userName') or ''}:{auth.get('password') or ''}"
    else:
        secret = str(auth.get("clientSecret") or "")
    if secret in ("", ":"):
        secret = str(body.get("_secret") or "")
    problem = ""
    if event_type not in _EVENT_RESOURCES:
        problem = f"Unknown eventType {event_type!r}."
    elif not event_url.startswith(("http://", "https://")):
        problem = "eventUrl must be an http(s) URL."
    elif status not in ("ACTIVE", "INACTIVE"):
        problem = "status is ACTIVE or INACTIVE."
    elif method not in ("HMAC", "BASIC_AUTH"):
        # §3.1: OAUTH exists; this simulator delivers with HMAC or Basic auth only.
        problem = f"authMethod {method!r} is not supported here (HMAC, BASIC_AUTH)."
    elif secret in ("", ":"):
        problem = "authDetails needs clientSecret (HMAC) or userName and password (BASIC_AUTH)."
    if problem:
        return (
            {},
            {},
            Response(
                400, error_body("INVALID_REQUEST_PARAM.GMP_WEBHOOK_API", problem, field="body")
            ),
        )
    headers = body.get("headers") if isinstance(body.get("headers"), dict) else {}
    subscription: JSON = {
        "subscriptionId": subscription_id,
        "partnerId": seller.name,
        "eventType": event_type,
        "eventVersion": str(body.get("eventVersion") or "V1"),
        "resourceName": _EVENT_RESOURCES[event_type],
        "eventUrl": event_url,
        "headers": headers,
        "authDetails": {"authMethod": method, "authHeaderName": header},
        "status": status,
        # Kept to apply again on a PUT that leaves the auth alone; never answered.
        "_secret": secret,
    }
    settings: JSON = {
        "webhook_url": event_url,
        "webhook_auth_method": method,
        "webhook_auth_header": header,
        "webhook_secret": secret,
    }
    return subscription, settings, None


def _public_subscription(subscription: JSON) -> JSON:
    return {name: value for name, value in subscription.items() if not name.startswith("_")}


def _subscription_not_found(subscription_id: str) -> Response:
    return Response(
        404,
        error_body(
            "CONTENT_NOT_FOUND.GMP_WEBHOOK_API",
            f"Subscription {subscription_id!r} was not found.",
        ),
    )


def _node_not_found(ship_node: str) -> Response:
    return Response(
        404,
        error_body(
            "CONTENT_NOT_FOUND.GMP_INVENTORY_API",
            f"The value provided for 'shipNode' is invalid: {ship_node!r} was not found.",
            field="shipNode",
        ),
    )


def _known_node(seller: Seller, ship_node: str) -> bool:
    """Whether the seller has the node (any node, when no list of them is set)."""
    return not seller.settings.ship_nodes or ship_node in seller.settings.ship_nodes


def _amount(quantity: object) -> int:
    """A ``{"unit": "EACH", "amount": n}`` figure's whole, non-negative amount; -1 if not."""
    value = quantity.get("amount") if isinstance(quantity, dict) else None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return -1


def _feed_line(index: int, entry: object) -> FeedLine:
    """A spec 1.4 entry: ``{"sku", "quantity": {"unit", "amount"}}``."""
    if not isinstance(entry, dict):
        return FeedLine(index=index, sku="", amount=-1)
    return FeedLine(
        index=index, sku=str(entry.get("sku") or ""), amount=_amount(entry.get("quantity"))
    )


def _multi_node_line(index: int, entry: object) -> FeedLine:
    """A spec 1.5 entry (§3.2: ship nodes required): ``{"sku", "shipNodes": [{"shipNode",
    "quantity": {"unit", "amount"}}]}`` [M: the per-item list's names]; a line without a
    node, or with a bad figure, is a DATA_ERROR once processed."""
    if not isinstance(entry, dict):
        return FeedLine(index=index, sku="", amount=-1, node_amounts={})
    nodes = entry.get("shipNodes")
    amounts: dict[str, int] = {}
    valid = isinstance(nodes, list) and bool(nodes)
    for node in nodes if isinstance(nodes, list) else []:
        name = node.get("shipNode") if isinstance(node, dict) else None
        amount = _amount(node.get("quantity")) if isinstance(node, dict) else -1
        if not isinstance(name, str) or not name or amount < 0:
            valid = False
            continue
        amounts[name] = amount
    return FeedLine(
        index=index,
        sku=str(entry.get("sku") or ""),
        amount=sum(amounts.values()) if valid else -1,
        node_amounts=amounts,
    )


def _ingestion_error(kind: str, description: str) -> JSON:
    return {"type": kind, "code": f"ERR_EXT_{kind}", "field": "sku", "description": description}


def _feed_file(request: Request) -> bytes:
    """The feed document: the ``file`` part of a multipart body (§3.2), or the raw body."""
    content_type = request.header("Content-Type")
    if not content_type.startswith("multipart/form-data"):
        return request.body
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + request.body
    )
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") == "file":
            payload = part.get_payload(decode=True)
            return payload if isinstance(payload, bytes) else b""
    return b""


def _epoch_ms(text: str) -> int:
    """An ISO 8601 moment (or epoch milliseconds) as epoch milliseconds."""
    if text.isdigit():
        return int(text)
    moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp() * 1000)


def _order_json(order: Order) -> JSON:
    """The Orders API shape [M]: lines under ``orderLines.orderLine`` with their status."""
    return {
        "purchaseOrderId": order.purchase_order_id,
        "customerOrderId": order.customer_order_id,
        "orderDate": order.order_date_ms,
        "lastModified": order.last_modified_ms,
        "orderLines": {
            "orderLine": [
                {
                    "lineNumber": line.line_number,
                    "item": {"productName": f"Product {line.sku}", "sku": line.sku},
                    "orderLineQuantity": {"unitOfMeasure": "EACH", "amount": str(line.quantity)},
                    "orderLineStatuses": {
                        "orderLineStatus": [
                            {
                                "status": line.status,
                                "statusQuantity": {
                                    "unitOfMeasure": "EACH",
                                    "amount": str(line.quantity),
                                },
                            }
                        ]
                    },
                }
                for line in order.lines
            ]
        },
    }
