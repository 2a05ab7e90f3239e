"""An eBay stand-in: OAuth refresh, the Inventory API, the Fulfillment API's order list,
and Platform Notifications for orders.

Several sellers live side by side. A channel's ``api_base_url`` is
``http://HOST:PORT/sellers/<seller>`` where the real platform would be
``https://api.ebay.com``; the paths below it are eBay's. Facts come from
``CHANNEL_APIS.md`` §5 and §6 "eBay" (shared folder).

- ``POST /identity/v1/oauth2/token``: Basic client credentials, ``grant_type=refresh_token``
  with the seller's refresh token; a bearer token that expires after ``token_ttl_s`` on the
  simulator's clock (§5.5). Every other call needs ``Authorization: Bearer``: 401 with
  errorId 1001 when missing, unknown or expired;
- ``POST /sell/inventory/v1/bulk_update_price_quantity``: at most ``max_requests_per_call``
  requests (400 errorId 25709 [M] over it); per request a ``statusCode`` and ``errors``; the
  call is 200 when every request succeeded, else 207 (§5.2). Only PUBLISHED offers; a
  listing revised ``revision_cap`` times on the UTC day is refused (errorId 25099 [M]);
- ``GET /sell/inventory/v1/inventory_item/<sku>``, ``GET /sell/inventory/v1/inventory_item
  ?limit=&offset=``, ``POST /sell/inventory/v1/bulk_get_inventory_item`` (≤25),
  ``GET /sell/inventory/v1/offer?sku=`` (§5.3);
- ``GET /sell/fulfillment/v1/order?filter=lastmodifieddate:[from..]&limit=&offset=``;
- a daily call quota per seller: 429 errorId 2001 once spent (§5.4 [M]).

Orders placed through the control API take their units off the item and the offer and are
announced as ``FixedPriceTransaction`` Platform Notifications (SOAP, §5.1): the header's
``NotificationSignature`` is ``base64(md5(Timestamp + DevID + AppID + CertID))``; a delivery
not answered 200 is sent again.

The Notification API (JSON, §5.1 EB3/EB4/EB5): ``GET /commerce/notification/v1/public_key/
<kid>`` (any valid bearer token; the client-credentials grant gives one) answers the
simulator's ECDSA key; notifications sent through the control API are signed with it in
``X-EBAY-SIGNATURE`` and POSTed to the seller's ``notification_url`` (else its
``webhook_url``), each retry with ``publishAttemptCount`` raised.

Control routes under ``/_sim/sellers/<seller>/`` besides the harness's: ``POST items``
``{"items": [{sku, quantity, offer_quantity, status}]}`` (one offer each); ``GET items``
(``quantity``, ``offer_quantity``, ``listed``, ``api_writes``, ``revisions_today``);
``POST orders`` ``{"lines": [{sku, quantity}], "duplicates": n, "deliver": bool}``;
``POST notifications`` ``{"topic", "data", "duplicates", "deliver"}``; ``POST
validate_endpoint`` (eBay's challenge GET, answered ``{"validated", "status"}``).

Fault endpoints: ``token``; ``bulk_update_price_quantity`` (also ``write``);
``inventory_item:get``, ``bulk_get_inventory_item``, ``offer:get`` and ``order:get`` (also
``read``).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import itertools
import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from typing import Any
from xml.sax.saxutils import escape

from channels.simulators.ebay import notification_api
from channels.simulators.ebay.state import (
    SECONDS_PER_DAY,
    Item,
    Offer,
    Order,
    OrderLine,
    Seller,
    SellerSettings,
)
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
)

_API_PATH = re.compile(r"^/sellers/(?P<seller>[\w.-]+)(?P<path>/.*)$")
_SELLER = r"/_sim/sellers/(?P<tenant>[\w.-]+)"
INVENTORY = "/sell/inventory/v1"
NOTIFICATION = "/commerce/notification/v1"
# §5.5 [M]: the expired or invalid token's error.
INVALID_TOKEN_ERROR_ID = 1001
# §5.4 [M]: the quota's error.
QUOTA_ERROR_ID = 2001
# §5.2 [M]: the error ids are not documented; these name the cases.
TOO_MANY_REQUESTS_ERROR_ID = 25709
SKU_NOT_FOUND_ERROR_ID = 25702
OFFER_NOT_FOUND_ERROR_ID = 25713
OFFER_NOT_PUBLISHED_ERROR_ID = 25020
REVISION_CAP_ERROR_ID = 25099
INVALID_QUANTITY_ERROR_ID = 25018
# §5.1 (EB6): eBay retries a notification not answered 200 [M: the schedule].
RETRIES = 3
RESPONSE_TIMEOUT_S = 5.0
MAX_ORDERS_PAGE = 200
SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
EBL_NS = "urn:ebay:apis:eBLBaseComponents"


def error(error_id: int, message: str, *, category: str = "REQUEST", **extra: Any) -> JSON:
    """§5.4 [M]: one ErrorDetailV3."""
    return {
        "errorId": error_id,
        "domain": "API_INVENTORY",
        "subdomain": "Selling",
        "category": category,
        "message": message,
        **extra,
    }


def errors_body(error_id: int, message: str, **extra: Any) -> JSON:
    return {"errors": [error(error_id, message, **extra)]}


def notification_signature(timestamp: str, dev_id: str, app_id: str, cert_id: str) -> str:
    """§5.1 (EB6 KB 1201): base64 of the raw MD5 of Timestamp + DevID + AppID + CertID."""
    # The platform chose MD5; nothing else verifies.
    digest = hashlib.md5((timestamp + dev_id + app_id + cert_id).encode()).digest()  # noqa: S324
    return base64.b64encode(digest).decode()


class EbaySimulator(Simulator[Seller]):
    display_name = "eBay"
    tenant_collection = "sellers"
    tenant_kind = "seller"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Seller-independent so ids never collide across sellers or resets.
        self._offer_ids = itertools.count(5_000_000_001)
        self._listing_ids = itertools.count(110_000_000_001)
        self._transaction_ids = itertools.count(2_000_000_001)
        self._order_numbers = itertools.count(10_001)
        # One key signs every seller's notifications, as eBay's keys are the platform's.
        self.signing_key = notification_api.SigningKey()

    # -- Tenants -----------------------------------------------------------------------------

    def create_tenant(self, body: JSON) -> JSON:
        settings = SellerSettings.from_json(body)
        self.tenants.put(Seller(settings))
        return {"seller": settings.public()}

    def tenant_state(self, seller: Seller) -> JSON:
        return {
            "seller": seller.settings.public(),
            "items": len(seller.items),
            "orders": len(seller.orders),
            "tokens": len(seller.tokens),
        }

    def update_settings(self, seller: Seller, body: JSON) -> JSON:
        with seller.lock:
            seller.settings.update(body)
            seller.read_lag.lag_s = seller.settings.read_lag_s
            return {"seller": seller.settings.public()}

    def retry_policy(self, seller: Seller) -> RetryPolicy:
        return RetryPolicy(
            retries=RETRIES,
            base_s=seller.settings.webhook_retry_base_s,
            response_timeout_s=RESPONSE_TIMEOUT_S,
        )

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
        if not with_body:
            return Response(status, b"")
        return Response(
            status,
            errors_body(25001, "A system error has occurred.", category="APPLICATION"),
        )

    def throttled_response(self, seller: Seller) -> Response:
        return Response(
            429,
            errors_body(
                QUOTA_ERROR_ID,
                "Too many requests. The request limit has been reached for the resource.",
            ),
        )

    def expired_token_response(self, seller: Seller) -> Response:
        return Response(
            401,
            {
                "errors": [
                    {
                        "errorId": INVALID_TOKEN_ERROR_ID,
                        "domain": "OAuth",
                        "category": "REQUEST",
                        "message": "Invalid access token",
                        "longMessage": "Invalid access token. Check the value of the "
                        "Authorization HTTP request header.",
                    }
                ]
            },
        )

    # -- API ---------------------------------------------------------------------------------

    def handle_api(self, request: Request) -> Response:
        match = _API_PATH.match(request.path)
        seller = self.tenants.get(match["seller"]) if match else None
        if match is None or seller is None:
            return Response(404, errors_body(2002, "Resource not found."))
        path = match["path"].rstrip("/")
        entry = self.log_request(seller, request, api_path=path)
        response = self._dispatch(seller, request, path, entry)
        entry["status"] = response.status if not response.reset else None
        return response

    def _endpoint(self, method: str, path: str) -> str | None:
        if method == "POST" and path == f"{INVENTORY}/bulk_update_price_quantity":
            return "bulk_update_price_quantity"
        if method == "POST" and path == f"{INVENTORY}/bulk_get_inventory_item":
            return "bulk_get_inventory_item"
        if method == "GET" and path.startswith(f"{INVENTORY}/inventory_item"):
            return "inventory_item:get"
        if method == "GET" and path == f"{INVENTORY}/offer":
            return "offer:get"
        if method == "GET" and path == "/sell/fulfillment/v1/order":
            return "order:get"
        if method == "GET" and path.startswith(f"{NOTIFICATION}/public_key/"):
            return "public_key:get"
        return None

    def _dispatch(self, seller: Seller, request: Request, path: str, entry: JSON) -> Response:
        if path == "/identity/v1/oauth2/token" and request.method == "POST":
            return self._token(seller, request, entry)
        endpoint = self._endpoint(request.method, path)
        if endpoint is None:
            return Response(404, errors_body(2002, f"No route {request.method} {path}."))
        entry["endpoint"] = endpoint
        if not self._bearer_valid(seller, request):
            return self.expired_token_response(seller)
        group = "write" if endpoint == "bulk_update_price_quantity" else "read"
        with seller.lock:
            fault = seller.faults.draw([endpoint, group])
            dropped = group == "write" and seller.faults.take_drop([endpoint, group])
            allowed = seller.take_call(self.clock.time())
        entry["fault"] = fault.name
        if not allowed:
            return self.throttled_response(seller)
        answer = self.fault_response(seller, fault)
        if answer is not None:
            return answer
        if fault.latency_s:
            time.sleep(fault.latency_s)
        try:
            body: Any = json.loads(request.body) if request.body else {}
        except ValueError:
            return Response(400, errors_body(2004, "The request has errors: invalid JSON."))
        if endpoint == "bulk_update_price_quantity":
            response = self._bulk_update(seller, body, apply=not dropped)
        elif endpoint == "bulk_get_inventory_item":
            response = self._bulk_get(seller, body)
        elif endpoint == "inventory_item:get":
            response = self._get_item(seller, request, path)
        elif endpoint == "offer:get":
            response = self._get_offers(seller, request)
        elif endpoint == "public_key:get":
            response = self._get_public_key(path)
        else:
            response = self._get_orders(seller, request)
        if fault.timeout_s:
            # Applied; the answer comes after the client gave up.
            response.delay_s = fault.timeout_s
        return response

    def _bearer_valid(self, seller: Seller, request: Request) -> bool:
        header = request.header("Authorization")
        if not header.startswith("Bearer "):
            return False
        token = header.removeprefix("Bearer ").strip()
        now = self.clock.time()
        with seller.lock:
            expires_at = seller.tokens.get(token)
            if expires_at is not None and expires_at <= now:
                seller.tokens.pop(token, None)
        return expires_at is not None and expires_at > now

    def _token(self, seller: Seller, request: Request, entry: JSON) -> Response:
        """§5.5: the refresh-token grant with Basic client credentials."""
        entry["endpoint"] = "token"
        with seller.lock:
            fault = seller.faults.draw(["token"])
        entry["fault"] = fault.name
        if fault.reset or fault.fail_status is not None or fault.throttle:
            answer = self.fault_response(seller, fault)
            if answer is not None:
                return answer
        settings = seller.settings
        if not _basic_matches(request, settings.client_id, settings.client_secret):
            return Response(
                401,
                {"error": "invalid_client", "error_description": "client authentication failed"},
            )
        form = urllib.parse.parse_qs(request.body.decode("utf-8", errors="replace"))
        grant = form.get("grant_type")
        if grant not in (["refresh_token"], ["client_credentials"]):
            return Response(
                400,
                {"error": "unsupported_grant_type", "error_description": "grant type unknown"},
            )
        if grant == ["refresh_token"] and not hmac.compare_digest(
            (form.get("refresh_token") or [""])[0].encode(), settings.refresh_token.encode()
        ):
            return Response(
                400,
                {"error": "invalid_grant", "error_description": "the refresh token is invalid"},
            )
        token = f"v^1.1#i^1#{uuid.uuid4().hex}{uuid.uuid4().hex}"
        with seller.lock:
            now = self.clock.time()
            seller.tokens = {t: at for t, at in seller.tokens.items() if at > now}
            seller.tokens[token] = now + settings.token_ttl_s
        return Response(
            200,
            {
                "access_token": token,
                "expires_in": int(settings.token_ttl_s),
                "token_type": "User Access Token",
            },
        )

    # -- Inventory writes --------------------------------------------------------------------

    def _bulk_update(self, seller: Seller, body: Any, *, apply: bool) -> Response:
        """§5.2: each request's item quantity and offers; a status per request."""
        requests = body.get("requests") if isinstance(body, dict) else None
        if not isinstance(requests, list) or not requests:
            return Response(400, errors_body(2004, "'requests' is required."))
        if len(requests) > seller.settings.max_requests_per_call:
            return Response(
                400,
                errors_body(
                    TOO_MANY_REQUESTS_ERROR_ID,
                    f"The number of requests exceeds {seller.settings.max_requests_per_call}.",
                ),
            )
        responses = []
        with seller.lock:
            for raw in requests:
                responses.extend(self._update_one(seller, raw, apply=apply))
        status = 200 if all(r["statusCode"] == 200 for r in responses) else 207
        return Response(status, {"responses": responses})

    def _update_one(self, seller: Seller, raw: Any, *, apply: bool) -> list[JSON]:
        """One request's answers (one per offer, or one for the item); lock held."""
        sku = str(raw.get("sku", "")) if isinstance(raw, dict) else ""
        item = seller.items.get(sku)
        if item is None:
            return [_entry(404, sku, "", [error(SKU_NOT_FOUND_ERROR_ID, "SKU not found.")])]
        availability = raw.get("shipToLocationAvailability")
        item_quantity = availability.get("quantity") if isinstance(availability, dict) else None
        offers_in = raw.get("offers") if isinstance(raw.get("offers"), list) else []
        if item_quantity is not None and not _quantity_ok(item_quantity):
            return [_entry(400, sku, "", [error(INVALID_QUANTITY_ERROR_ID, "Bad quantity.")])]
        planned: list[tuple[Offer, int | None]] = []
        answers: list[JSON] = []
        for offer_in in offers_in:
            offer_id = str(offer_in.get("offerId", "")) if isinstance(offer_in, dict) else ""
            offer = next((o for o in item.offers if o.offer_id == offer_id), None)
            quantity = offer_in.get("availableQuantity") if isinstance(offer_in, dict) else None
            if offer is None:
                answers.append(
                    _entry(404, sku, offer_id, [error(OFFER_NOT_FOUND_ERROR_ID, "No offer.")])
                )
            elif offer.status != "PUBLISHED":
                answers.append(
                    _entry(
                        400,
                        sku,
                        offer_id,
                        [
                            error(
                                OFFER_NOT_PUBLISHED_ERROR_ID,
                                "Only a published offer can be updated here; use updateOffer.",
                            )
                        ],
                    )
                )
            elif quantity is not None and not _quantity_ok(quantity):
                answers.append(
                    _entry(400, sku, offer_id, [error(INVALID_QUANTITY_ERROR_ID, "Bad quantity.")])
                )
            else:
                planned.append((offer, quantity))
        # An item quantity revises every published listing of the item; offers named, theirs.
        revised = {id(o): o for o, _ in planned}
        if item_quantity is not None:
            revised |= {id(o): o for o in item.offers if o.status == "PUBLISHED"}
        day = int(self.clock.time() // SECONDS_PER_DAY)
        capped = [
            o for o in revised.values() if o.revisions.get(day, 0) >= seller.settings.revision_cap
        ]
        if capped:
            cap_error = error(
                REVISION_CAP_ERROR_ID,
                f"The listing has reached its limit of {seller.settings.revision_cap} revisions "
                "for the day.",
                category="BUSINESS",
            )
            return answers + [_entry(400, sku, o.offer_id, [cap_error]) for o in capped]
        if apply and (planned or item_quantity is not None):
            now = self.clock.time()
            for offer in revised.values():
                offer.revisions[day] = offer.revisions.get(day, 0) + 1
            before = item.listed()
            seller.read_lag.before_write(sku, _item_snapshot(item), now)
            if item_quantity is not None:
                item.quantity = int(item_quantity)
            for offer, quantity in planned:
                if quantity is not None:
                    offer.available_quantity = int(quantity)
            item.api_writes += 1
            seller.changes.append(
                {
                    "time": now,
                    "sku": sku,
                    "before": before,
                    "after": item.listed(),
                    "source": "api",
                }
            )
        if planned:
            return answers + [_entry(200, sku, o.offer_id, []) for o, _ in planned]
        return answers or [_entry(200, sku, "", [])]

    # -- Inventory reads ---------------------------------------------------------------------

    def _visible(self, seller: Seller, item: Item) -> JSON:
        return seller.read_lag.visible(item.sku, _item_snapshot(item), self.clock.time())

    def _item_json(self, seller: Seller, item: Item) -> JSON:
        """§5.3 [M]: the inventory item's shape."""
        quantity = self._visible(seller, item)["quantity"]
        return {
            "sku": item.sku,
            "availability": {
                "shipToLocationAvailability": {
                    "quantity": quantity,
                    "allocationByFormat": {"fixedPrice": quantity, "auction": 0},
                }
            },
            "condition": "NEW",
            "product": {"title": f"Product {item.sku}"},
        }

    def _get_item(self, seller: Seller, request: Request, path: str) -> Response:
        sku = urllib.parse.unquote(path.removeprefix(f"{INVENTORY}/inventory_item").strip("/"))
        with seller.lock:
            if not sku:
                limit = _int(request.query, "limit", 25, 1, 200)
                offset = _int(request.query, "offset", 0, 0, 10**9)
                items = list(seller.items.values())
                page = [self._item_json(seller, i) for i in items[offset : offset + limit]]
                return Response(
                    200,
                    {
                        "total": len(items),
                        "size": len(page),
                        "limit": limit,
                        "inventoryItems": page,
                    },
                )
            item = seller.items.get(sku)
            if item is None:
                return Response(404, errors_body(25710, f"SKU {sku} is not available."))
            return Response(200, self._item_json(seller, item))

    def _bulk_get(self, seller: Seller, body: Any) -> Response:
        requests = body.get("requests") if isinstance(body, dict) else None
        if not isinstance(requests, list) or not requests:
            return Response(400, errors_body(2004, "'requests' is required."))
        if len(requests) > seller.settings.max_requests_per_call:
            return Response(
                400, errors_body(TOO_MANY_REQUESTS_ERROR_ID, "Too many requests in the call.")
            )
        responses = []
        with seller.lock:
            for raw in requests:
                sku = str(raw.get("sku", "")) if isinstance(raw, dict) else ""
                item = seller.items.get(sku)
                if item is None:
                    responses.append(
                        {
                            "statusCode": 404,
                            "sku": sku,
                            "errors": [error(25710, f"SKU {sku} is not available.")],
                        }
                    )
                else:
                    responses.append(
                        {
                            "statusCode": 200,
                            "sku": sku,
                            "inventoryItem": self._item_json(seller, item),
                        }
                    )
        status = 200 if all(r["statusCode"] == 200 for r in responses) else 207
        return Response(status, {"responses": responses})

    def _get_offers(self, seller: Seller, request: Request) -> Response:
        sku = (request.query.get("sku") or [""])[0]
        with seller.lock:
            item = seller.items.get(sku)
            if item is None:
                return Response(404, errors_body(25713, "This Offer is not available."))
            snapshot = self._visible(seller, item)
            offers = [
                {
                    "offerId": offer.offer_id,
                    "sku": sku,
                    "marketplaceId": "EBAY_US",
                    "format": "FIXED_PRICE",
                    "availableQuantity": snapshot["offers"].get(
                        offer.offer_id, offer.available_quantity
                    ),
                    "pricingSummary": {"price": {"value": offer.price, "currency": "USD"}},
                    "status": offer.status,
                    **(
                        {"listing": {"listingId": offer.listing_id}}
                        if offer.status == "PUBLISHED"
                        else {}
                    ),
                }
                for offer in item.offers
            ]
        return Response(200, {"total": len(offers), "size": len(offers), "offers": offers})

    def _get_orders(self, seller: Seller, request: Request) -> Response:
        """§5.1 [M]: orders modified since ``filter=lastmodifieddate:[from..]``."""
        since_s = 0.0
        for part in (request.query.get("filter") or [""])[0].split(","):
            name, _, value = part.partition(":")
            if name.strip() == "lastmodifieddate" and value.startswith("["):
                start = value.strip("[]").split("..")[0]
                try:
                    since_s = dt.datetime.fromisoformat(start.replace("Z", "+00:00")).timestamp()
                except ValueError:
                    return Response(400, errors_body(30700, "Invalid filter."))
        limit = _int(request.query, "limit", 50, 1, MAX_ORDERS_PAGE)
        offset = _int(request.query, "offset", 0, 0, 10**9)
        with seller.lock:
            orders = [o for o in seller.orders.values() if o.created_at >= since_s]
        page = orders[offset : offset + limit]
        return Response(
            200,
            {
                "total": len(orders),
                "limit": limit,
                "offset": offset,
                "orders": [_order_json(order) for order in page],
            },
        )

    def _get_public_key(self, path: str) -> Response:
        """EB3: ``getPublicKey``; 404 for a key id eBay never issued."""
        key_id = path.rsplit("/", 1)[-1]
        if key_id != self.signing_key.key_id:
            return Response(404, errors_body(195001, "The public key id is invalid."))
        return Response(200, self.signing_key.public_key_answer())

    # -- Control -----------------------------------------------------------------------------

    def control_routes(self) -> list[Route]:
        return [
            route("POST", f"{_SELLER}/items", lambda m, b, q: self.add_items(m["tenant"], b)),
            route("GET", f"{_SELLER}/items", lambda m, b, q: self.list_items(m["tenant"])),
            route("POST", f"{_SELLER}/orders", lambda m, b, q: self.place_order(m["tenant"], b)),
            route(
                "POST",
                f"{_SELLER}/notifications",
                lambda m, b, q: self.send_notification(m["tenant"], b),
            ),
            route(
                "POST",
                f"{_SELLER}/validate_endpoint",
                lambda m, b, q: self.validate_endpoint(m["tenant"]),
            ),
        ]

    def send_notification(self, seller_name: str, body: JSON) -> JSON:
        """A Notification API notification of ``topic`` with ``data``, signed, to the
        seller's ``notification_url``; each retry raises ``publishAttemptCount``."""
        topic, data = body.get("topic"), body.get("data", {})
        if not isinstance(topic, str) or not topic or not isinstance(data, dict):
            raise ControlError(400, "'topic' is a string and 'data' an object.")
        seller = self.tenants.require(seller_name)
        notification_id = str(uuid.uuid4())
        event_date = self.clock.iso().replace("+00:00", "Z")
        key = self.signing_key

        def prepare(attempt: int) -> tuple[dict[str, str], bytes]:
            raw = notification_api.notification_body(
                topic=topic,
                notification_id=notification_id,
                event_date=event_date,
                attempt=attempt,
                data=data,
            )
            headers = {
                "Content-Type": "application/json",
                notification_api.SIGNATURE_HEADER: key.signature_header(raw),
            }
            return headers, raw

        headers, raw = prepare(1)
        with seller.lock:
            url = seller.settings.notification_url or seller.settings.webhook_url
        delivery = Delivery(
            webhook_id=notification_id,
            topic=topic,
            url=url,
            headers=headers,
            body=raw,
            created_at=self.clock.time(),
            prepare=prepare,
        )
        status = self.emitter.emit(
            seller,
            delivery,
            self.retry_policy(seller),
            duplicates=int(body.get("duplicates", 0)),
            deliver=bool(body.get("deliver", True)),
        )
        return {"notification_id": notification_id, "status": status}

    def validate_endpoint(self, seller_name: str) -> JSON:
        """EB5: ``GET <endpoint>?challenge_code=`` as eBay does when a destination is
        created; whether the answer is the expected hash."""
        seller = self.tenants.require(seller_name)
        with seller.lock:
            url = seller.settings.notification_url or seller.settings.webhook_url
            token = seller.settings.verification_token
        code = uuid.uuid4().hex
        separator = "&" if "?" in url else "?"
        try:
            with urllib.request.urlopen(  # noqa: S310 (the seller's own endpoint)
                f"{url}{separator}challenge_code={code}", timeout=RESPONSE_TIMEOUT_S
            ) as answer:
                status, raw = answer.status, answer.read()
        except urllib.error.HTTPError as refused:
            return {"validated": False, "status": refused.code}
        except OSError as error:
            return {"validated": False, "status": None, "error": str(error)}
        try:
            received = json.loads(raw).get("challengeResponse")
        except (ValueError, AttributeError):
            received = None
        expected = notification_api.challenge_response(code, token, url)
        return {"validated": received == expected, "status": status}

    def webhooks_of(self, name: str) -> JSON:
        """Every delivery with its attempts; the SOAP body as text (not JSON)."""
        seller = self.tenants.require(name)
        with seller.lock:
            deliveries = list(seller.deliveries.values())
            return {
                "webhooks": [
                    {
                        "webhook_id": d.webhook_id,
                        "topic": d.topic,
                        "url": d.url,
                        "headers": d.headers,
                        "body": d.body.decode(),
                        "state": d.state,
                        "attempts": list(d.attempts),
                    }
                    for d in deliveries
                ]
            }

    def add_items(self, seller_name: str, body: JSON) -> JSON:
        raw_items = body.get("items")
        if not isinstance(raw_items, list):
            raise ControlError(400, "'items' must be a list.")
        seller = self.tenants.require(seller_name)
        added = []
        with seller.lock:
            for raw in raw_items:
                try:
                    sku = str(raw["sku"])
                    quantity = int(raw.get("quantity", 0))
                    offer_quantity = int(raw.get("offer_quantity", quantity))
                    status = str(raw.get("status", "PUBLISHED"))
                except (KeyError, TypeError, ValueError, AttributeError):
                    raise ControlError(400, f"Bad item {raw!r}.") from None
                offer = Offer(
                    offer_id=str(next(self._offer_ids)),
                    listing_id=str(next(self._listing_ids)),
                    available_quantity=offer_quantity,
                    status=status,
                )
                item = Item(sku=sku, quantity=quantity, offers=[offer])
                seller.items[sku] = item
                added.append(self._item_state(item))
        return {"items": added}

    def _item_state(self, item: Item) -> JSON:
        day = int(self.clock.time() // SECONDS_PER_DAY)
        return {
            "sku": item.sku,
            "quantity": item.quantity,
            "offer_id": item.offers[0].offer_id,
            "listing_id": item.offers[0].listing_id,
            "offer_quantity": item.offers[0].available_quantity,
            "status": item.offers[0].status,
            "listed": item.listed(),
            "api_writes": item.api_writes,
            "revisions_today": max((o.revisions.get(day, 0) for o in item.offers), default=0),
        }

    def list_items(self, seller_name: str) -> JSON:
        seller = self.tenants.require(seller_name)
        with seller.lock:
            return {"items": [self._item_state(item) for item in seller.items.values()]}

    def place_order(self, seller_name: str, body: JSON) -> JSON:
        """A buyer's order: units off the item and its offer, one FixedPriceTransaction
        notification per line (§5.1)."""
        raw_lines = body.get("lines")
        if not isinstance(raw_lines, list) or not raw_lines:
            raise ControlError(400, "'lines' must be a non-empty list.")
        seller = self.tenants.require(seller_name)
        deliveries = []
        with seller.lock:
            order_id = (
                f"{next(self._order_numbers):02d}-{uuid.uuid4().int % 10**5:05d}-"
                f"{uuid.uuid4().int % 10**5:05d}"
            )
            order = Order(order_id=order_id, created_at=self.clock.time(), lines=[])
            for raw in raw_lines:
                try:
                    sku, quantity = str(raw["sku"]), int(raw["quantity"])
                except (KeyError, TypeError, ValueError, AttributeError):
                    raise ControlError(400, f"Bad line {raw!r}.") from None
                item = seller.items.get(sku)
                if item is None or quantity <= 0:
                    raise ControlError(400, f"No item {sku!r}, or a quantity below 1.")
                offer = item.offers[0]
                transaction_id = str(next(self._transaction_ids))
                line = OrderLine(
                    line_item_id=f"{offer.listing_id}-{transaction_id}",
                    item_id=offer.listing_id,
                    transaction_id=transaction_id,
                    sku=sku,
                    quantity=quantity,
                )
                before = item.listed()
                item.quantity -= quantity
                offer.available_quantity -= quantity
                seller.changes.append(
                    {
                        "time": order.created_at,
                        "sku": sku,
                        "before": before,
                        "after": item.listed(),
                        "source": "order",
                    }
                )
                order.lines.append(line)
                deliveries.append(self._platform_notification(seller, order, line))
            seller.orders[order_id] = order
        statuses = [
            self.emitter.emit(
                seller,
                delivery,
                self.retry_policy(seller),
                duplicates=int(body.get("duplicates", 0)),
                deliver=bool(body.get("deliver", True)),
            )
            for delivery in deliveries
        ]
        return {
            "order_id": order_id,
            "line_item_ids": [line.line_item_id for line in order.lines],
            "delivery_statuses": statuses,
        }

    def _platform_notification(self, seller: Seller, order: Order, line: OrderLine) -> Delivery:
        """§5.1 (EB6): a SOAP FixedPriceTransaction signed in its header (lock held)."""
        settings = seller.settings
        timestamp = self.clock.iso().replace("+00:00", "Z")
        signature = notification_signature(
            timestamp, settings.dev_id, settings.client_id, settings.client_secret
        )
        body = PLATFORM_NOTIFICATION.format(
            signature=signature,
            timestamp=timestamp,
            event="FixedPriceTransaction",
            seller=escape(settings.seller),
            item_id=line.item_id,
            sku=escape(line.sku),
            quantity=line.quantity,
            transaction_id=line.transaction_id,
            line_item_id=line.line_item_id,
            order_id=order.order_id,
        ).encode()
        return Delivery(
            webhook_id=f"{line.item_id}-{line.transaction_id}",
            topic="FixedPriceTransaction",
            url=settings.webhook_url,
            headers={
                "Content-Type": "text/xml; charset=utf-8",
                "SOAPAction": '"http://developer.ebay.com/notification/FixedPriceTransaction"',
            },
            body=body,
            created_at=self.clock.time(),
        )


PLATFORM_NOTIFICATION = """<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">
 <soapenv:Header>
  <ebl:RequesterCredentials soapenv:mustUnderstand="0" xmlns:ebl="urn:ebay:apis:eBLBaseComponents">
   <ebl:NotificationSignature>{signature}</ebl:NotificationSignature>
  </ebl:RequesterCredentials>
 </soapenv:Header>
 <soapenv:Body>
  <GetItemTransactionsResponse xmlns="urn:ebay:apis:eBLBaseComponents">
   <Timestamp>{timestamp}</Timestamp>
   <Ack>Success</Ack>
   <Version>1331</Version>
   <NotificationEventName>{event}</NotificationEventName>
   <RecipientUserID>{seller}</RecipientUserID>
   <Item><ItemID>{item_id}</ItemID><SKU>{sku}</SKU></Item>
   <TransactionArray>
    <Transaction>
     <QuantityPurchased>{quantity}</QuantityPurchased>
     <TransactionID>{transaction_id}</TransactionID>
     <OrderLineItemID>{line_item_id}</OrderLineItemID>
     <ContainingOrder><OrderID>{order_id}</OrderID></ContainingOrder>
    </Transaction>
   </TransactionArray>
  </GetItemTransactionsResponse>
 </soapenv:Body>
</soapenv:Envelope>
"""


def _entry(status: int, sku: str, offer_id: str, errors: list[JSON]) -> JSON:
    entry: JSON = {"statusCode": status, "sku": sku, "errors": errors, "warnings": []}
    if offer_id:
        entry["offerId"] = offer_id
    return entry


def _quantity_ok(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _item_snapshot(item: Item) -> JSON:
    return {
        "quantity": item.quantity,
        "offers": {o.offer_id: o.available_quantity for o in item.offers},
    }


def _int(query: dict[str, list[str]], name: str, default: int, low: int, high: int) -> int:
    try:
        value = int((query.get(name) or [str(default)])[0])
    except ValueError:
        raise ControlError(400, f"{name!r} is a number.") from None
    return max(low, min(value, high))


def _basic_matches(request: Request, client_id: str, client_secret: str) -> bool:
    header = request.header("Authorization")
    if not header.startswith("Basic "):
        return False
    try:
        decoded = base64.b64decode(header.removeprefix("Basic ").strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    return hmac.compare_digest(decoded, f"{client_id}:{client_secret}".encode())


def _order_json(order: Order) -> JSON:
    """§5.1 [M]: the Fulfillment API's order, its ``lineItems``."""
    created = dt.datetime.fromtimestamp(order.created_at, dt.UTC).isoformat(
        timespec="milliseconds"
    )
    created = created.replace("+00:00", "Z")
    return {
        "orderId": order.order_id,
        "creationDate": created,
        "lastModifiedDate": created,
        "orderFulfillmentStatus": "NOT_STARTED",
        "lineItems": [
            {
                "lineItemId": line.line_item_id,
                "legacyItemId": line.item_id,
                "legacyTransactionId": line.transaction_id,
                "sku": line.sku,
                "quantity": line.quantity,
            }
            for line in order.lines
        ],
    }
