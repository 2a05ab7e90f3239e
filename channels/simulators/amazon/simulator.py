"""An Amazon Selling Partner API stand-in: LWA tokens, Listings Items, Feeds, FBA Inventory,
Orders, per-operation rate limits and SQS notifications (``CHANNEL_APIS.md`` §2, §6).

A channel's ``api_base_url`` is the simulator's URL (where Amazon's would be
``https://sellingpartnerapi-na.amazon.com``); the LWA token endpoint is
``<url>/auth/o2/token``. Calls are routed to a seller by their access token (and the
``sellerId`` of a Listings path must be the token's seller).

Besides the harness's control routes (``harness.server``), ``/_sim/sellers/<seller>/`` has:

- ``POST listings`` ``{"listings": [{sku, asin, fnsku, quantity, fba: {...}}]}``; ``GET listings``;
- ``POST listings/<sku>/fba`` ``{fulfillable, inbound_shipped, ...}`` (§2.6 sub-states;
  sends FBA_INVENTORY_AVAILABILITY_CHANGES);
- ``POST listings/<sku>/issues`` ``{"issues": [...]}``: the listing's issues, replaced;
- ``POST process``: what waits (patches, feeds) is due now, as if its delay had passed;
- ``POST orders`` ``{"lines": [{sku, quantity}], "fulfillment_channel": "MFN"|"AFN",
  "duplicates": n, "deliver": bool}`` (MFN units come off the listing; ORDER_CHANGE sent);
  ``POST orders/<id>/cancel`` ``{"buyer_requested": bool}``;
- ``GET notifications?since=<seq>``; ``POST notifications/release`` (held ones, newest first);
- ``GET changes?since=<seq>``: every applied quantity write, with its source.

Fault endpoints are the operation names: ``getAccessToken``, ``patchListingsItem``,
``getListingsItem``, ``createFeedDocument``, ``createFeed``, ``getFeed``, ``cancelFeed``,
``getFeedDocument``, ``getInventorySummaries``, ``getOrders``, ``getOrderItems``. The
``drop`` fault on ``patchListingsItem`` answers ACCEPTED and never applies (an issue shows up
on the listing when ``issue_on_drop``).
"""

from __future__ import annotations

import datetime as dt
import hmac
import itertools
import json
import re
import secrets
import time
import urllib.parse
from typing import Any

from channels.simulators.amazon import notifications
from channels.simulators.amazon.state import (
    FBA_FIELDS,
    Document,
    Feed,
    Listing,
    Order,
    OrderItem,
    Patch,
    Seller,
    SellerSettings,
    fba_details,
    fba_notification_inventory,
    fba_total,
)
from channels.simulators.harness import (
    JSON,
    ControlError,
    Request,
    Response,
    Route,
    Simulator,
    route,
    since,
)

# §2.4 (and §2.2, §2.3, AM10/AM11): rate per second, burst.
RATE_LIMITS: dict[str, tuple[float, int]] = {
    "patchListingsItem": (5.0, 5),
    "getListingsItem": (5.0, 10),
    "createFeedDocument": (0.5, 15),
    "createFeed": (0.0083, 15),
    "getFeed": (2.0, 15),
    "cancelFeed": (2.0, 15),
    "getFeedDocument": (0.0222, 10),
    "getInventorySummaries": (2.0, 2),
    "getOrders": (0.0167, 20),
    "getOrderItems": (0.5, 30),
}
# §2.2 (AM8): 5 JSON_LISTINGS_FEED submissions per 5 minutes, apart from createFeed's limit.
LISTINGS_FEED_RATE = (5 / 300, 5)
MAX_FEED_MESSAGES = 25_000
# §2.2 (AM9): the legacy XML and flat-file feeds end FATAL since 2025-07-31.
LEGACY_FEED_TYPES = frozenset(
    {
        "POST_INVENTORY_AVAILABILITY_DATA",
        "POST_PRODUCT_DATA",
        "POST_FLAT_FILE_INVLOADER_DATA",
        "POST_FLAT_FILE_LISTINGS_DATA",
    }
)
LISTINGS_FEED = "JSON_LISTINGS_FEED"
# §2.4: the throttled body.
QUOTA_EXCEEDED = {
    "errors": [
        {
            "code": "QuotaExceeded",
            "message": "You exceeded your quota for the requested resource.",
            "details": "",
        }
    ]
}
FULFILLMENT_AVAILABILITY = "/attributes/fulfillment_availability"


def _errors(code: str, message: str, details: str = "") -> JSON:
    """§2.4: every SP-API error body is ``{"errors": [{code, message, details}]}``."""
    return {"errors": [{"code": code, "message": message, "details": details}]}


def _unauthorized(details: str = "") -> Response:
    return Response(
        403, _errors("Unauthorized", "Access to requested resource is denied.", details)
    )


_LISTING_PATH = re.compile(r"^/listings/2021-08-01/items/(?P<seller>[^/]+)/(?P<sku>[^/]+)$")
_FEED_DOCS_PATH = re.compile(r"^/feeds/2021-06-30/documents(?:/(?P<doc>[^/]+))?$")
_FEEDS_PATH = re.compile(r"^/feeds/2021-06-30/feeds(?:/(?P<feed>[^/]+))?$")
_ORDERS_PATH = re.compile(r"^/orders/v0/orders(?:/(?P<order>[^/]+)/orderItems)?$")
_UPLOAD_PATH = re.compile(r"^/_documents/(?P<doc>[\w.-]+)$")
_SELLER = r"/_sim/sellers/(?P<tenant>[\w.-]+)"
_SKU = r"(?P<sku>[^/]+)"


class AmazonSimulator(Simulator[Seller]):
    display_name = "Amazon"
    tenant_collection = "sellers"
    tenant_kind = "seller"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # access token -> (seller, expires at)
        self._tokens: dict[str, tuple[str, float]] = {}
        self._feed_ids = itertools.count(50_001_019_000)
        self._order_ids = itertools.count(1)

    # -- Tenants ------------------------------------------------------------------------------

    def create_tenant(self, body: JSON) -> JSON:
        settings = SellerSettings.from_json(body)
        seller = Seller(settings, self.clock.time())
        self.tenants.put(seller)
        notifications.ensure_queue(seller, self.scheduler)
        if body.get("listings"):
            self.add_listings(seller.name, {"listings": body["listings"]})
        return {"seller": settings.public()}

    def tenant_state(self, seller: Seller) -> JSON:
        return {
            "seller": seller.settings.public(),
            "listings": len(seller.listings),
            "feeds": {feed.feed_id: feed.status for feed in seller.feeds.values()},
            "orders": len(seller.orders),
        }

    def update_settings(self, seller: Seller, body: JSON) -> JSON:
        with seller.lock:
            seller.settings.update(body)
            return {"seller": seller.settings.public()}

    def seed(self, seed: JSON) -> int:
        """``{"sellers": [{...seller settings, "listings": [...]}]}``."""
        sellers = seed.get("sellers", [])
        for body in sellers:
            self.create_tenant(dict(body))
        return len(sellers)

    def on_reset(self) -> None:
        self._tokens.clear()

    def control_routes(self) -> list[Route]:
        return [
            route(
                "POST", f"{_SELLER}/listings", lambda m, b, q: self.add_listings(m["tenant"], b)
            ),
            route("GET", f"{_SELLER}/listings", lambda m, b, q: self.list_listings(m["tenant"])),
            route(
                "POST",
                f"{_SELLER}/listings/{_SKU}/fba",
                lambda m, b, q: self.set_fba(m["tenant"], m["sku"], b),
            ),
            route(
                "POST",
                f"{_SELLER}/listings/{_SKU}/issues",
                lambda m, b, q: self.set_issues(m["tenant"], m["sku"], b),
            ),
            route("POST", f"{_SELLER}/process", lambda m, b, q: self.process_now(m["tenant"])),
            route("POST", f"{_SELLER}/orders", lambda m, b, q: self.place_order(m["tenant"], b)),
            route(
                "POST",
                f"{_SELLER}/orders/(?P<order>[\\w-]+)/cancel",
                lambda m, b, q: self.cancel_order(m["tenant"], m["order"], b),
            ),
            route(
                "GET",
                f"{_SELLER}/notifications",
                lambda m, b, q: self.notifications_of(m["tenant"], q),
            ),
            route(
                "POST",
                f"{_SELLER}/notifications/release",
                lambda m, b, q: self.release_notifications(m["tenant"]),
            ),
            route("GET", f"{_SELLER}/changes", lambda m, b, q: self.changes_of(m["tenant"], q)),
        ]

    # -- Fault answers ------------------------------------------------------------------------

    def error_response(self, status: int, with_body: bool) -> Response:
        if not with_body:
            return Response(status, b"")
        return Response(
            status,
            _errors(
                "InternalFailure" if status == 500 else "ServiceUnavailable",
                "We encountered an internal error. Please try again.",
            ),
        )

    def throttled_response(self, seller: Seller) -> Response:
        # §2.4: no Retry-After.
        return Response(429, QUOTA_EXCEEDED)

    def expired_token_response(self, seller: Seller) -> Response:
        return _unauthorized("The access token you provided has expired.")

    # -- API ----------------------------------------------------------------------------------

    def handle_api(self, request: Request) -> Response:
        if request.path == "/auth/o2/token":
            return self._token(request)
        upload = _UPLOAD_PATH.match(request.path)
        if upload is not None:
            return self._document_content(request, upload["doc"])
        operation, match = _operation(request)
        if operation is None or match is None:
            return Response(404, _errors("NotFound", "Resource not found."))
        seller = self._seller_of(request)
        if seller is None:
            return _unauthorized()
        entry = self.log_request(seller, request, operation=operation)
        response = self._call(seller, operation, match, request, entry)
        entry["status"] = response.status if not response.reset else None
        response.headers.setdefault("x-amzn-RequestId", secrets.token_hex(16))
        return response

    def _seller_of(self, request: Request) -> Seller | None:
        token = request.header("x-amz-access-token")
        found = self._tokens.get(token)
        if found is None:
            return None
        name, expires_at = found
        if expires_at <= self.clock.time():
            return None
        return self.tenants.get(name)

    def _call(
        self, seller: Seller, operation: str, match: re.Match[str], request: Request, entry: JSON
    ) -> Response:
        with seller.lock:
            fault = seller.faults.draw([operation])
        entry["fault"] = fault.name
        answer = self.fault_response(seller, fault)
        if answer is not None:
            return answer
        if fault.latency_s:
            time.sleep(fault.latency_s)
        rate, burst = RATE_LIMITS[operation]
        limit_header = {"x-amzn-RateLimit-Limit": f"{rate:g}"}
        with seller.lock:
            allowed = seller.take_token(operation, rate, burst, self.clock.time())
        if not allowed:
            return Response(429, QUOTA_EXCEEDED, headers=limit_header)
        if (
            operation in ("patchListingsItem", "getListingsItem")
            and match["seller"] != seller.name
        ):
            return _unauthorized("The seller id does not match the access token.")
        handler = getattr(self, f"_op_{operation}")
        response: Response = handler(seller, match, request)
        response.headers.update(limit_header)
        if fault.timeout_s and fault.timeout_applied:
            response.delay_s = fault.timeout_s
        return response

    # -- LWA ----------------------------------------------------------------------------------

    def _token(self, request: Request) -> Response:
        """§2.5: the refresh-token grant; ``expires_in`` from the seller's settings."""
        form = {k: v[0] for k, v in urllib.parse.parse_qs(request.body.decode()).items()}
        if form.get("grant_type") != "refresh_token":
            return Response(
                400,
                {"error": "unsupported_grant_type", "error_description": "Unsupported grant."},
            )
        seller = self.tenants.find(
            lambda s: (
                bool(s.settings.refresh_token)
                and hmac.compare_digest(s.settings.refresh_token, form.get("refresh_token", ""))
            )
        )
        if seller is None:
            return Response(
                400,
                {
                    "error": "invalid_grant",
                    "error_description": "The request has an invalid grant parameter : "
                    "refresh_token",
                },
            )
        entry = self.log_request(seller, request, operation="getAccessToken")
        with seller.lock:
            fault = seller.faults.draw(["getAccessToken"])
        answer = self.fault_response(seller, fault)
        if answer is not None:
            entry["status"] = answer.status
            return answer
        if form.get("client_id") != seller.settings.client_id or not hmac.compare_digest(
            form.get("client_secret", ""), seller.settings.client_secret
        ):
            entry["status"] = 401
            return Response(
                401,
                {"error": "invalid_client", "error_description": "Client authentication failed"},
            )
        token = f"Atza|{secrets.token_urlsafe(24)}"
        lifetime_s = seller.settings.token_lifetime_s
        self._tokens[token] = (seller.name, self.clock.time() + lifetime_s)
        entry["status"] = 200
        return Response(
            200,
            {
                "access_token": token,
                "token_type": "bearer",
                "expires_in": int(lifetime_s),
                "refresh_token": seller.settings.refresh_token,
            },
        )

    # -- Listings Items -----------------------------------------------------------------------

    def _marketplace_error(self, seller: Seller, request: Request) -> Response | None:
        ids = ",".join(request.query.get("marketplaceIds") or []).split(",")
        ids = [value for value in ids if value]
        if len(ids) != 1:
            # §2.2 (AM5 es): marketplaceIds takes a single value.
            return Response(
                400, _errors("InvalidInput", "marketplaceIds must contain exactly one value.")
            )
        if ids[0] != seller.settings.marketplace_id:
            return Response(400, _errors("InvalidInput", f"Invalid marketplaceIds: {ids[0]}."))
        return None

    def _op_patchListingsItem(
        self, seller: Seller, match: re.Match[str], request: Request
    ) -> Response:
        """§2.2: validate, answer ACCEPTED, apply after ``patch_apply_delay_s``."""
        bad = self._marketplace_error(seller, request)
        if bad is not None:
            return bad
        sku = urllib.parse.unquote(match["sku"])
        try:
            body = json.loads(request.body)
            patches = body["patches"]
            if not isinstance(body.get("productType"), str) or not isinstance(patches, list):
                raise ValueError
        except (ValueError, KeyError, TypeError):
            return Response(
                400, _errors("InvalidInput", "Request has missing or invalid parameters.")
            )
        submission_id = secrets.token_hex(16)
        issues: list[JSON] = []
        quantity: int | None = None
        for patch in patches:
            issue, found = _read_patch(patch)
            if issue is not None:
                issues.append(issue)
            elif found is not None:
                quantity = found
        with seller.lock:
            listing = seller.listings.get(sku)
            if listing is None:
                issues.append(
                    {
                        "code": "4000001",
                        "message": f"The SKU '{sku}' does not match any listing of this seller "
                        "in the marketplace.",
                        "severity": "ERROR",
                        "attributeNames": [],
                    }
                )
            if issues:
                return Response(
                    200,
                    {
                        "sku": sku,
                        "status": "INVALID",
                        "submissionId": submission_id,
                        "issues": issues,
                    },
                )
            assert listing is not None
            if (request.query.get("mode") or [""])[0] == "VALIDATION_PREVIEW":
                return Response(
                    200,
                    {"sku": sku, "status": "VALID", "submissionId": submission_id, "issues": []},
                )
            if quantity is not None:
                now = self.clock.time()
                dropped = seller.faults.take_drop(["patchListingsItem"])
                due_at = now + seller.settings.patch_apply_delay_s
                listing.pending.append(Patch(submission_id, quantity, due_at, dropped))
                self.scheduler.call_at(due_at, lambda: self._settle_seller(seller))
        return Response(
            200, {"sku": sku, "status": "ACCEPTED", "submissionId": submission_id, "issues": []}
        )

    def _op_getListingsItem(
        self, seller: Seller, match: re.Match[str], request: Request
    ) -> Response:
        bad = self._marketplace_error(seller, request)
        if bad is not None:
            return bad
        sku = urllib.parse.unquote(match["sku"])
        included = set(",".join(request.query.get("includedData") or ["summaries"]).split(","))
        self._settle_seller(seller)
        with seller.lock:
            listing = seller.listings.get(sku)
            if listing is None:
                return Response(
                    404,
                    _errors(
                        "NotFound",
                        f"SKU '{sku}' not found in marketplace {seller.settings.marketplace_id}",
                    ),
                )
            body: JSON = {"sku": sku}
            if "summaries" in included:
                body["summaries"] = [
                    {
                        "marketplaceId": seller.settings.marketplace_id,
                        "asin": listing.asin,
                        "productType": listing.product_type,
                        "status": ["BUYABLE"] if listing.quantity > 0 else ["DISCOVERABLE"],
                        "itemName": f"Item {sku}",
                    }
                ]
            if "attributes" in included:
                body["attributes"] = {
                    "fulfillment_availability": [
                        {"fulfillment_channel_code": "DEFAULT", "quantity": listing.quantity}
                    ]
                }
            if "issues" in included:
                body["issues"] = list(listing.issues)
            if "fulfillmentAvailability" in included:
                body["fulfillmentAvailability"] = [
                    {"fulfillmentChannelCode": "DEFAULT", "quantity": listing.quantity}
                ]
                if any(listing.fba.values()):
                    body["fulfillmentAvailability"].append(
                        {
                            "fulfillmentChannelCode": "AMAZON_NA",
                            "quantity": listing.fba["fulfillable"],
                        }
                    )
        return Response(200, body)

    # -- Feeds --------------------------------------------------------------------------------

    def _document_url(self, seller: Seller, request: Request, document_id: str) -> str:
        # The pre-signed S3 URL (§2.2), served by the simulator itself.
        signature = secrets.token_hex(8)
        base = seller.settings.document_base_url.rstrip("/") or f"http://{request.host}"
        return f"{base}/_documents/{document_id}?X-Amz-Signature={signature}"

    def _op_createFeedDocument(
        self, seller: Seller, match: re.Match[str], request: Request
    ) -> Response:
        if request.method != "POST" or match["doc"]:
            return Response(404, _errors("NotFound", "Resource not found."))
        try:
            content_type = str(json.loads(request.body)["contentType"])
        except (ValueError, KeyError, TypeError):
            return Response(400, _errors("InvalidInput", "contentType is required."))
        document_id = f"amzn1.tortuga.4.na.{secrets.token_hex(12)}"
        with seller.lock:
            seller.documents[document_id] = Document(document_id, content_type)
        return Response(
            201,
            {
                "feedDocumentId": document_id,
                "url": self._document_url(seller, request, document_id),
            },
        )

    def _op_getFeedDocument(
        self, seller: Seller, match: re.Match[str], request: Request
    ) -> Response:
        with seller.lock:
            document = seller.documents.get(match["doc"] or "")
        if document is None:
            return Response(404, _errors("NotFound", "Feed document not found."))
        return Response(
            200,
            {
                "feedDocumentId": document.document_id,
                "url": self._document_url(seller, request, document.document_id),
            },
        )

    def _document_content(self, request: Request, document_id: str) -> Response:
        """The pre-signed URL: PUT uploads a feed document, GET reads a report."""
        seller = self.tenants.find(lambda s: document_id in s.documents)
        if seller is None or "X-Amz-Signature" not in request.query:
            return Response(403, b"<Error><Code>AccessDenied</Code></Error>")
        with seller.lock:
            document = seller.documents[document_id]
            if request.method == "PUT":
                document.content = request.body
                document.uploaded = True
                return Response(200, b"")
            if request.method == "GET" and document.uploaded:
                return Response(200, document.content)
        return Response(404, b"<Error><Code>NoSuchKey</Code></Error>")

    def _op_createFeed(self, seller: Seller, match: re.Match[str], request: Request) -> Response:
        if request.method != "POST" or match["feed"]:
            return Response(404, _errors("NotFound", "Resource not found."))
        try:
            body = json.loads(request.body)
            feed_type = str(body["feedType"])
            marketplace_ids = [str(value) for value in body["marketplaceIds"]]
            document_id = str(body["inputFeedDocumentId"])
        except (ValueError, KeyError, TypeError):
            return Response(
                400, _errors("InvalidInput", "Request has missing or invalid parameters.")
            )
        now = self.clock.time()
        with seller.lock:
            document = seller.documents.get(document_id)
            if document is None or not document.uploaded:
                return Response(400, _errors("InvalidInput", "Invalid inputFeedDocumentId."))
            if feed_type == LISTINGS_FEED and not seller.take_token(
                "feed:" + LISTINGS_FEED, *LISTINGS_FEED_RATE, now
            ):
                return Response(429, QUOTA_EXCEEDED)
            feed = Feed(
                feed_id=str(next(self._feed_ids)),
                feed_type=feed_type,
                marketplace_ids=marketplace_ids,
                input_document_id=document_id,
                created_at=now,
                created_iso=self.clock.iso(),
            )
            seller.feeds[feed.feed_id] = feed
        due = now + seller.settings.feed_queue_s + seller.settings.feed_processing_s
        self.scheduler.call_at(due, lambda: self._settle_seller(seller))
        return Response(202, {"feedId": feed.feed_id})

    def _op_getFeed(self, seller: Seller, match: re.Match[str], request: Request) -> Response:
        self._settle_seller(seller)
        with seller.lock:
            feed = seller.feeds.get(match["feed"] or "")
            if feed is None:
                return Response(404, _errors("NotFound", "Feed not found."))
            return Response(200, feed.as_json())

    def _op_cancelFeed(self, seller: Seller, match: re.Match[str], request: Request) -> Response:
        self._settle_seller(seller)
        with seller.lock:
            feed = seller.feeds.get(match["feed"] or "")
            if feed is None:
                return Response(404, _errors("NotFound", "Feed not found."))
            # §6: cancelFeed only works while IN_QUEUE.
            if feed.status != "IN_QUEUE":
                return Response(
                    400,
                    _errors("InvalidInput", "The feed is not IN_QUEUE: it cannot be cancelled."),
                )
            feed.status = "CANCELLED"
            feed.done_iso = self.clock.iso()
        return Response(200, b"")

    # -- FBA Inventory ------------------------------------------------------------------------

    def _op_getInventorySummaries(
        self, seller: Seller, match: re.Match[str], request: Request
    ) -> Response:
        """§2.3: summaries, ``details`` on/off, ``sellerSkus`` (at most 50), ``nextToken``."""
        query = {name: values[0] for name, values in request.query.items() if values}
        if query.get("granularityType") != "Marketplace" or not query.get("granularityId"):
            return Response(
                400, _errors("InvalidInput", "granularityType and granularityId are required.")
            )
        wanted = [s for s in query.get("sellerSkus", "").split(",") if s]
        if len(wanted) > 50:
            return Response(400, _errors("InvalidInput", "At most 50 sellerSkus."))
        details = query.get("details", "false").lower() == "true"
        try:
            start = int(query.get("nextToken") or 0)
        except ValueError:
            return Response(400, _errors("InvalidInput", "Invalid nextToken."))
        since_iso = query.get("startDateTime", "")
        with seller.lock:
            listings = [
                listing
                for listing in seller.listings.values()
                if (not wanted or listing.sku in wanted)
                and (not since_iso or (listing.fba_updated_at or "") >= since_iso)
            ]
            size = max(1, seller.settings.summaries_page_size)
            page = listings[start : start + size]
            summaries = []
            for listing in page:
                summary: JSON = {
                    "asin": listing.asin,
                    "fnSku": listing.fnsku,
                    "sellerSku": listing.sku,
                    "condition": "NewItem",
                    "lastUpdatedTime": listing.fba_updated_at or self.clock.iso(),
                    "productName": f"Item {listing.sku}",
                    "totalQuantity": fba_total(listing),
                }
                if details:
                    summary["inventoryDetails"] = fba_details(listing)
                summaries.append(summary)
        body: JSON = {
            "payload": {
                "granularity": {
                    "granularityType": "Marketplace",
                    "granularityId": query["granularityId"],
                },
                "inventorySummaries": summaries,
            }
        }
        if start + size < len(listings):
            body["pagination"] = {"nextToken": str(start + size)}
        return Response(200, body)

    # -- Orders -------------------------------------------------------------------------------

    def _op_getOrders(self, seller: Seller, match: re.Match[str], request: Request) -> Response:
        query = {name: values[0] for name, values in request.query.items() if values}
        after = query.get("LastUpdatedAfter") or query.get("CreatedAfter")
        if not query.get("MarketplaceIds") or not after:
            return Response(
                400,
                _errors(
                    "InvalidInput",
                    "MarketplaceIds and CreatedAfter or LastUpdatedAfter are required.",
                ),
            )
        try:
            after_s = dt.datetime.fromisoformat(after.replace("Z", "+00:00")).timestamp()
            start = int(query.get("NextToken") or 0)
        except ValueError:
            return Response(400, _errors("InvalidInput", "Invalid date or NextToken."))
        by_update = "LastUpdatedAfter" in query
        with seller.lock:
            orders = sorted(
                (
                    order
                    for order in seller.orders.values()
                    if (order.updated_at if by_update else _epoch(order.purchase_iso)) >= after_s
                ),
                key=lambda order: (order.updated_at, order.order_id),
            )
            size = max(1, seller.settings.orders_page_size)
            page = [self._order_json(seller, order) for order in orders[start : start + size]]
        payload: JSON = {"Orders": page}
        if start + size < len(orders):
            payload["NextToken"] = str(start + size)
        else:
            payload["LastUpdatedBefore"] = self.clock.iso()
        return Response(200, {"payload": payload})

    def _op_getOrderItems(
        self, seller: Seller, match: re.Match[str], request: Request
    ) -> Response:
        with seller.lock:
            order = seller.orders.get(match["order"] or "")
            if order is None:
                return Response(404, _errors("InvalidInput", "Invalid AmazonOrderId."))
            items = [
                {
                    "ASIN": item.asin,
                    "SellerSKU": item.sku,
                    "OrderItemId": item.order_item_id,
                    "Title": f"Item {item.sku}",
                    "QuantityOrdered": item.quantity,
                    "QuantityShipped": 0,
                }
                for item in order.items
            ]
        return Response(200, {"payload": {"AmazonOrderId": order.order_id, "OrderItems": items}})

    def _order_json(self, seller: Seller, order: Order) -> JSON:
        return {
            "AmazonOrderId": order.order_id,
            "PurchaseDate": order.purchase_iso,
            "LastUpdateDate": order.updated_iso,
            "OrderStatus": order.status,
            "FulfillmentChannel": order.fulfillment_channel,
            "MarketplaceId": seller.settings.marketplace_id,
            "NumberOfItemsShipped": 0,
            "NumberOfItemsUnshipped": sum(item.quantity for item in order.items),
            "IsBuyerRequestedCancel": order.buyer_requested_cancel,
        }

    # -- Asynchronous processing --------------------------------------------------------------

    def _settle_seller(self, seller: Seller) -> None:
        """Apply the patches and run the feeds that are due (idempotent; any thread)."""
        outgoing: list[JSON] = []
        with seller.lock:
            if not seller.alive:
                return
            now = self.clock.time()
            for listing in seller.listings.values():
                due = [patch for patch in listing.pending if patch.due_at <= now]
                for patch in due:
                    listing.pending.remove(patch)
                    if patch.dropped:
                        if seller.settings.issue_on_drop:
                            listing.issues.append(_drop_issue())
                        continue
                    self._apply(seller, listing, patch.quantity, "patch", patch.submission_id)
            for feed in seller.feeds.values():
                outgoing += self._advance_feed(seller, feed, now)
            for body in outgoing:
                notifications.publish(seller, self.scheduler, body)

    def _apply(
        self, seller: Seller, listing: Listing, quantity: int, source: str, ref: str
    ) -> None:
        delta = quantity - listing.quantity
        listing.quantity = quantity
        if source in ("patch", "feed"):
            # A quantity that went through clears the listing's issues about it.
            listing.issues = [
                issue
                for issue in listing.issues
                if "fulfillment_availability" not in (issue.get("attributeNames") or [])
            ]
        listing.writes_applied += 1
        seller.changes.append(
            {
                "time": self.clock.time(),
                "sku": listing.sku,
                "quantity": quantity,
                "delta": delta,
                "source": source,
                "reference": ref,
            }
        )

    def _advance_feed(self, seller: Seller, feed: Feed, now: float) -> list[JSON]:
        """Move a feed along IN_QUEUE → IN_PROGRESS → DONE | FATAL (lock held); the
        FEED_PROCESSING_FINISHED notification once it ends."""
        if feed.status in ("DONE", "FATAL", "CANCELLED"):
            return []
        started_at = feed.created_at + seller.settings.feed_queue_s
        if now < started_at:
            return []
        if feed.status == "IN_QUEUE":
            feed.status = "IN_PROGRESS"
            feed.started_iso = self.clock.iso()
        if now < started_at + seller.settings.feed_processing_s:
            return []
        report = self._process_feed(seller, feed)
        result = Document(
            f"amzn1.tortuga.4.na.{secrets.token_hex(12)}",
            "application/json",
            json.dumps(report).encode(),
            uploaded=True,
        )
        seller.documents[result.document_id] = result
        feed.result_document_id = result.document_id
        feed.status = "FATAL" if feed.fatal else "DONE"
        feed.done_iso = self.clock.iso()
        payload = {
            "feedProcessingFinishedNotification": {
                "sellerId": seller.name,
                "feedId": feed.feed_id,
                "feedType": feed.feed_type,
                "processingStatus": feed.status,
                "resultFeedDocumentId": feed.result_document_id,
            }
        }
        return [
            notifications.envelope(seller, "FEED_PROCESSING_FINISHED", payload, self.clock.iso())
        ]

    def _process_feed(self, seller: Seller, feed: Feed) -> JSON:
        """Apply a JSON_LISTINGS_FEED's messages; the processing report (§2.2 [M] shape)."""
        header = {"sellerId": seller.name, "version": "2.0", "feedId": feed.feed_id}
        if feed.feed_type in LEGACY_FEED_TYPES or feed.feed_type != LISTINGS_FEED:
            feed.fatal = True
            return {
                "header": header,
                "issues": [
                    {
                        "code": "100001",
                        "severity": "ERROR",
                        "message": f"The feed type {feed.feed_type} is no longer supported.",
                    }
                ],
                "summary": {
                    "errors": 1,
                    "warnings": 0,
                    "messagesProcessed": 0,
                    "messagesAccepted": 0,
                    "messagesInvalid": 0,
                },
            }
        try:
            document = json.loads(seller.documents[feed.input_document_id].content)
            messages = document["messages"]
            if not isinstance(messages, list) or len(messages) > MAX_FEED_MESSAGES:
                raise ValueError
        except (ValueError, KeyError, TypeError):
            feed.fatal = True
            return {
                "header": header,
                "issues": [
                    {
                        "code": "100002",
                        "severity": "ERROR",
                        "message": "The feed document is not a valid JSON_LISTINGS_FEED.",
                    }
                ],
                "summary": {
                    "errors": 1,
                    "warnings": 0,
                    "messagesProcessed": 0,
                    "messagesAccepted": 0,
                    "messagesInvalid": 0,
                },
            }
        issues: list[JSON] = []
        invalid = 0
        for message in messages:
            message_id = message.get("messageId") if isinstance(message, dict) else None
            found = self._feed_message(seller, feed, message)
            if found:
                invalid += 1
                issues.extend({"messageId": message_id, **issue} for issue in found)
        return {
            "header": header,
            "issues": issues,
            "summary": {
                "errors": len(issues),
                "warnings": 0,
                "messagesProcessed": len(messages),
                "messagesAccepted": len(messages) - invalid,
                "messagesInvalid": invalid,
            },
        }

    def _feed_message(self, seller: Seller, feed: Feed, message: Any) -> list[JSON]:
        """One message applied; its issues (none when accepted)."""
        if not isinstance(message, dict) or message.get("operationType") not in (
            "PATCH",
            "PARTIAL_UPDATE",
        ):
            return [
                {
                    "code": "4000003",
                    "severity": "ERROR",
                    "message": "Unsupported or missing operationType.",
                }
            ]
        sku = str(message.get("sku", ""))
        listing = seller.listings.get(sku)
        if listing is None:
            return [
                {
                    "code": "4000001",
                    "severity": "ERROR",
                    "message": f"The SKU '{sku}' does not match any listing of this seller.",
                }
            ]
        quantity = None
        for patch in message.get("patches") or []:
            issue, found = _read_patch(patch)
            if issue is not None:
                return [{k: v for k, v in issue.items() if k != "attributeNames"}]
            if found is not None:
                quantity = found
        if quantity is not None:
            self._apply(seller, listing, quantity, "feed", feed.feed_id)
        return []

    # -- Control ------------------------------------------------------------------------------

    def add_listings(self, name: str, body: JSON) -> JSON:
        seller = self.tenants.require(name)
        raw_listings = body.get("listings")
        if not isinstance(raw_listings, list):
            raise ControlError(400, "'listings' must be a list.")
        added = []
        with seller.lock:
            for index, raw in enumerate(raw_listings):
                try:
                    sku = str(raw["sku"])
                    listing = Listing(
                        sku=sku,
                        asin=str(raw.get("asin") or f"B0{abs(hash(sku)) % 10**8:08d}"),
                        fnsku=str(raw.get("fnsku") or f"X0{index:08d}"),
                        quantity=int(raw.get("quantity", 0)),
                    )
                    for field_name, value in (raw.get("fba") or {}).items():
                        if field_name not in FBA_FIELDS:
                            raise ValueError(f"unknown FBA field {field_name}")
                        listing.fba[field_name] = int(value)
                except (KeyError, TypeError, ValueError) as error:
                    raise ControlError(400, f"Bad listing {raw!r}: {error}") from None
                listing.fba_updated_at = self.clock.iso()
                seller.listings[sku] = listing
                added.append(listing.as_json())
        return {"listings": added}

    def list_listings(self, name: str) -> JSON:
        seller = self.tenants.require(name)
        self._settle_seller(seller)
        with seller.lock:
            return {"listings": [listing.as_json() for listing in seller.listings.values()]}

    def set_fba(self, name: str, sku: str, body: JSON) -> JSON:
        """Amazon moved FBA stock: FBA_INVENTORY_AVAILABILITY_CHANGES goes out (§2.1)."""
        seller = self.tenants.require(name)
        with seller.lock:
            listing = seller.listings.get(sku)
            if listing is None:
                raise ControlError(404, f"No listing {sku!r}.")
            for field_name, value in body.items():
                if field_name not in FBA_FIELDS or not isinstance(value, int):
                    raise ControlError(400, f"Bad FBA field {field_name!r}.")
                listing.fba[field_name] = value
            listing.fba_updated_at = self.clock.iso()
            payload = {
                "SellerId": seller.name,
                "FNSKU": listing.fnsku,
                "ASIN": listing.asin,
                "SKU": listing.sku,
                "FulfillmentInventoryByMarketplace": [
                    {
                        "MarketplaceId": seller.settings.marketplace_id,
                        "ItemName": f"Item {listing.sku}",
                        "FulfillmentInventory": fba_notification_inventory(listing),
                    }
                ],
            }
            sent = notifications.publish(
                seller,
                self.scheduler,
                notifications.envelope(
                    seller, "FBA_INVENTORY_AVAILABILITY_CHANGES", payload, self.clock.iso()
                ),
            )
            return {"listing": listing.as_json(), "notification": sent}

    def set_issues(self, name: str, sku: str, body: JSON) -> JSON:
        seller = self.tenants.require(name)
        with seller.lock:
            listing = seller.listings.get(sku)
            if listing is None:
                raise ControlError(404, f"No listing {sku!r}.")
            listing.issues = list(body.get("issues") or [])
            return {"listing": listing.as_json()}

    def process_now(self, name: str) -> JSON:
        """Everything waiting is due now: patches apply, feeds finish."""
        seller = self.tenants.require(name)
        with seller.lock:
            now = self.clock.time()
            for listing in seller.listings.values():
                for patch in listing.pending:
                    patch.due_at = min(patch.due_at, now)
            for feed in seller.feeds.values():
                total_s = seller.settings.feed_queue_s + seller.settings.feed_processing_s
                feed.created_at = min(feed.created_at, now - total_s)
        self._settle_seller(seller)
        return self.tenant_state(seller)

    def place_order(self, name: str, body: JSON) -> JSON:
        seller = self.tenants.require(name)
        raw_lines = body.get("lines")
        if not isinstance(raw_lines, list) or not raw_lines:
            raise ControlError(400, "'lines' must be a non-empty list.")
        channel_code = str(body.get("fulfillment_channel", "MFN"))
        if channel_code not in ("MFN", "AFN"):
            raise ControlError(400, "'fulfillment_channel' is MFN or AFN.")
        with seller.lock:
            number = next(self._order_ids)
            order_id = f"{900 + number % 100:03d}-{number:07d}-{secrets.randbelow(10**7):07d}"
            items = []
            for index, raw in enumerate(raw_lines):
                try:
                    sku, quantity = str(raw["sku"]), int(raw["quantity"])
                except (KeyError, TypeError, ValueError):
                    raise ControlError(400, f"Bad line {raw!r}.") from None
                listing = seller.listings.get(sku)
                if listing is None or quantity <= 0:
                    raise ControlError(400, f"Cannot order {quantity} of {sku!r}.")
                if channel_code == "MFN":
                    self._apply(seller, listing, listing.quantity - quantity, "order", order_id)
                else:
                    listing.fba["fulfillable"] -= quantity
                    listing.fba["reserved_pending_customer_order"] += quantity
                    listing.fba_updated_at = self.clock.iso()
                items.append(OrderItem(f"{number:07d}{index:07d}", sku, listing.asin, quantity))
            now_iso = self.clock.iso()
            order = Order(
                order_id=order_id,
                purchase_iso=now_iso,
                updated_at=self.clock.time(),
                updated_iso=now_iso,
                fulfillment_channel=channel_code,
                items=items,
            )
            seller.orders[order_id] = order
            sent = notifications.publish(
                seller,
                self.scheduler,
                self._order_change(seller, order, "Order Status Changed"),
                duplicates=int(body.get("duplicates", 0)),
                deliver=bool(body.get("deliver", True)),
            )
        return {
            "order_id": order_id,
            "order_item_ids": [item.order_item_id for item in items],
            "notification": sent,
        }

    def cancel_order(self, name: str, order_id: str, body: JSON) -> JSON:
        seller = self.tenants.require(name)
        with seller.lock:
            order = seller.orders.get(order_id)
            if order is None:
                raise ControlError(404, f"No order {order_id}.")
            if order.status == "Canceled":
                raise ControlError(409, f"Order {order_id} is already cancelled.")
            order.status = "Canceled"
            order.buyer_requested_cancel = bool(body.get("buyer_requested", False))
            order.updated_at, order.updated_iso = self.clock.time(), self.clock.iso()
            for item in order.items:
                listing = seller.listings.get(item.sku)
                if listing is not None and order.fulfillment_channel == "MFN":
                    self._apply(
                        seller, listing, listing.quantity + item.quantity, "cancel", order_id
                    )
            sent = notifications.publish(
                seller,
                self.scheduler,
                self._order_change(seller, order, "Order Canceled"),
                duplicates=int(body.get("duplicates", 0)),
                deliver=bool(body.get("deliver", True)),
            )
        return {"order_id": order_id, "notification": sent}

    def _order_change(self, seller: Seller, order: Order, reason: str) -> JSON:
        """§2.1: ORDER_CHANGE, order level, with its OrderItems."""
        payload = {
            "OrderChangeNotification": {
                "NotificationLevel": "OrderLevel",
                "SellerId": seller.name,
                "AmazonOrderId": order.order_id,
                "OrderChangeType": "BuyerRequestedChange"
                if order.buyer_requested_cancel
                else "OrderStatusChange",
                "OrderChangeTrigger": {
                    "TimeOfOrderChange": order.updated_iso,
                    "ChangeReason": reason,
                },
                "Summary": {
                    "MarketplaceId": seller.settings.marketplace_id,
                    "OrderStatus": order.status,
                    "FulfillmentType": order.fulfillment_channel,
                    "OrderType": "StandardOrder",
                    "PurchaseDate": order.purchase_iso,
                    "DestinationPostalCode": "48110",
                    "IsBuyerRequestedCancel": order.buyer_requested_cancel,
                    "OrderItems": [
                        {
                            "OrderItemId": item.order_item_id,
                            "SellerSKU": item.sku,
                            "SupplySourceId": None,
                            "OrderItemStatus": order.status,
                            "Quantity": item.quantity,
                            "QuantityShipped": 0,
                        }
                        for item in order.items
                    ],
                },
            }
        }
        return notifications.envelope(seller, "ORDER_CHANGE", payload, order.updated_iso)

    def notifications_of(self, name: str, query: dict[str, list[str]]) -> JSON:
        seller = self.tenants.require(name)
        with seller.lock:
            return {"notifications": seller.notifications.since(since(query))}

    def release_notifications(self, name: str) -> JSON:
        seller = self.tenants.require(name)
        with seller.lock:
            seller.emitter.hold_next = 0
            return {"released": notifications.release(seller, self.scheduler)}

    def changes_of(self, name: str, query: dict[str, list[str]]) -> JSON:
        seller = self.tenants.require(name)
        self._settle_seller(seller)
        with seller.lock:
            return {"changes": seller.changes.since(since(query))}


def _operation(request: Request) -> tuple[str | None, re.Match[str] | None]:
    """The SP-API operation a request names, with its path match."""
    method, path = request.method, request.path
    if (match := _LISTING_PATH.match(path)) is not None:
        return {"PATCH": "patchListingsItem", "GET": "getListingsItem"}.get(method), match
    if (match := _FEED_DOCS_PATH.match(path)) is not None:
        if method == "POST" and not match["doc"]:
            return "createFeedDocument", match
        return ("getFeedDocument", match) if method == "GET" and match["doc"] else (None, None)
    if (match := _FEEDS_PATH.match(path)) is not None:
        if method == "POST" and not match["feed"]:
            return "createFeed", match
        if match["feed"]:
            return {"GET": "getFeed", "DELETE": "cancelFeed"}.get(method), match
        return None, None
    if path == "/fba/inventory/v1/summaries" and method == "GET":
        return "getInventorySummaries", re.match("", "")
    if (match := _ORDERS_PATH.match(path)) is not None and method == "GET":
        return ("getOrderItems" if match["order"] else "getOrders"), match
    return None, None


def _read_patch(patch: Any) -> tuple[JSON | None, int | None]:
    """One JSON patch of fulfillment availability: (an issue, or the DEFAULT quantity set)."""
    if not isinstance(patch, dict) or patch.get("op") not in ("add", "replace", "merge", "delete"):
        return _issue("4000003", "The patch operation is not add, replace, merge or delete."), None
    if patch.get("path") != FULFILLMENT_AVAILABILITY:
        # §2.2: only top-level attributes can be patched; others are accepted, not modelled.
        return None, None
    if patch["op"] == "delete":
        return None, 0
    values = patch.get("value")
    if not isinstance(values, list) or not values:
        return _issue("4000003", "fulfillment_availability needs a value."), None
    quantity = None
    for value in values:
        # §2.2 (AM6): merge needs the selector fulfillment_channel_code.
        if not isinstance(value, dict) or "fulfillment_channel_code" not in value:
            return _issue(
                "4000003", "The fulfillment_channel_code selector is required to merge."
            ), None
        if value["fulfillment_channel_code"] != "DEFAULT":
            # §2.6: FBA quantity is Amazon's; patching applies to DEFAULT (MFN) only.
            return _issue("90220", "Only the DEFAULT fulfillment channel takes a quantity."), None
        raw = value.get("quantity")
        if not isinstance(raw, int) or isinstance(raw, bool) or raw < 0:
            return _issue("4000003", "quantity must be a non-negative integer."), None
        quantity = raw
    return None, quantity


def _issue(code: str, message: str) -> JSON:
    return {
        "code": code,
        "message": message,
        "severity": "ERROR",
        "attributeNames": ["fulfillment_availability"],
    }


def _drop_issue() -> JSON:
    return _issue(
        "18027", "The quantity update could not be applied to this listing; submit it again."
    )


def _epoch(iso: str) -> float:
    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
