"""Asynchronous writes through the pipeline: submit, wait as pending, settle.

No registered platform writes asynchronously yet, so a minimal feed platform stands in:
a real HTTP server (``FeedPlatform``) that accepts a feed at once and applies it only when
told, and a connector for it built on the same base class as every platform's. The
platform contract suite runs the same case for each registered connector that declares
``Capability.ASYNC_WRITES``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from channels.connectors import http
from channels.connectors.base import ChannelError, Connector
from channels.connectors.registry import CONNECTORS
from channels.connectors.types import (
    Capability,
    ItemResult,
    ItemStatus,
    ListingRef,
    QuantityUpdate,
    SubmissionRef,
)
from channels.models import (
    Channel,
    DeadLetter,
    Listing,
    ListingSyncState,
    PendingPush,
    PushAttempt,
    SubmittedWrite,
)
from channels.pipeline import push, ratelimit
from reconciliation import services as reconciliation
from reconciliation.models import Discrepancy
from tests import factories

PLATFORM = "feedtest"


class FeedPlatform(ThreadingHTTPServer):
    """Feeds are accepted (202) and stay IN_PROGRESS until ``process`` applies them."""

    daemon_threads = True

    def __init__(self, skus: Sequence[str]) -> None:
        super().__init__(("127.0.0.1", 0), _FeedHandler)
        self.lock = threading.Lock()
        self.quantities: dict[str, int] = dict.fromkeys(skus, 0)
        self.feeds: dict[str, dict[str, Any]] = {}

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
    server: FeedPlatform

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


class FeedPlatformConnector(Connector):
    """A connector whose writes are feeds: every item comes back PENDING with the feed id."""

    platform = PLATFORM
    capabilities = frozenset({Capability.ASYNC_WRITES})
    submission_poll_interval_s = 0.0

    def _get(self, path: str, **params: str) -> dict[str, Any]:
        response = http.send(
            "GET",
            f"{self.channel.api_base_url}{path}",
            platform_name="Feed platform",
            read_timeout_s=5,
            headers={},
            params=params,
        )
        if response.status_code != 200:
            raise ChannelError(f"Feed platform answered HTTP {response.status_code}.")
        return response.json()

    def _send_batch(self, updates: Sequence[QuantityUpdate]) -> list[ItemResult]:
        response = http.send(
            "POST",
            f"{self.channel.api_base_url}/feeds",
            platform_name="Feed platform",
            read_timeout_s=5,
            headers={},
            json={"items": [{"sku": u.external_id, "quantity": u.quantity} for u in updates]},
        )
        if response.status_code != 202:
            raise ChannelError(f"Feed platform answered HTTP {response.status_code}.")
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


@pytest.fixture
def feed_platform(monkeypatch) -> Iterator[FeedPlatform]:
    monkeypatch.setitem(CONNECTORS, PLATFORM, FeedPlatformConnector)
    platform = FeedPlatform(["A-1", "A-2"])
    thread = threading.Thread(target=platform.serve_forever, daemon=True)
    thread.start()
    yield platform
    platform.shutdown()
    platform.server_close()


@pytest.mark.django_db
def test_a_feed_waits_as_submitted_is_no_drift_meanwhile_and_settles_once_applied(
    feed_platform,
):
    """Accepted items wait as submitted writes: owed no more, not drift to reconciliation,
    not yet what the channel is expected to hold. Once the platform applies the feed, they
    settle as applied, and an item the feed refused becomes a dead letter."""
    location = factories.make_location()
    channel = factories.make_channel(
        locations=[location],
        platform=PLATFORM,
        mode=Channel.Mode.ACTIVE,
        api_base_url=feed_platform.url,
        rate_limit_per_s=1000,
    )
    ratelimit.reset(channel_id=channel.pk)
    listings = []
    for code in ("A-1", "A-2", "NOT-THERE"):
        sku = factories.make_sku()
        factories.stock(sku, location, 10)
        listings.append(Listing.objects.create(channel=channel, sku=sku, external_id=code))
    known, _, unknown = listings

    deadline = time.monotonic() + 10
    while PendingPush.objects.filter(channel=channel).exists():
        assert time.monotonic() < deadline
        push.push_owed(channel_id=channel.pk)

    assert SubmittedWrite.objects.filter(channel=channel).count() == 3
    assert PushAttempt.objects.filter(channel=channel, outcome="submitted").count() == 3
    assert not ListingSyncState.objects.filter(listing=known, last_pushed_quantity=10).exists()
    run = reconciliation.reconcile_channel(channel_id=channel.pk)
    assert run is not None and run.status == "done", run and run.error
    assert not Discrepancy.objects.filter(run=run).exists()
    assert push.settle_submissions(channel_id=channel.pk) == 0

    feed_platform.process()
    assert push.settle_submissions(channel_id=channel.pk) == 3

    assert not SubmittedWrite.objects.filter(channel=channel).exists()
    state = ListingSyncState.objects.get(listing=known)
    assert state.last_pushed_quantity == state.expected_channel_quantity == 10
    applied = PushAttempt.objects.get(listing=known, outcome="applied")
    assert applied.latency_ms is not None and applied.latency_ms >= 0
    dead = DeadLetter.objects.get(listing=unknown)
    assert "Unknown SKU" in dead.attempts[0]["error"]
    run = reconciliation.reconcile_channel(channel_id=channel.pk)
    assert run is not None
    assert list(Discrepancy.objects.filter(run=run).values_list("listing_id", flat=True)) == [
        unknown.pk
    ]
