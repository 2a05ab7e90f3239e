"""Propagation: a sustained stream of marketplace orders, from webhook to every channel.

Starts the whole system as separate processes (gunicorn, Celery workers and beat, the Shopify
simulator with three shops), lists SKUs on every shop, then has the simulator place
orders at a steady rate; each order reaches nventory as a signed webhook, is committed,
and every shop is pushed its new quantity. For every order it measures the time from
nventory's receipt of the webhook to the acknowledgement of the last shop's push that
reflects it (the first applied push whose quantity is at or below the listed quantity
after that order). At the end it waits for the pipeline to settle and checks that every
shop shows exactly the master's quantity (``lost`` counts orders whose webhook was never
committed plus listings left wrong) and that nothing was oversold.

With ``--amazon-shops N`` the Amazon simulator joins with N sellers listing the same SKUs
(MFN). Amazon's writes are asynchronous: each is measured twice, from the webhook's receipt
to Amazon's acceptance of the patch, and to the settlement that saw it applied (the
simulator applies an accepted patch after ``--amazon-apply-delay-s``). The headline
figures stay the Shopify shops'.

    .venv/bin/python bench/propagation.py [--rate 50] [--seconds 60] [--shops 3] [--skus 10]
        [--amazon-shops 1]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import sys
import threading
import time
from collections import defaultdict
from typing import Any

import _harness

_harness.ensure_servers()

WORKER_LOG = _harness.PROJECT_DIR / ".data" / "bench" / "propagation-worker.log"
WEB_LOG = _harness.PROJECT_DIR / ".data" / "bench" / "propagation-web.log"
UNITS_PER_SKU = 1_000_000


def _wait_http(url: str, timeout_s: float = 60) -> None:
    import requests

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.2)
    raise TimeoutError(url)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=50.0, help="orders per second")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--shops", type=int, default=3)
    parser.add_argument("--skus", type=int, default=10)
    parser.add_argument("--pool", default="threads", help="Celery worker pool")
    parser.add_argument("--concurrency", type=int, default=4, help="Celery worker concurrency")
    parser.add_argument(
        "--workers",
        choices=["split", "single"],
        default="split",
        help="a worker for webhooks and one for pushes (as the Procfile), or one for both",
    )
    parser.add_argument(
        "--level-webhooks",
        action="store_true",
        help="shops also report every level change (inventory_levels/update), as Shopify "
        "does to a shop subscribed to it: our own writes and their sales",
    )
    parser.add_argument(
        "--order-poll-at-s",
        type=float,
        default=None,
        help="read every shop's orders (the backup poll beat runs every 5 minutes) this many "
        "seconds into the stream, so the run pays for one; default: half-way; negative: never",
    )
    parser.add_argument(
        "--amazon-shops",
        type=int,
        default=0,
        help="Amazon sellers (on the Amazon simulator) listing the same SKUs",
    )
    parser.add_argument(
        "--amazon-apply-delay-s",
        type=float,
        default=2.0,
        help="how long the Amazon simulator takes to apply a patch it accepted",
    )
    args = parser.parse_args()
    if args.order_poll_at_s is None:
        args.order_poll_at_s = args.seconds / 2

    _harness.setup_django()

    from channels import services as channel_services
    from channels.models import (
        Channel,
        DeadLetter,
        PendingPush,
        PushAttempt,
        SubmittedWrite,
        WebhookReceipt,
    )
    from inventory import services
    from inventory.models import InventoryEvent, Location, Sku

    _harness.progress("resetting the bench database's catalog and channels")
    _harness.reset_data()

    env = _harness.production_env()
    simulator, simulator_url = _harness.start_simulator(env)
    processes = [simulator]
    try:
        web_port = _harness.free_port()
        web_url = f"http://127.0.0.1:{web_port}"

        location = Location.objects.create(code="BENCH-WH", name="Bench warehouse")
        skus = [
            Sku.objects.create(code=f"BENCH-{n:03d}", name=f"Bench {n}") for n in range(args.skus)
        ]
        for sku in skus:
            services.receive_stock(
                sku_id=sku.pk,
                location_id=location.pk,
                quantity=UNITS_PER_SKU,
                context=services.EventContext(idempotency_key=f"bench-seed-{sku.pk}"),
            )
        shops = [f"bench-{n}" for n in range(args.shops)]
        channels = []
        session = _harness.http_session()
        for shop in shops:
            channel = channel_services.create_channel(
                fields=channel_services.ChannelFields(
                    platform=Channel.Platform.SHOPIFY,
                    name=shop,
                    slug=shop,
                    mode=Channel.Mode.ACTIVE,
                    api_base_url=f"{simulator_url}/shops/{shop}",
                    credentials={"access_token": f"shpat_{shop}"},
                    rate_limit_per_s=1000,
                    platform_settings={
                        "location_id": 1,
                        "api_version": "2026-01",
                        **_harness.VELOCITY_GUARD_OFF,
                    },
                ),
                webhook_secret=f"webhook-secret-of-{shop}-0123456789",
                location_ids=[location.pk],
            )
            channels.append(channel)
            _harness.simulator_post(
                session,
                simulator_url,
                "/_sim/shops",
                {
                    "shop": shop,
                    "access_token": f"shpat_{shop}",
                    "webhook_url": f"{web_url}/webhooks/shopify/{shop}/",
                    "webhook_secret": f"webhook-secret-of-{shop}-0123456789",
                    "location_id": 1,
                    "bucket_size": 100_000,
                    "restore_rate": 100_000,
                    "level_webhooks": args.level_webhooks,
                },
            )
            _harness.simulator_post(
                session,
                simulator_url,
                f"/_sim/shops/{shop}/items",
                {
                    "items": [
                        {
                            "inventory_item_id": 1000 + index,
                            "variant_id": 2000 + index,
                            "sku": sku.code,
                            "available": 0,
                        }
                        for index, sku in enumerate(skus)
                    ]
                },
            )
            for index, sku in enumerate(skus):
                # Owed its first push, which the initial sync below waits for.
                channel_services.create_listing(
                    fields=channel_services.ListingFields(
                        channel_id=channel.pk,
                        sku_id=sku.pk,
                        external_id=str(1000 + index),
                        external_sku=sku.code,
                        extra_identifiers={"variant_id": str(2000 + index)},
                    )
                )

        sellers: list[str] = []
        amazon_url = ""
        if args.amazon_shops:
            amazon_process, amazon_url = _start_amazon_simulator(env)
            processes.append(amazon_process)
            sellers = [f"BENCHAMZN{n}" for n in range(args.amazon_shops)]
            for seller in sellers:
                _harness.simulator_post(
                    session,
                    amazon_url,
                    "/_sim/sellers",
                    {
                        "seller_id": seller,
                        "client_id": f"amzn1.application-oa2-client.{seller}",
                        "client_secret": f"secret-{seller}",
                        "refresh_token": f"Atzr|{seller}",
                        "patch_apply_delay_s": args.amazon_apply_delay_s,
                        # Amazon's per-seller quotas (5 patches/s) would make this a
                        # measure of the quota; scaled as the simulator's demo setting.
                        "rate_scale": 100,
                    },
                )
                _harness.simulator_post(
                    session,
                    amazon_url,
                    f"/_sim/sellers/{seller}/listings",
                    {"listings": [{"sku": sku.code, "quantity": 0} for sku in skus]},
                )
                channel = channel_services.create_channel(
                    fields=channel_services.ChannelFields(
                        platform=Channel.Platform.AMAZON,
                        name=seller,
                        slug=seller.lower(),
                        mode=Channel.Mode.ACTIVE,
                        api_base_url=amazon_url,
                        credentials={
                            "client_id": f"amzn1.application-oa2-client.{seller}",
                            "client_secret": f"secret-{seller}",
                            "refresh_token": f"Atzr|{seller}",
                        },
                        rate_limit_per_s=1000,
                        platform_settings={
                            "seller_id": seller,
                            "token_url": f"{amazon_url}/auth/o2/token",
                            "submission_poll_interval_s": 1,
                            "throttle_backoff_s": 0.1,
                        },
                    ),
                    webhook_secret=f"webhook-secret-of-{seller}-0123456789",
                    location_ids=[location.pk],
                )
                channels.append(channel)
                for sku in skus:
                    channel_services.create_listing(
                        fields=channel_services.ListingFields(
                            channel_id=channel.pk,
                            sku_id=sku.pk,
                            external_id=sku.code,
                            external_sku=sku.code,
                        )
                    )

        _harness.progress(f"starting gunicorn on {web_url}, Celery workers and beat")
        processes.append(_harness.start_web(port=web_port, log_path=WEB_LOG, env=env))
        # As the Procfile has them: webhooks and pushes in workers of their own, so that
        # each has a core's worth of interpreter; or one worker for both.
        worker_queues = (
            {"ingest-worker": "webhooks", "push-worker": "celery,push"}
            if args.workers == "split"
            else {"worker": "celery,webhooks,push"}
        )
        worker_logs = {}
        for name, queues in worker_queues.items():
            worker_logs[name] = WORKER_LOG.with_name(f"propagation-{name}.log")
            processes.append(
                _harness.start_worker(
                    name=name,
                    queues=queues,
                    log_path=worker_logs[name],
                    env=env,
                    pool=args.pool,
                    concurrency=args.concurrency,
                )
            )
        # Beat, as `make run` has it: the outbox and receipt sweeps.
        processes.append(
            _harness.start_process(
                [sys.executable, "-m", "celery", "-A", "nventory", "beat", "--loglevel=WARNING"],
                WORKER_LOG.with_name("propagation-beat.log"),
                env,
            )
        )
        _wait_http(f"{web_url}/admin/login/")
        for name, log in worker_logs.items():
            _harness.wait_for_worker(log, name)

        _harness.progress("initial sync of every listing to every shop")
        from channels.pipeline import outbox

        for channel in channels:
            outbox.wake_pushers(channel_ids=[channel.pk])
        _harness.wait_for(
            lambda: (
                not PendingPush.objects.exists()
                and not SubmittedWrite.objects.exists()
                and all(
                    item["available"] == UNITS_PER_SKU
                    for shop in shops
                    for item in _items(session, simulator_url, shop)
                )
                and all(
                    quantity == UNITS_PER_SKU
                    for seller in sellers
                    for quantity in _amazon_quantities(session, amazon_url, seller).values()
                )
            ),
            120,
            "initial sync",
        )
        PushAttempt.objects.all().delete()
        names = ["simulator", *(["amazon-simulator"] if sellers else []), "web"]
        named_processes = dict(zip([*names, *worker_queues, "beat"], processes, strict=True))
        cpu_before = _harness.cpu_seconds(named_processes)

        total_orders = int(args.rate * args.seconds)
        _harness.progress(
            f"streaming {total_orders} orders at {args.rate:g}/s for {args.seconds:g} s "
            f"across {len(shops)} shops and {len(skus)} SKUs"
        )
        poll = None
        if args.order_poll_at_s >= 0:
            from channels.pipeline import receive

            poll = threading.Timer(args.order_poll_at_s, receive.wake_order_polls)
            poll.start()
        order_ids = _stream_orders(session, simulator_url, shops, len(skus), args, total_orders)
        if poll is not None:
            poll.join()

        _harness.progress("waiting for the pipeline to settle")
        expected_per_sku: dict[int, int] = {}

        def settled() -> bool:
            if WebhookReceipt.objects.exclude(status="processed").exists():
                return False
            if PendingPush.objects.exists() or SubmittedWrite.objects.exists():
                return False
            for sku in skus:
                ats = services_ats(sku.pk, location.pk)
                expected_per_sku[sku.pk] = ats
            by_code = {sku.code: expected_per_sku[sku.pk] for sku in skus}
            return all(
                item["available"] == by_code[item["sku"]]
                for shop in shops
                for item in _items(session, simulator_url, shop)
            ) and all(
                quantity == by_code[code]
                for seller in sellers
                for code, quantity in _amazon_quantities(session, amazon_url, seller).items()
            )

        def services_ats(sku_id: int, location_id: int) -> int:
            from inventory.models import StockLevel

            level = StockLevel.objects.get(sku_id=sku_id, location_id=location_id)
            return level.on_hand - level.committed - level.reserved

        try:
            _harness.wait_for(settled, 120, "settle")
            settled_ok = True
        except TimeoutError:
            settled_ok = False

        figures = _measure(
            order_ids=order_ids,
            shops=shops,
            skus=skus,
            settled_ok=settled_ok,
            session=session,
            simulator_url=simulator_url,
            location=location,
            WebhookReceipt=WebhookReceipt,
            InventoryEvent=InventoryEvent,
            PushAttempt=PushAttempt,
            Channel=Channel,
            DeadLetter=DeadLetter,
            sellers=sellers,
            amazon_url=amazon_url,
        )
        figures.update(
            orders=total_orders,
            rate_per_s=args.rate,
            seconds=args.seconds,
            shops=len(shops),
            skus=len(skus),
        )
        _harness.progress(
            f"p50 {figures['p50_ms']:.1f} ms, p95 {figures['p95_ms']:.1f} ms, "
            f"p99 {figures['p99_ms']:.1f} ms from webhook receipt to the last shop's ack; "
            f"{figures['pushes_per_order']:.2f} pushes per order per shop; "
            f"lost {figures['lost']}, oversold {figures['oversold']}"
        )
        if sellers:
            _harness.progress(
                f"Amazon: accepted p50 {figures['amazon_accepted_p50_ms']:.1f} ms, "
                f"p99 {figures['amazon_accepted_p99_ms']:.1f} ms; applied p50 "
                f"{figures['amazon_applied_p50_ms']:.1f} ms, "
                f"p99 {figures['amazon_applied_p99_ms']:.1f} ms from webhook receipt"
            )
        # From the first order to settled: start-up and the initial sync are not the stream's.
        cpu_after = _harness.cpu_seconds(named_processes)
        cpu_used = {name: round(cpu_after[name] - cpu_before[name], 1) for name in cpu_after}
        figures["cpu_s"] = cpu_used
        figures["cpu_ms_per_order"] = round(sum(cpu_used.values()) * 1000 / total_orders, 1)
        _harness.progress(
            f"CPU seconds used by the stream: {figures['cpu_s']} "
            f"({figures['cpu_ms_per_order']} ms per order in all)"
        )
        _harness.emit(figures)
    finally:
        _harness.stop_processes(processes)


def _start_amazon_simulator(env: dict[str, str]) -> tuple[Any, str]:
    """The Amazon simulator on a free port; its URL, read from its first line."""
    import subprocess

    process = subprocess.Popen(
        [sys.executable, "-m", "channels.simulators", "--amazon", "0"],
        cwd=_harness.PROJECT_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    assert process.stdout is not None
    first_line = process.stdout.readline().decode().strip()
    prefix = "Amazon simulator listening on "
    if not first_line.startswith(prefix):
        raise RuntimeError(f"Amazon simulator did not start: {first_line!r}")
    return process, first_line.removeprefix(prefix)


def _amazon_quantities(session: Any, base: str, seller: str) -> dict[str, int]:
    """The seller's MFN quantities by SKU, once what is due has been applied."""
    response = session.get(f"{base}/_sim/sellers/{seller}/listings", timeout=30)
    response.raise_for_status()
    return {item["sku"]: int(item["quantity"]) for item in response.json()["listings"]}


def _items(session: Any, base: str, shop: str) -> list[dict[str, Any]]:
    response = session.get(f"{base}/_sim/shops/{shop}/items", timeout=30)
    response.raise_for_status()
    return list(response.json()["items"])


def _stream_orders(
    session: Any, base: str, shops: list[str], sku_count: int, args: Any, total: int
) -> list[str]:
    """Place ``total`` single-unit orders at a steady rate; their order ids."""
    import random

    order_ids: list[str] = []
    lock = threading.Lock()
    local = threading.local()
    started = time.monotonic()

    def place(number: int) -> None:
        if not hasattr(local, "session"):
            local.session = _harness.http_session()
        due = started + number / args.rate
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        shop = shops[number % len(shops)]
        variant = 2000 + random.randrange(sku_count)
        answer = _harness.simulator_post(
            local.session,
            base,
            f"/_sim/shops/{shop}/orders",
            {"lines": [{"variant_id": variant, "quantity": 1}]},
        )
        with lock:
            order_ids.append(str(answer["order_id"]))
            if len(order_ids) % max(1, int(args.rate) * 10) == 0:
                _harness.progress(f"  {len(order_ids)}/{total} orders placed")

    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(place, range(total)))
    return order_ids


def _measure(**kw: Any) -> dict[str, Any]:
    from django.db.models import Count, Sum

    WebhookReceipt = kw["WebhookReceipt"]
    InventoryEvent = kw["InventoryEvent"]
    PushAttempt = kw["PushAttempt"]
    Channel = kw["Channel"]
    order_ids: list[str] = kw["order_ids"]

    receipts = {}
    ingest_lags = []
    # The webhooks' receipts: an order the backup poll stored too keeps its webhook's time.
    webhook_receipts = WebhookReceipt.objects.filter(topic="orders/create").exclude(
        dedupe_key__startswith="poll:"
    )
    for receipt in webhook_receipts:
        order_id = str(json.loads(bytes(receipt.body))["id"])
        receipts[order_id] = receipt.received_at
        if receipt.processed_at is not None:
            ingest_lags.append((receipt.processed_at - receipt.received_at).total_seconds() * 1000)
    events = {
        event.external_reference: event
        for event in InventoryEvent.objects.filter(
            kind="order_committed", external_reference__in=order_ids
        )
    }
    amazon_ids = set(Channel.objects.filter(platform="amazon").values_list("pk", flat=True))
    channel_ids = [
        pk for pk in Channel.objects.values_list("pk", flat=True) if pk not in amazon_ids
    ]
    push_lags = [
        attempt.latency_ms
        for attempt in PushAttempt.objects.filter(outcome="applied", channel_id__in=channel_ids)
        if attempt.latency_ms is not None
    ]
    # Acknowledged pushes per (channel, SKU) and outcome, in acknowledgement order: for
    # Amazon, "submitted" is its acceptance and "applied" the settlement that saw it applied.
    acked: dict[str, dict[tuple[int, int], list[tuple[Any, int]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for attempt in (
        PushAttempt.objects.filter(outcome__in=["applied", "submitted"], acked_at__isnull=False)
        .select_related("listing")
        .order_by("acked_at")
    ):
        acked[attempt.outcome][(attempt.channel_id, attempt.listing.sku_id)].append(
            (attempt.acked_at, attempt.target_quantity)
        )
    latencies, unreflected = _order_latencies(
        order_ids, events, receipts, channel_ids, acked["applied"]
    )
    amazon: dict[str, Any] = {}
    if amazon_ids:
        accepted, not_accepted = _order_latencies(
            order_ids, events, receipts, sorted(amazon_ids), acked["submitted"]
        )
        applied, not_applied = _order_latencies(
            order_ids, events, receipts, sorted(amazon_ids), acked["applied"]
        )
        amazon = {
            "amazon_shops": len(amazon_ids),
            "amazon_accepted_p50_ms": round(_harness.percentile(accepted, 0.50), 1),
            "amazon_accepted_p99_ms": round(_harness.percentile(accepted, 0.99), 1),
            "amazon_applied_p50_ms": round(_harness.percentile(applied, 0.50), 1),
            "amazon_applied_p99_ms": round(_harness.percentile(applied, 0.99), 1),
            "amazon_unreflected_orders": [not_accepted, not_applied],
            "amazon_pushes_by_outcome": dict(
                PushAttempt.objects.filter(channel_id__in=amazon_ids)
                .values_list("outcome")
                .annotate(count=Count("pk"))
                .order_by()
            ),
        }

    missing_commits = sum(1 for order_id in order_ids if order_id not in events)
    pushes = (
        PushAttempt.objects.exclude(outcome="shadow").filter(channel_id__in=channel_ids).count()
    )
    pushes_by_outcome = dict(
        PushAttempt.objects.filter(channel_id__in=channel_ids)
        .values_list("outcome")
        .annotate(count=Count("pk"))
        .order_by()
    )
    oversold = InventoryEvent.objects.aggregate(total=Sum("shortfall"))["total"] or 0
    wrong_listings = 0 if kw["settled_ok"] else _count_wrong(kw)
    from channels.models import DriftRecord

    drifts = list(DriftRecord.objects.all())
    return {
        "p50_ms": round(_harness.percentile(latencies, 0.50), 1),
        "p95_ms": round(_harness.percentile(latencies, 0.95), 1),
        "p99_ms": round(_harness.percentile(latencies, 0.99), 1),
        # The two legs: receipt to committed, and stock change to a shop's acknowledgement.
        "ingest_p50_ms": round(_harness.percentile(ingest_lags, 0.50), 1),
        "ingest_p99_ms": round(_harness.percentile(ingest_lags, 0.99), 1),
        "push_p50_ms": round(_harness.percentile(push_lags, 0.50), 1),
        "push_p99_ms": round(_harness.percentile(push_lags, 0.99), 1),
        "max_ms": round(max(latencies), 1) if latencies else None,
        "measured_orders": len(latencies),
        "unreflected_orders": unreflected,
        "lost": missing_commits + wrong_listings,
        "oversold": int(oversold),
        "pushes": pushes,
        "pushes_by_outcome": pushes_by_outcome,
        "dead_letters": kw["DeadLetter"].objects.count(),
        # Drift the compare-and-set found; those the orders' webhooks then explained were
        # sales in flight, not drift.
        "drift_records": len(drifts),
        "drift_unexplained": sum(1 for drift in drifts if not drift.explained),
        "pushes_per_order": round(pushes / max(1, len(order_ids) * len(channel_ids)), 3),
        # Events the backup order poll stored: orders whose webhook had not been committed
        # when the poll read them (on this stream, only those still in flight).
        "order_poll_stored": WebhookReceipt.objects.filter(dedupe_key__startswith="poll:").count(),
        **amazon,
    }


def _order_latencies(
    order_ids: list[str],
    events: dict[str, Any],
    receipts: dict[str, Any],
    channel_ids: list[int],
    acked: dict[tuple[int, int], list[tuple[Any, int]]],
) -> tuple[list[float], int]:
    """For each order, ms from its webhook's receipt to the last of these channels' first
    acknowledgement at or below the listed quantity after it; and how many had none."""
    from channels.buffers import listed_quantity

    latencies = []
    unreflected = 0
    for order_id in order_ids:
        event = events.get(order_id)
        received = receipts.get(order_id)
        if event is None or received is None:
            continue
        listed_after = listed_quantity(
            ats=event.on_hand_after - event.committed_after - event.reserved_after,
            rule=None,
            out_of_stock_threshold=0,
            now=event.created_at,
        )
        last_ack = None
        for channel_id in channel_ids:
            ack = next(
                (
                    at
                    for at, quantity in acked[(channel_id, event.sku_id)]
                    if at >= received and quantity <= listed_after
                ),
                None,
            )
            if ack is None:
                last_ack = None
                break
            last_ack = ack if last_ack is None else max(last_ack, ack)
        if last_ack is None:
            unreflected += 1
            continue
        latencies.append((last_ack - received).total_seconds() * 1000)
    return latencies, unreflected


def _count_wrong(kw: dict[str, Any]) -> int:
    from inventory.models import StockLevel

    wrong = 0
    session, base = kw["session"], kw["simulator_url"]
    ats = {
        level.sku.code: level.on_hand - level.committed - level.reserved
        for level in StockLevel.objects.select_related("sku")
    }
    for shop in kw["shops"]:
        for item in _items(session, base, shop):
            if item["available"] != ats.get(item["sku"]):
                wrong += 1
    for seller in kw["sellers"]:
        for code, quantity in _amazon_quantities(session, kw["amazon_url"], seller).items():
            if quantity != ats.get(code):
                wrong += 1
    return wrong


if __name__ == "__main__":
    main()
