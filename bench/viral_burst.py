"""Viral burst: 300 orders for one SKU in 20 s on TikTok Shop while the other channels sell.

Starts the whole system as separate processes (gunicorn, an ingest worker and a push worker
as the Procfile has them, beat, and one simulators process serving TikTok Shop, Shopify,
Walmart, eBay and Amazon), lists a viral SKU and a few ordinary ones on every channel, then
has the TikTok Shop simulator's viral mode place ``--orders`` one-unit orders on the viral
SKU at ``--per-s`` a second, each announced by a type 1 webhook whose lines nventory
fetches. Meanwhile the load generator buys on Shopify, Walmart and eBay at
``--other-per-s`` orders a second each (the viral SKU one time in two), a unit at a time
and only while the channel shows one, as a buyer would. Amazon lists everything and sells
nothing here (its order events arrive through a queue this bench does not run).

A buyer buys only what a channel shows, so an oversell can only come from a channel showing
units that are gone: with ``--stock`` below the demand the last units are fought over.
At the end it waits for the pipeline to settle and checks: no oversell incident and no
negative stock; every TikTok Shop order committed once; every channel showing what nventory
lists for it; the velocity guard's rise on TikTok Shop in the SKU's buffer-rule history. It
reports the lag from each stock change of the viral SKU to each channel's acknowledgement
of the push carrying it (p50/p99/max per channel; Amazon's is its acceptance of the write).

    .venv/bin/python bench/viral_burst.py [--orders 300] [--per-s 15] [--stock 400]
        [--other-per-s 1] [--limit-per-min 60] [--cover-s 5]
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import threading
import time
from typing import Any

import _harness

_harness.ensure_servers()

LOGS = _harness.PROJECT_DIR / ".data" / "bench"
OTHER_SKUS = 4
# TikTok Shop takes quantities below 99999 (§4.3): ordinary SKUs stay under it.
OTHER_UNITS = 10_000
PLATFORMS = ("tiktok", "shopify", "walmart", "ebay", "amazon")
DISPLAY_NAMES = {
    "TikTok Shop": "tiktok",
    "Shopify": "shopify",
    "Walmart": "walmart",
    "eBay": "ebay",
    "Amazon": "amazon",
}


def _secret(name: str) -> str:
    """A channel's secret, as long as nventory asks secrets to be (24 characters)."""
    return f"secret-of-{name}-0123456789abcdef"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=300, help="TikTok Shop orders")
    parser.add_argument("--per-s", type=float, default=15.0, help="TikTok Shop orders a second")
    parser.add_argument("--stock", type=int, default=400, help="units of the viral SKU")
    parser.add_argument(
        "--other-per-s", type=float, default=1.0, help="orders a second on each other channel"
    )
    parser.add_argument("--limit-per-min", type=float, default=60.0, help="the guard's limit")
    parser.add_argument("--cover-s", type=float, default=5.0, help="VELOCITY_GUARD_COVER_S")
    parser.add_argument("--concurrency", type=int, default=4, help="threads per worker")
    args = parser.parse_args()

    _harness.setup_django()
    from channels.models import Channel

    _harness.progress("resetting the bench database's catalog and channels")
    _harness.reset_data()
    env = _harness.production_env() | {
        "VELOCITY_GUARD_UNITS_PER_MIN": str(args.limit_per_min),
        "VELOCITY_GUARD_COVER_S": str(args.cover_s),
    }
    simulators, urls = _start_simulators(env)
    processes: list[subprocess.Popen[bytes]] = [simulators]
    try:
        web_port = _harness.free_port()
        web_url = f"http://127.0.0.1:{web_port}"
        world = _build_world(args, urls, web_url)
        _harness.progress(f"starting gunicorn on {web_url}, the workers and beat")
        processes.append(
            _harness.start_web(port=web_port, log_path=LOGS / "viral-web.log", env=env)
        )
        worker_logs = {}
        for name, queues in {"ingest-worker": "webhooks", "push-worker": "celery,push"}.items():
            worker_logs[name] = LOGS / f"viral-{name}.log"
            processes.append(
                _harness.start_worker(
                    name=name,
                    queues=queues,
                    log_path=worker_logs[name],
                    env=env,
                    pool="threads",
                    concurrency=args.concurrency,
                )
            )
        processes.append(
            _harness.start_process(
                [sys.executable, "-m", "celery", "-A", "nventory", "beat", "--loglevel=WARNING"],
                LOGS / "viral-beat.log",
                env,
            )
        )
        _harness.wait_for(lambda: _harness.web_answers(web_port), 60, "web")
        for name, log in worker_logs.items():
            _harness.wait_for_worker(log, name)

        _harness.progress("initial sync of every listing to every channel")
        from channels.pipeline import outbox

        outbox.wake_pushers(channel_ids=[c.pk for c in Channel.objects.all()])
        _harness.wait_for(lambda: _settled(world), 180, "initial sync")
        from channels.models import PushAttempt

        PushAttempt.objects.all().delete()
        cpu_before = _harness.cpu_seconds(
            dict(zip(["simulators", "web", *worker_logs, "beat"], processes, strict=True))
        )

        _harness.progress(
            f"viral burst: {args.orders} orders at {args.per_s:g}/s on TikTok Shop "
            f"({args.stock} units), others at {args.other_per_s:g}/s each"
        )
        started_at = time.time()
        burst = _harness.simulator_post(
            world.session,
            world.urls["tiktok"],
            f"/_sim/shops/{world.tenants['tiktok']}/viral",
            {"sku_id": world.viral.code, "orders": args.orders, "per_s": args.per_s},
        )
        burst_s = args.orders / args.per_s
        other_orders: dict[str, list[str]] = {p: [] for p in ("shopify", "walmart", "ebay")}
        buyers = [
            threading.Thread(
                target=_buy, args=(world, platform, args.other_per_s, burst_s, orders)
            )
            for platform, orders in other_orders.items()
        ]
        for buyer in buyers:
            buyer.start()
        while True:
            time.sleep(2)
            state = _burst(world, burst["burst_id"])
            _harness.progress(
                f"  TikTok Shop: {state['placed']} placed, {state['sold_out']} sold out"
            )
            if state["done"]:
                break
        for buyer in buyers:
            buyer.join()

        _harness.progress("waiting for the pipeline to settle")
        try:
            _harness.wait_for(lambda: _settled(world), 180, "settle", interval_s=1)
            settled_ok = True
        except TimeoutError:
            settled_ok = False
        cpu_after = _harness.cpu_seconds(
            dict(zip(["simulators", "web", *worker_logs, "beat"], processes, strict=True))
        )
        figures = _measure(world, state, other_orders, started_at, settled_ok)
        figures["cpu_s"] = {
            name: round(cpu_after[name] - cpu_before[name], 1) for name in cpu_after
        }
        figures.update(
            orders=args.orders,
            per_s=args.per_s,
            stock=args.stock,
            other_per_s=args.other_per_s,
            limit_per_min=args.limit_per_min,
            cover_s=args.cover_s,
        )
        for platform, lag in figures["lag_ms"].items():
            _harness.progress(
                f"{platform}: {lag['pushes']} pushes, p50 {lag['p50']} ms, "
                f"p99 {lag['p99']} ms, max {lag['max']} ms"
            )
        _harness.progress(
            f"oversold {figures['oversold']}, lost {figures['lost']}, rises "
            f"{figures['guard_rises']}, settled {settled_ok}"
        )
        _harness.emit(figures)
    finally:
        _harness.stop_processes(processes)


class World:
    """The bench's catalog, channels and the simulators' tenants."""

    def __init__(self, urls: dict[str, str]) -> None:
        self.urls = urls
        self.session = _harness.http_session()
        self.tenants: dict[str, str] = {}
        self.channels: dict[str, Any] = {}
        self.location: Any = None
        self.viral: Any = None
        self.skus: list[Any] = []
        # Per platform: the listing's external id and (Shopify) variant, by SKU code.
        self.shopify_variants: dict[str, int] = {}
        self.lock = threading.Lock()


def _start_simulators(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], dict[str, str]]:
    """One process serving every platform, each on a free port; their URLs."""
    process = subprocess.Popen(
        [sys.executable, "-m", "channels.simulators", *(f"--{p}=0" for p in PLATFORMS)],
        cwd=_harness.PROJECT_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    assert process.stdout is not None
    urls: dict[str, str] = {}
    while len(urls) < len(PLATFORMS):
        line = process.stdout.readline().decode().strip()
        if not line:
            raise RuntimeError("the simulators did not start")
        name, _, url = line.partition(" simulator listening on ")
        if url:
            urls[DISPLAY_NAMES[name]] = url
    return process, urls


def _build_world(args: Any, urls: dict[str, str], web_url: str) -> World:
    from channels import services as channel_services
    from channels.models import Channel
    from inventory import services
    from inventory.models import Location, Sku

    world = World(urls)
    world.location = Location.objects.create(code="VIRAL-WH", name="Viral bench warehouse")
    world.viral = Sku.objects.create(code="VIRAL-LIPSTICK", name="The lipstick in the video")
    world.skus = [world.viral] + [
        Sku.objects.create(code=f"VIRAL-OTHER-{n}", name=f"Ordinary {n}")
        for n in range(OTHER_SKUS)
    ]
    for sku in world.skus:
        services.receive_stock(
            sku_id=sku.pk,
            location_id=world.location.pk,
            quantity=args.stock if sku == world.viral else OTHER_UNITS,
            context=services.EventContext(idempotency_key=f"viral-seed-{sku.pk}"),
        )
    post = lambda platform, path, body: _harness.simulator_post(  # noqa: E731
        world.session, urls[platform], path, body
    )

    def channel(platform: str, slug: str, **fields: Any) -> Any:
        created = channel_services.create_channel(
            fields=channel_services.ChannelFields(
                platform=platform,
                name=slug,
                slug=slug,
                mode=Channel.Mode.ACTIVE,
                rate_limit_per_s=1000,
                **fields,
            ),
            webhook_secret=_secret(slug),
            location_ids=[world.location.pk],
        )
        world.channels[platform] = created
        world.tenants[platform] = slug
        return created

    def listings(created: Any, extra: Any) -> None:
        for index, sku in enumerate(world.skus):
            external_id, identifiers = extra(index, sku)
            channel_services.create_listing(
                fields=channel_services.ListingFields(
                    channel_id=created.pk,
                    sku_id=sku.pk,
                    external_id=external_id,
                    external_sku=sku.code,
                    extra_identifiers=identifiers,
                )
            )

    def hook(platform: str, slug: str) -> str:
        return f"{web_url}/webhooks/{platform}/{slug}/"

    # TikTok Shop: the app secret signs its webhooks, so it is the channel's webhook secret.
    slug = "viral-tiktok"
    shop = post(
        "tiktok",
        "/_sim/shops",
        {
            "shop": slug,
            "app_key": f"key-{slug}",
            "app_secret": _secret(slug),
            "webhook_url": hook("tiktok", slug),
            "webhook_retry_base_s": 0.5,
        },
    )["shop"]
    post(
        "tiktok",
        f"/_sim/shops/{slug}/skus",
        {"skus": [{"sku_id": s.code, "product_id": f"p-{s.code}"} for s in world.skus]},
    )
    created = channel(
        Channel.Platform.TIKTOK,
        slug,
        api_base_url=urls["tiktok"],
        credentials={
            "app_key": f"key-{slug}",
            "app_secret": _secret(slug),
            "shop_cipher": shop["shop_cipher"],
            "refresh_token": shop["refresh_token"],
        },
    )
    listings(created, lambda i, s: (s.code, {"product_id": f"p-{s.code}"}))

    slug = "viral-shopify"
    post(
        "shopify",
        "/_sim/shops",
        {
            "shop": slug,
            "access_token": f"shpat_{slug}",
            "webhook_url": hook("shopify", slug),
            "webhook_secret": _secret(slug),
            "location_id": 1,
            "bucket_size": 100_000,
            "restore_rate": 100_000,
        },
    )
    post(
        "shopify",
        f"/_sim/shops/{slug}/items",
        {
            "items": [
                {"inventory_item_id": 1000 + i, "variant_id": 2000 + i, "sku": s.code}
                for i, s in enumerate(world.skus)
            ]
        },
    )
    world.shopify_variants = {s.code: 2000 + i for i, s in enumerate(world.skus)}
    created = channel(
        Channel.Platform.SHOPIFY,
        slug,
        api_base_url=f"{urls['shopify']}/shops/{slug}",
        credentials={"access_token": f"shpat_{slug}"},
        platform_settings={"location_id": 1, "api_version": "2026-01"},
    )
    listings(created, lambda i, s: (str(1000 + i), {"variant_id": str(2000 + i)}))

    slug = "viral-walmart"
    post(
        "walmart",
        "/_sim/sellers",
        {
            "seller": slug,
            "client_id": f"cid-{slug}",
            "client_secret": _secret(slug),
            "webhook_url": hook("walmart", slug),
            "webhook_secret": _secret(slug),
            "webhook_retry_base_s": 0.5,
            "feed_processing_s": 0,
        },
    )
    post(
        "walmart",
        f"/_sim/sellers/{slug}/items",
        {"items": [{"sku": s.code, "quantity": 0} for s in world.skus]},
    )
    created = channel(
        Channel.Platform.WALMART,
        slug,
        api_base_url=f"{urls['walmart']}/sellers/{slug}",
        credentials={"client_id": f"cid-{slug}", "client_secret": _secret(slug)},
        platform_settings={"feed_threshold": 100},
    )
    listings(created, lambda i, s: (s.code, {}))

    slug = "viral-ebay"
    items = post(
        "ebay",
        "/_sim/sellers",
        {
            "seller": slug,
            "client_id": f"app-{slug}",
            "client_secret": _secret(slug),
            "refresh_token": f"refresh-{slug}",
            "dev_id": f"dev-{slug}",
            "webhook_url": hook("ebay", slug),
            "webhook_retry_base_s": 0.5,
        },
    )
    items = post(
        "ebay",
        f"/_sim/sellers/{slug}/items",
        {"items": [{"sku": s.code, "quantity": 0} for s in world.skus]},
    )["items"]
    offers = {item["sku"]: item["offer_id"] for item in items}
    created = channel(
        Channel.Platform.EBAY,
        slug,
        api_base_url=f"{urls['ebay']}/sellers/{slug}",
        credentials={
            "client_id": f"app-{slug}",
            "client_secret": _secret(slug),
            "refresh_token": f"refresh-{slug}",
            "dev_id": f"dev-{slug}",
        },
    )
    listings(created, lambda i, s: (s.code, {"offer_ids": [offers[s.code]]}))

    seller = "VIRALAMZN"
    post(
        "amazon",
        "/_sim/sellers",
        {
            "seller_id": seller,
            "client_id": f"amzn1.application-oa2-client.{seller}",
            "client_secret": _secret(seller),
            "refresh_token": f"Atzr|{seller}",
            "patch_apply_delay_s": 0.5,
            "rate_scale": 100,
        },
    )
    post(
        "amazon",
        f"/_sim/sellers/{seller}/listings",
        {"listings": [{"sku": s.code, "quantity": 0} for s in world.skus]},
    )
    created = channel(
        Channel.Platform.AMAZON,
        seller.lower(),
        api_base_url=urls["amazon"],
        credentials={
            "client_id": f"amzn1.application-oa2-client.{seller}",
            "client_secret": _secret(seller),
            "refresh_token": f"Atzr|{seller}",
        },
        platform_settings={
            "seller_id": seller,
            "token_url": f"{urls['amazon']}/auth/o2/token",
            "submission_poll_interval_s": 1,
            "throttle_backoff_s": 0.1,
        },
    )
    world.tenants["amazon"] = seller
    listings(created, lambda i, s: (s.code, {}))
    return world


def _shown(world: World, platform: str) -> dict[str, int]:
    """What the channel shows of each SKU, by code."""
    base, tenant = world.urls[platform], world.tenants[platform]
    get = lambda path: world.session.get(base + path, timeout=30).json()  # noqa: E731
    if platform == "tiktok":
        return {
            s["sku_id"]: int(s["available_quantity"])
            for s in get(f"/_sim/shops/{tenant}/skus")["skus"]
        }
    if platform == "shopify":
        return {i["sku"]: int(i["available"]) for i in get(f"/_sim/shops/{tenant}/items")["items"]}
    if platform == "walmart":
        return {
            i["sku"]: int(i["availToSellQty"])
            for i in get(f"/_sim/sellers/{tenant}/items")["items"]
        }
    if platform == "ebay":
        return {i["sku"]: int(i["listed"]) for i in get(f"/_sim/sellers/{tenant}/items")["items"]}
    return {
        i["sku"]: int(i["quantity"]) for i in get(f"/_sim/sellers/{tenant}/listings")["listings"]
    }


def _buy(world: World, platform: str, per_s: float, for_s: float, orders: list[str]) -> None:
    """A buyer on the channel at ``per_s`` for ``for_s``: the viral SKU one time in two, a
    unit at a time, only while the channel shows one."""
    session = _harness.http_session()
    base, tenant = world.urls[platform], world.tenants[platform]
    started = time.monotonic()
    for number in range(int(per_s * for_s)):
        delay = started + number / per_s - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        sku = world.viral if number % 2 == 0 else random.choice(world.skus[1:])
        if _shown(world, platform).get(sku.code, 0) < 1:
            continue
        if platform == "shopify":
            line: dict[str, Any] = {"variant_id": world.shopify_variants[sku.code], "quantity": 1}
            path = f"/_sim/shops/{tenant}/orders"
        else:
            line = {"sku": sku.code, "quantity": 1}
            path = f"/_sim/sellers/{tenant}/orders"
        answer = _harness.simulator_post(session, base, path, {"lines": [line]})
        order_id = (
            answer.get("order_id")
            or answer.get("purchase_order_id")
            or answer.get("line_item_ids", ["?"])[0]
        )
        with world.lock:
            orders.append(str(order_id))


def _burst(world: World, burst_id: int) -> dict[str, Any]:
    bursts = world.session.get(
        f"{world.urls['tiktok']}/_sim/shops/{world.tenants['tiktok']}/viral", timeout=30
    ).json()["bursts"]
    return next(b for b in bursts if b["burst_id"] == burst_id)


def _settled(world: World) -> bool:
    """Nothing waiting in the pipeline and every channel showing what nventory lists,
    but for the listings a platform holds back itself (eBay's daily revisions of the
    viral listing, spaced in the day's last fifth): those are ``_held_by_platforms``."""
    from channels import selectors
    from channels.models import PendingPush, SubmittedWrite, WebhookReceipt

    waiting = (
        WebhookReceipt.Status.RECEIVED,
        WebhookReceipt.Status.FAILED,
        WebhookReceipt.Status.AWAITING_ORDER,
    )
    if WebhookReceipt.objects.filter(status__in=waiting).exists():
        return False
    if PendingPush.objects.filter(held_reason="").exists() or SubmittedWrite.objects.exists():
        return False
    held = set(PendingPush.objects.exclude(held_reason="").values_list("listing_id", flat=True))
    for platform, channel in world.channels.items():
        listings = [
            listing for listing in channel.listings.select_related("sku") if listing.pk not in held
        ]
        listed = selectors.listed_quantities(channel=channel, listings=listings)
        shown = _shown(world, platform)
        if any(shown.get(listing.sku.code) != listed[listing.pk] for listing in listings):
            return False
    return True


def _held_by_platforms() -> list[str]:
    """The listings whose figure waits because their platform takes no more now, why."""
    from channels.models import PendingPush

    return [
        f"{pending.channel.platform} {pending.listing.external_id}: {pending.held_reason}"
        for pending in PendingPush.objects.exclude(held_reason="").select_related(
            "channel", "listing"
        )
    ]


def _measure(
    world: World,
    burst: dict[str, Any],
    other_orders: dict[str, list[str]],
    started_at: float,
    settled_ok: bool,
) -> dict[str, Any]:
    from channels.models import BufferRule, OversellIncident, PushAttempt
    from inventory.models import EventKind, InventoryEvent, StockLevel

    tiktok = world.channels["tiktok"]
    placed = [order_id for order_id, _ in burst["order_ids"]]
    committed = set(
        InventoryEvent.objects.filter(
            kind=EventKind.ORDER_COMMITTED, actor=tiktok.slug, sku=world.viral
        ).values_list("external_reference", flat=True)
    )
    level = StockLevel.objects.get(sku=world.viral, location=world.location)
    lag_ms = {}
    for platform, channel in world.channels.items():
        lags = sorted(
            latency_ms
            for latency_ms in PushAttempt.objects.filter(
                channel=channel, listing__sku=world.viral, outcome=PushAttempt.Outcome.APPLIED
            ).values_list("latency_ms", flat=True)
            if latency_ms is not None
        )
        lag_ms[platform] = {
            "pushes": len(lags),
            "p50": round(_harness.percentile(lags, 0.5), 1),
            "p99": round(_harness.percentile(lags, 0.99), 1),
            "max": round(max(lags), 1) if lags else None,
        }
    rises = list(
        BufferRule.history.filter(
            channel_id=tiktok.pk,
            sku_id=world.viral.pk,
            history_change_reason__contains="holds back",
        )
        .order_by("history_date")
        .values_list("velocity_units", "history_change_reason", "history_date")
    )
    return {
        "tiktok_placed": len(placed),
        "tiktok_sold_out": burst["sold_out"],
        "other_orders": {platform: len(ids) for platform, ids in other_orders.items()},
        "viral_committed_units": level.committed,
        "viral_available": level.on_hand - level.committed - level.reserved,
        "oversold": OversellIncident.objects.count(),
        "oversold_units": sum(OversellIncident.objects.values_list("shortfall", flat=True)),
        # TikTok Shop orders placed and never committed, plus committed twice or unknown.
        "lost": len(set(placed) - committed) + len(committed - set(placed)),
        "guard_rises": [units for units, _, _ in rises],
        "guard_first_rise_after_s": round(rises[0][2].timestamp() - started_at, 1)
        if rises
        else None,
        "guard_reasons": [reason for _, reason, _ in rises],
        "lag_ms": lag_ms,
        "settled": settled_ok,
        "held_by_platforms": _held_by_platforms(),
    }


if __name__ == "__main__":
    main()
