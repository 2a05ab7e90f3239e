"""A burst of webhooks against `make run`'s web process: resets and acknowledgement times.

Starts the web process exactly as the Procfile does (gunicorn by default; Django's
runserver with ``WEB_SERVER=runserver``), side by side for both servers in one run, and
sends bursts of ``--concurrency`` signed Shopify deliveries at once, each on a fresh
connection as a platform's delivery workers open them. Counts every connection reset or
refused (``resets``) and every answer other than 200, and the acknowledgement time of
each delivery from the moment its burst started.

    .venv/bin/python bench/webhook_burst.py [--concurrency 32] [--bursts 10]
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import hashlib
import hmac
import http.client
import json
import subprocess
import time
from typing import Any

import _harness

_harness.ensure_servers()

LOG_DIR = _harness.PROJECT_DIR / ".data" / "bench"
SIGNING_KEY = "bench-burst-webhook-signing-key"
SHOP = "bench-burst"


def _procfile_web_command() -> str:
    for line in (_harness.PROJECT_DIR / "Procfile").read_text().splitlines():
        if line.startswith("web:"):
            return line.removeprefix("web:").strip()
    raise RuntimeError("The Procfile has no web process.")


def _start_web(server: str, port: int) -> subprocess.Popen[bytes]:
    env = {**_harness.production_env(), "WEB_ADDR": f"127.0.0.1:{port}", "WEB_SERVER": server}
    return _harness.start_process(
        ["sh", "-c", _procfile_web_command()], LOG_DIR / f"webhook-burst-{server}.log", env
    )


def _signed_order(order_id: int) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(
        {
            "id": order_id,
            "line_items": [{"id": order_id * 10, "variant_id": 2000, "quantity": 1}],
        }
    ).encode()
    digest = hmac.new(SIGNING_KEY.encode(), body, hashlib.sha256).digest()
    return body, {
        "Content-Type": "application/json",
        "X-Shopify-Topic": "orders/create",
        "X-Shopify-Webhook-Id": f"burst-{order_id}",
        "X-Shopify-Hmac-Sha256": base64.b64encode(digest).decode(),
    }


def _deliver(port: int, order_id: int, started: float) -> tuple[int, float]:
    """(status, ms since the burst started); status 0 for a reset or refused connection."""
    body, headers = _signed_order(order_id)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("POST", f"/webhooks/shopify/{SHOP}/", body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        status = response.status
    except (http.client.HTTPException, OSError):
        status = 0
    finally:
        connection.close()
    return status, (time.perf_counter() - started) * 1000


def _measure(server: str, *, concurrency: int, bursts: int, first_order: int) -> dict[str, Any]:
    port = _harness.free_port()
    process = _start_web(server, port)
    try:
        _harness.wait_for(lambda: _harness.web_answers(port), 60, f"{server} up")
        latencies: list[float] = []
        statuses: dict[int, int] = {}
        order_id = first_order
        with concurrent.futures.ThreadPoolExecutor(max_workers=concurrency) as pool:
            for burst in range(bursts):
                started = time.perf_counter()
                futures = [
                    pool.submit(_deliver, port, order_id + n, started) for n in range(concurrency)
                ]
                order_id += concurrency
                for future in futures:
                    status, latency_ms = future.result()
                    statuses[status] = statuses.get(status, 0) + 1
                    latencies.append(latency_ms)
                _harness.progress(f"  {server}: burst {burst + 1}/{bursts} answered")
                time.sleep(0.2)
        sent = concurrency * bursts
        return {
            "deliveries": sent,
            "resets": statuses.get(0, 0),
            "not_200": sent - statuses.get(200, 0),
            "p50_ms": round(_harness.percentile(latencies, 0.50), 1),
            "p99_ms": round(_harness.percentile(latencies, 0.99), 1),
            "max_ms": round(max(latencies), 1),
        }
    finally:
        _harness.stop_processes([process])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=32, help="deliveries sent at once")
    parser.add_argument("--bursts", type=int, default=10)
    parser.add_argument(
        "--servers",
        default="gunicorn,runserver",
        help="web servers to measure, side by side (the Procfile's WEB_SERVER)",
    )
    args = parser.parse_args()

    _harness.setup_django()
    from channels.models import Channel

    _harness.progress("resetting the bench database's channels")
    _harness.reset_data()
    # Paused, and no listings: each delivery is stored, and its ingest finds nothing to do.
    Channel.objects.create(
        platform=Channel.Platform.SHOPIFY,
        name=SHOP,
        slug=SHOP,
        mode=Channel.Mode.PAUSED,
        api_base_url="http://127.0.0.1:9/",
        webhook_secret=SIGNING_KEY,
    )
    figures: dict[str, Any] = {"concurrency": args.concurrency, "bursts": args.bursts}
    for index, server in enumerate(args.servers.split(",")):
        _harness.progress(f"{server}: {args.bursts} bursts of {args.concurrency} deliveries")
        figures[server] = _measure(
            server,
            concurrency=args.concurrency,
            bursts=args.bursts,
            first_order=1 + index * args.concurrency * args.bursts,
        )
        result = figures[server]
        _harness.progress(
            f"{server}: {result['resets']} resets, {result['not_200']} not 200, "
            f"ack p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms"
        )
    _harness.emit(figures)


if __name__ == "__main__":
    main()
