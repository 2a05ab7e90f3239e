"""Webhook ingestion: signed marketplace webhooks accepted per second, and how fast.

Starts gunicorn and the ingest worker as separate processes (configured as in production),
then sends signed Shopify ``orders/create`` deliveries at a steady rate straight to the
webhook endpoint, as Shopify's delivery workers would, over kept-alive connections. Each
delivery's acknowledgement latency is measured from the moment it was due to be sent
(an open-loop schedule: a slow answer delays nothing else, and is not hidden by the
deliveries that waited behind it). The webhooks carry real orders on listed SKUs, so the
ingest worker commits each one; the channel is paused, so nothing is pushed anywhere.
At the end it waits for every receipt to be processed and checks that each order was
committed exactly once (``lost``) and that no delivery was answered with an error.

    .venv/bin/python bench/webhook_ingest.py [--rate 500] [--seconds 30] [--senders 32]
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import hashlib
import hmac
import http.client
import json
import threading
import time
from typing import Any

import _harness

_harness.ensure_servers()

LOG_DIR = _harness.PROJECT_DIR / ".data" / "bench"
SIGNING_KEY = "bench-webhook-signing-key"  # the channel's webhook secret
SHOP = "bench-webhooks"


def _signed_order(order_id: int, variant_id: int) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(
        {
            "id": order_id,
            "created_at": "2026-11-27T10:00:00-05:00",
            "line_items": [
                {"id": order_id * 10, "variant_id": variant_id, "quantity": 1, "sku": ""}
            ],
        }
    ).encode()
    digest = hmac.new(SIGNING_KEY.encode(), body, hashlib.sha256).digest()
    headers = {
        "Content-Type": "application/json",
        "X-Shopify-Topic": "orders/create",
        "X-Shopify-Shop-Domain": f"{SHOP}.myshopify.com",
        "X-Shopify-Webhook-Id": f"bench-{order_id}",
        "X-Shopify-Hmac-Sha256": base64.b64encode(digest).decode(),
    }
    return body, headers


class _Sender:
    """One delivery worker: a kept-alive connection of its own, reopened if it drops."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.local = threading.local()

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> int:
        for fresh in (False, True):
            connection = getattr(self.local, "connection", None)
            if connection is None or fresh:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                self.local.connection = connection
            try:
                connection.request("POST", path, body=body, headers=headers)
                response = connection.getresponse()
                response.read()
                return response.status
            except (http.client.HTTPException, OSError):
                connection.close()
                self.local.connection = None
                if fresh:
                    raise
        raise AssertionError("unreachable")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=500.0, help="deliveries per second")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--senders", type=int, default=32, help="concurrent delivery workers")
    parser.add_argument("--skus", type=int, default=50)
    parser.add_argument("--web-workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--web-threads", type=int, default=8, help="threads per gunicorn worker")
    parser.add_argument(
        "--ingest-niceness",
        type=int,
        default=0,
        help="run the ingest worker at this lower CPU priority (acknowledging comes first)",
    )
    args = parser.parse_args()

    _harness.setup_django()

    from channels.models import Channel, Listing, WebhookReceipt
    from inventory import services
    from inventory.models import InventoryEvent, Location, Sku

    _harness.progress("resetting the bench database's catalog and channels")
    _harness.reset_data()
    location = Location.objects.create(code="BENCH-WH", name="Bench warehouse")
    channel = Channel.objects.create(
        platform=Channel.Platform.SHOPIFY,
        name=SHOP,
        slug=SHOP,
        # Paused: orders are committed, nothing is pushed (there is no shop to push to).
        mode=Channel.Mode.PAUSED,
        api_base_url="http://127.0.0.1:9/",
        webhook_secret=SIGNING_KEY,
        platform_settings={"location_id": 1, **_harness.VELOCITY_GUARD_OFF},
    )
    channel.locations.add(location)
    variants = []
    for n in range(args.skus):
        sku = Sku.objects.create(code=f"BENCH-{n:03d}", name=f"Bench {n}")
        services.receive_stock(
            sku_id=sku.pk,
            location_id=location.pk,
            quantity=1_000_000,
            context=services.EventContext(idempotency_key=f"bench-seed-{sku.pk}"),
        )
        Listing.objects.create(
            channel=channel,
            sku=sku,
            external_id=str(1000 + n),
            extra_identifiers={"variant_id": str(2000 + n)},
        )
        variants.append(2000 + n)

    env = _harness.production_env()
    port = _harness.free_port()
    processes = []
    try:
        _harness.progress(
            f"starting gunicorn ({args.web_workers} workers x {args.web_threads} threads) "
            "and the ingest worker"
        )
        processes.append(
            _harness.start_web(
                port=port,
                log_path=LOG_DIR / "webhook-ingest-web.log",
                env=env,
                workers=args.web_workers,
                threads=args.web_threads,
            )
        )
        worker_log = LOG_DIR / "webhook-ingest-worker.log"
        processes.append(
            _harness.start_worker(
                name="ingest-worker",
                queues="webhooks",
                log_path=worker_log,
                env=env,
                pool="threads",
                concurrency=4,
                niceness=args.ingest_niceness,
            )
        )
        named = {"web": processes[0], "ingest": processes[1]}
        _harness.wait_for(lambda: _harness.web_answers(port), 60, "gunicorn up")
        _harness.wait_for_worker(worker_log, "ingest worker")

        total = int(args.rate * args.seconds)
        deliveries = [
            _signed_order(order_id, variants[order_id % len(variants)])
            for order_id in range(1, total + 1)
        ]
        path = f"/webhooks/shopify/{SHOP}/"
        sender = _Sender(port)
        latencies: list[float] = []
        statuses: dict[int, int] = {}
        lock = threading.Lock()
        cpu_before = _harness.cpu_seconds(named)

        def deliver(index: int, due: float) -> None:
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            body, headers = deliveries[index]
            try:
                status = sender.post(path, body, headers)
            except OSError:
                status = 0
            latency_ms = (time.perf_counter() - due) * 1000
            with lock:
                latencies.append(latency_ms)
                statuses[status] = statuses.get(status, 0) + 1

        _harness.progress(
            f"sending {total} signed deliveries at {args.rate:g}/s for {args.seconds:g} s "
            f"from {args.senders} senders"
        )
        start = time.perf_counter() + 0.5
        with concurrent.futures.ThreadPoolExecutor(max_workers=args.senders) as pool:
            futures = [
                pool.submit(deliver, index, start + index / args.rate) for index in range(total)
            ]
            for done, future in enumerate(concurrent.futures.as_completed(futures), 1):
                future.result()
                if done % max(1, total // 5) == 0:
                    _harness.progress(f"  {done}/{total} answered")
        sent_s = time.perf_counter() - start

        _harness.progress("waiting for every receipt to be processed")
        drain_started = time.perf_counter()
        _harness.wait_for(
            lambda: (
                not WebhookReceipt.objects.exclude(status=WebhookReceipt.Status.PROCESSED).exists()
                and WebhookReceipt.objects.count() >= statuses.get(200, 0)
            ),
            600,
            "every receipt processed",
            interval_s=0.5,
        )
        drain_s = time.perf_counter() - drain_started
        cpu_after = _harness.cpu_seconds(named)
        committed = InventoryEvent.objects.filter(kind="order_committed").count()
        figures: dict[str, Any] = {
            "rate_per_s": args.rate,
            "seconds": args.seconds,
            "deliveries": total,
            "accepted_per_s": round(statuses.get(200, 0) / sent_s, 1),
            "p50_ms": round(_harness.percentile(latencies, 0.50), 1),
            "p95_ms": round(_harness.percentile(latencies, 0.95), 1),
            "p99_ms": round(_harness.percentile(latencies, 0.99), 1),
            "max_ms": round(max(latencies), 1),
            "not_200": total - statuses.get(200, 0),
            "statuses": {str(status): count for status, count in sorted(statuses.items())},
            "receipts": WebhookReceipt.objects.count(),
            "processed_after_s": round(drain_s, 1),
            "lost": total - committed,
            # CPU per delivery, to the end of processing: the web server, the ingest worker,
            # PostgreSQL (every backend) and this load generator.
            "cpu_ms_per_delivery": {
                name: round((cpu_after[name] - cpu_before[name]) * 1000 / max(1, total), 2)
                for name in cpu_after
            },
        }
        _harness.progress(
            f"accepted {figures['accepted_per_s']}/s: ack p50 {figures['p50_ms']} ms, "
            f"p95 {figures['p95_ms']} ms, p99 {figures['p99_ms']} ms; "
            f"{figures['not_200']} not 200; all processed {drain_s:.1f} s after the last; "
            f"lost {figures['lost']}"
        )
        _harness.emit(figures)
    finally:
        _harness.stop_processes(processes)


if __name__ == "__main__":
    main()
