"""A reference platform unlike Shopify: asynchronous writes, a notification queue, orders
whose notifications carry no lines.

No registered platform has these yet, so this one exercises the pipeline's handling of
them: a real HTTP server (``ReferencePlatform``) and a connector for it built on the same
base class as every platform's. The contract suite runs the same cases for each
registered connector that declares the capabilities.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from channels.connectors import http
from channels.connectors.base import ChannelError, Connector
from channels.connectors.types import (
    Capability,
    ItemResult,
    ItemStatus,
    ListingRef,
    MessageKind,
    MessageLine,
    PulledNotification,
    QuantityUpdate,
    SubmissionRef,
    WebhookMessage,
    WebhookParseError,
)

PLATFORM = "reference"


class ReferencePlatform(ThreadingHTTPServer):
    """Feeds are accepted (202) and stay IN_PROGRESS until ``process`` applies them; order
    events wait on a queue (``/queue``) until acknowledged, naming the order only."""

    daemon_threads = True

    def __init__(self, skus: Sequence[str]) -> None:
        super().__init__(("127.0.0.1", 0), _FeedHandler)
        self.lock = threading.Lock()
        self.quantities: dict[str, int] = dict.fromkeys(skus, 0)
        self.feeds: dict[str, dict[str, Any]] = {}
        self.orders: dict[str, list[dict[str, Any]]] = {}
        self.queue: dict[str, dict[str, Any]] = {}
        self.acknowledged: list[str] = []

    def place_order(self, order_id: str, lines: list[dict[str, Any]], *, copies: int = 1) -> None:
        """An order, announced on the queue (``copies`` times: queues deliver at least once)."""
        with self.lock:
            self.orders[order_id] = lines
            for copy in range(copies):
                self.queue[f"{order_id}-{copy}"] = {
                    "messageId": f"msg-{order_id}",
                    "type": "ORDER_CREATED",
                    "orderId": order_id,
                }

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def process(self) -> None:
        with self.lock:
            for feed in self.feeds.values():
                if feed["status"] == "DONE":
                    continue
                for item in feed["items"]:
                    if item["sku"] in self.quantities:
                        self.quantities[item["sku"]] = item["quantity"]
                        item["status"] = "SUCCESS"
                    else:
                        item["status"] = "ERROR"
                        item["message"] = f"Unknown SKU {item['sku']}."
                feed["status"] = "DONE"


class _FeedHandler(BaseHTTPRequestHandler):
    server: ReferencePlatform

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path == "/queue/ack":
            with self.server.lock:
                for handle in body["handles"]:
                    self.server.queue.pop(handle, None)
                    self.server.acknowledged.append(handle)
            self._answer(200, {})
            return
        with self.server.lock:
            feed_id = f"F{len(self.server.feeds) + 1}"
            self.server.feeds[feed_id] = {
                "status": "IN_PROGRESS",
                "items": [
                    {"sku": item["sku"], "quantity": item["quantity"], "status": "PENDING"}
                    for item in body["items"]
                ],
            }
        self._answer(202, {"feedId": feed_id})

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        with self.server.lock:
            if parts.path == "/queue":
                waiting = list(self.server.queue.items())[: int(parse_qs(parts.query)["max"][0])]
                self._answer(200, {"messages": [{"handle": h, **m} for h, m in waiting]})
                return
            if parts.path.startswith("/orders/"):
                lines = self.server.orders.get(parts.path.removeprefix("/orders/"))
                self._answer(404, {}) if lines is None else self._answer(200, {"lines": lines})
                return
            if parts.path.startswith("/feeds/"):
                feed = self.server.feeds.get(parts.path.removeprefix("/feeds/"))
                self._answer(404, {}) if feed is None else self._answer(200, feed)
                return
            skus = parse_qs(parts.query).get("sku", [""])[0].split(",")
            self._answer(
                200,
                {
                    "items": [
                        {"sku": sku, "quantity": self.server.quantities[sku]}
                        for sku in skus
                        if sku in self.server.quantities
                    ]
                },
            )


class ReferencePlatformConnector(Connector):
    """Writes are feeds (every item comes back PENDING with the feed id); events are pulled
    from the queue, and an order's lines fetched."""

    platform = PLATFORM
    capabilities = frozenset(
        {Capability.ASYNC_WRITES, Capability.QUEUE_NOTIFICATIONS, Capability.ORDER_LOOKUP}
    )
    identifier_order = ("external_sku",)
    submission_poll_interval_s = 0.0
    max_notifications_per_pull = 2

    def _get(self, path: str, **params: str) -> dict[str, Any]:
        response = http.send(
            "GET",
            f"{self.channel.api_base_url}{path}",
            platform_name="Reference platform",
            api_domains=(),
            read_timeout_s=5,
            headers={},
            params=params,
        )
        if response.status_code != 200:
            raise ChannelError(f"Reference platform answered HTTP {response.status_code}.")
        return response.json()

    def _send_batch(self, updates: Sequence[QuantityUpdate]) -> list[ItemResult]:
        response = http.send(
            "POST",
            f"{self.channel.api_base_url}/feeds",
            platform_name="Reference platform",
            api_domains=(),
            read_timeout_s=5,
            headers={},
            json={"items": [{"sku": u.external_id, "quantity": u.quantity} for u in updates]},
        )
        if response.status_code != 202:
            raise ChannelError(f"Reference platform answered HTTP {response.status_code}.")
        feed_id = response.json()["feedId"]
        return [
            ItemResult(update.listing_id, ItemStatus.PENDING, submission_id=feed_id)
            for update in updates
        ]

    def read_submissions(self, submissions: Sequence[SubmissionRef]) -> list[ItemResult]:
        feeds = {
            ref.submission_id: self._get(f"/feeds/{ref.submission_id}") for ref in submissions
        }
        results = []
        for ref in submissions:
            item = next(
                i for i in feeds[ref.submission_id]["items"] if i["sku"] == ref.external_id
            )
            status = {
                "SUCCESS": ItemStatus.APPLIED,
                "ERROR": ItemStatus.REJECTED,
            }.get(item["status"], ItemStatus.PENDING)
            results.append(ItemResult(ref.listing_id, status, item.get("message", "")))
        return results

    def _read_batch(self, listings: Sequence[ListingRef]) -> dict[int, int | None]:
        found = {
            item["sku"]: item["quantity"]
            for item in self._get("/inventory", sku=",".join(ref.external_id for ref in listings))[
                "items"
            ]
        }
        return {ref.listing_id: found.get(ref.external_id) for ref in listings}

    def pull_notifications(self, *, max_messages: int) -> list[PulledNotification]:
        return [
            PulledNotification(
                topic=message["type"],
                dedupe_key=message["messageId"],
                body=json.dumps({"orderId": message["orderId"]}).encode(),
                receipt_handle=message["handle"],
            )
            for message in self._get("/queue", max=str(max_messages))["messages"]
        ]

    def acknowledge_notifications(self, receipt_handles: Sequence[str]) -> None:
        http.send(
            "POST",
            f"{self.channel.api_base_url}/queue/ack",
            platform_name="Reference platform",
            api_domains=(),
            read_timeout_s=5,
            headers={},
            json={"handles": list(receipt_handles)},
        )

    def parse_webhook(self, topic: str, body: bytes) -> WebhookMessage:
        if topic != "ORDER_CREATED":
            return WebhookMessage(kind=MessageKind.IGNORED, reference="")
        try:
            reference = str(json.loads(body)["orderId"])
        except (ValueError, KeyError, TypeError) as error:
            raise WebhookParseError(f"Not an order event: {error}") from None
        return WebhookMessage(kind=MessageKind.ORDER_PLACED, reference=reference)

    def fetch_order(self, reference: str) -> WebhookMessage:
        lines = self._get(f"/orders/{reference}")["lines"]
        return WebhookMessage(
            kind=MessageKind.ORDER_PLACED,
            reference=reference,
            lines=tuple(
                MessageLine(
                    reference=str(index),
                    quantity=int(line["quantity"]),
                    identifiers={"sku": line["sku"]},
                )
                for index, line in enumerate(lines)
            ),
        )
