"""Screenshots of the console's main pages for the README (not a benchmark: it shares the
benches' harness, database and servers).

Seeds a small catalog in the bench database through the services (five channels, one per
platform; a dozen SKUs listed on each; a buffer rule set by an operator), adds the records
a working day leaves (pushes with their latency, an oversell, dead letters, an open
circuit breaker, a reconciliation run) and evaluates the alerts; then starts gunicorn as
in production and has headless Chromium (Debian's ``chromium``) save every console page
under ``/dashboard/`` into ``docs/screenshots/<page>.png``.

    .venv/bin/python bench/screenshots.py [--width 1280] [--height 800]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import shutil
import subprocess
import sys
from decimal import Decimal
from typing import Any

import _harness

_harness.ensure_servers()

import console  # noqa: E402  (after the servers: the bench module starts nothing itself)

OUTPUT_DIR = _harness.PROJECT_DIR / "docs" / "screenshots"
WEB_LOG = _harness.PROJECT_DIR / ".data" / "bench" / "screenshots-web.log"
CHROMIUM_PATH = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
PLATFORMS = (
    ("shopify", "Shopify store"),
    ("amazon", "Amazon US"),
    ("walmart", "Walmart"),
    ("ebay", "eBay"),
    ("tiktok", "TikTok Shop"),
)
PRODUCTS = (
    ("MUG-RED", "Red mug", "Mugs"),
    ("MUG-BLUE", "Blue mug", "Mugs"),
    ("MUG-GREEN", "Green mug", "Mugs"),
    ("TEE-S", "T-shirt S", "Tees"),
    ("TEE-M", "T-shirt M", "Tees"),
    ("TEE-L", "T-shirt L", "Tees"),
    ("CAP-BLACK", "Black cap", "Caps"),
    ("CAP-WHITE", "White cap", "Caps"),
    ("SOCKS-3", "Socks, 3 pairs", "Socks"),
    ("BAG-TOTE", "Tote bag", "Bags"),
    ("POSTER-A2", "Poster A2", "Prints"),
    ("PIN-SET", "Pin set", "Prints"),
)


def seed() -> str:
    """The small catalog and its day; the SKU whose pages are shown."""
    from django.db import connection
    from django.utils import timezone

    from channels import alerts, bulk_edits, selectors, services
    from channels.models import (
        Channel,
        ChannelBreaker,
        DeadLetter,
        Listing,
        ListingSyncState,
        OversellIncident,
        PendingPush,
        PushAttempt,
        UnmappedLine,
        WebhookReceipt,
    )
    from inventory import services as inventory_services
    from inventory.models import InventoryEvent, Location, Sku
    from reconciliation.models import Discrepancy, ReconciliationRun

    _harness.reset_data()
    rng = random.Random(17)
    warehouse = Location.objects.create(code="WH-MAIN", name="Main warehouse")
    skus = [
        Sku.objects.create(code=code, name=name, category=category)
        for code, name, category in PRODUCTS
    ]
    for sku in skus:
        inventory_services.receive_stock(
            sku_id=sku.pk,
            location_id=warehouse.pk,
            quantity=rng.randint(40, 400),
            context=inventory_services.EventContext(idempotency_key=f"shots-in-{sku.pk}"),
        )
    channels = []
    for number, (platform, name) in enumerate(PLATFORMS):
        channel = services.create_channel(
            fields=services.ChannelFields(
                platform=platform,
                name=name,
                slug=f"demo-{platform}",
                api_base_url="http://127.0.0.1:9/",
                mode=Channel.Mode.SHADOW if platform == "tiktok" else Channel.Mode.ACTIVE,
            ),
            webhook_secret=f"demo-webhook-secret-for-screenshots-{number}",
            location_ids=[warehouse.pk],
        )
        channels.append(channel)
        for sku in skus:
            services.create_listing(
                fields=services.ListingFields(
                    channel_id=channel.pk, sku_id=sku.pk, external_id=f"{platform}-{sku.code}"
                )
            )
    operator = console.bench_operator()
    bulk_edits.apply_bulk_buffer_rules(
        actor=operator,
        channel_ids=[channel.pk for channel in channels if channel.platform != "shopify"],
        sku_ids=[sku.pk for sku in skus if sku.category == "Mugs"],
        values=bulk_edits.BufferValues(percent=Decimal(10), fixed_units=2),
        reason="Mugs: holiday buffer",
    )
    now = timezone.now()
    # A day of sales, spread over the hours and the channels (an order is its channel's
    # when the channel's ingest committed it: the actor is the channel's slug), then the
    # pushes that followed them.
    for number in range(240):
        sku = rng.choice(skus)
        event = inventory_services.commit_order(
            sku_id=sku.pk,
            location_id=warehouse.pk,
            quantity=rng.randint(1, 3),
            context=inventory_services.EventContext(
                idempotency_key=f"shots-order-{number}",
                source="channel",
                actor=channels[number % len(channels)].slug,
                external_reference=f"#{1000 + number}",
            ),
        )
        InventoryEvent.objects.filter(pk=event.pk).update(
            created_at=now - dt.timedelta(minutes=6 * (240 - number))
        )
    PendingPush.objects.all().delete()
    listings = {
        (listing.channel_id, listing.sku_id): listing
        for channel in channels
        for listing in channel.listings.all()
    }
    pushes = []
    for number in range(1500):
        channel = channels[number % len(channels)]
        listing = listings[(channel.pk, rng.choice(skus).pk)]
        sent_at = now - dt.timedelta(seconds=57 * (1500 - number))
        latency_ms = rng.lognormvariate(6.2 + 0.4 * (number % len(channels)), 0.5)
        pushes.append(
            PushAttempt(
                channel=channel,
                listing=listing,
                target_quantity=rng.randint(0, 300),
                outcome=PushAttempt.Outcome.APPLIED,
                change_at=sent_at - dt.timedelta(milliseconds=latency_ms),
                sent_at=sent_at,
                acked_at=sent_at,
                latency_ms=latency_ms,
            )
        )
    PushAttempt.objects.bulk_create(pushes)
    shown = skus[0]
    short = inventory_services.commit_order(
        sku_id=skus[3].pk,
        location_id=warehouse.pk,
        quantity=1000,
        context=inventory_services.EventContext(
            idempotency_key="shots-oversold",
            source="channel",
            actor=channels[4].slug,
            external_reference="#2001",
        ),
        allow_shortfall=True,
    )
    OversellIncident.objects.create(
        channel=channels[4],
        sku=skus[3],
        listing=listings[(channels[4].pk, skus[3].pk)],
        order_reference="#2001",
        shortfall=short.shortfall,
        event=short,
    )
    PendingPush.objects.all().delete()
    ChannelBreaker.objects.create(
        channel=channels[2],
        failures=3,
        trips=1,
        failing_since=now - dt.timedelta(minutes=4),
        open_until=now + dt.timedelta(minutes=5),
        last_error="503 Service Unavailable",
    )
    for number in range(3):
        DeadLetter.objects.create(
            channel=channels[2],
            listing=listings[(channels[2].pk, skus[number].pk)],
            target_quantity=40 + number,
            attempts=[{"at": now.isoformat(), "error": "503 Service Unavailable"}] * 3,
        )
    run = ReconciliationRun.objects.create(
        channel=channels[0],
        kind=ReconciliationRun.Kind.POLL,
        status=ReconciliationRun.Status.DONE,
        channel_mode="active",
        listings_total=len(skus),
        listings_checked=len(skus),
        found=1,
        corrected=1,
        drift_percent=round(100 / len(skus), 2),
        finished_at=now,
    )
    Discrepancy.objects.create(
        run=run,
        channel=channels[0],
        listing=listings[(channels[0].pk, skus[5].pk)],
        sku=skus[5],
        category=skus[5].category,
        expected=30,
        actual=27,
        cause=Discrepancy.Cause.MANUAL_EDIT,
        evidence="The channel's figure moved with no order to explain it.",
        corrected=True,
    )
    # The day's webhooks: the Shopify store's orders, one it could not parse and one whose
    # processing failed; one of its orders names an item no listing has (a line waiting),
    # and eBay lists an item nobody mapped to a SKU yet (a gap).
    shop = channels[0]
    WebhookReceipt.objects.bulk_create(
        WebhookReceipt(
            channel=shop,
            topic="orders/create",
            dedupe_key=f"orders-create-{5000 + number}",
            body=b'{"id": %d}' % (5000 + number),
            status=WebhookReceipt.Status.PROCESSED,
            attempts=1,
            received_at=now - dt.timedelta(minutes=11 * number),
            processed_at=now - dt.timedelta(minutes=11 * number),
        )
        for number in range(1, 120)
    )
    WebhookReceipt.objects.create(
        channel=shop,
        topic="orders/create",
        dedupe_key="orders-create-5200",
        headers={"Content-Type": "application/json", "X-Shopify-Topic": "orders/create"},
        body=b'{"id": 5200, "line_items": [{"id": 1, "variant_id": 6001, "quantity": 2',
        status=WebhookReceipt.Status.QUARANTINED,
        error="Signed but unparseable: the JSON body ends inside an object.",
        attempts=1,
        received_at=now - dt.timedelta(minutes=42),
    )
    WebhookReceipt.objects.create(
        channel=shop,
        topic="orders/cancelled",
        dedupe_key="orders-cancelled-5117",
        headers={"Content-Type": "application/json", "X-Shopify-Topic": "orders/cancelled"},
        body=b'{"id": 5117, "cancel_reason": "customer"}',
        status=WebhookReceipt.Status.FAILED,
        error="OperationalError: the database closed the connection",
        attempts=3,
        received_at=now - dt.timedelta(minutes=17),
    )
    waiting_on = WebhookReceipt.objects.create(
        channel=shop,
        topic="orders/create",
        dedupe_key="orders-create-5230",
        body=b'{"id": 5230}',
        status=WebhookReceipt.Status.PROCESSED,
        attempts=1,
        received_at=now - dt.timedelta(minutes=8),
        processed_at=now - dt.timedelta(minutes=8),
    )
    UnmappedLine.objects.create(
        channel=shop,
        receipt=waiting_on,
        line_reference="5230/2",
        identifiers={"variant_id": "44120", "sku": "MUG-YELLOW"},
        quantity=2,
    )
    Listing.objects.create(
        channel=channels[3], sku=None, external_id="ebay-HOODIE-GREY", is_active=False
    )
    # Each listing shows what its last push sent: the master's figure through its buffer
    # rules (what the pushers store); then what the beat does every 5 minutes, the units
    # each channel holds back, which the scorecard's buffer utilization reads.
    every_listing = list(Listing.objects.all())
    for listing_id, explanation in selectors.explain_listings(listings=every_listing).items():
        ListingSyncState.objects.update_or_create(
            listing_id=listing_id,
            defaults={"last_pushed_quantity": explanation.listed, "last_pushed_at": now},
        )
    services.take_buffer_snapshots()
    alerts.evaluate_alerts()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return shown.code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=800)
    args = parser.parse_args()

    os.environ["SECRET_KEY"] = console.BENCH_SECRET_KEY
    # The demo channels point at loopback, as the local simulators do.
    os.environ["CHANNELS_ALLOW_LOCAL_HOSTS"] = "true"
    _harness.setup_django()
    _harness.progress("seeding a small catalog through the services")
    sku_code = seed()
    pages = console.console_pages(sku_code)
    # The bulk edit is shown with a preview worked out, as an operator sees it before saving.
    from channels.models import Channel

    if "buffers:bulk" in pages:
        chosen = "&".join(
            f"channels={pk}"
            for pk in Channel.objects.exclude(platform="shopify").values_list("pk", flat=True)
        )
        pages["buffers:bulk"] += (
            f"?{chosen}&category=Tees&percent=15&fixed_units=1&reason=Tees%3A+launch&preview=1"
        )
    env = console.web_env()
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "--verbosity=0"],
        cwd=_harness.PROJECT_DIR,
        env=env,
        check=True,
    )
    port = _harness.free_port()
    web = _harness.start_web(port=port, log_path=WEB_LOG, env=env, workers=1, threads=2)
    try:
        _harness.wait_for(lambda: _harness.web_answers(port), 60, "gunicorn answering")
        _capture(pages, port, console.session_cookie(), args)
    finally:
        _harness.stop_processes([web])


def _capture(pages: dict[str, str], port: int, cookie: str, args: Any) -> None:
    from playwright.sync_api import sync_playwright

    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    base = f"http://127.0.0.1:{port}"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM_PATH,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        context = browser.new_context(viewport={"width": args.width, "height": args.height})
        context.add_cookies([{"name": "sessionid", "value": cookie, "url": base}])
        page = context.new_page()
        for name, path in pages.items():
            # An action's route (POST only) answers GET with an empty 405, which Chromium
            # would show as an error page: asked first, with the same cookie, and left out.
            answer = context.request.get(base + path, max_redirects=0)
            if answer.status != 200:
                _harness.progress(f"  {name}: {path} answered {answer.status}, not shown")
                continue
            response = page.goto(base + path, wait_until="networkidle")
            if response is None or response.status != 200:
                _harness.progress(f"  {name}: {path} answered {response and response.status}")
                continue
            # Charts animate on load; their final frame is what a reader should see.
            page.wait_for_timeout(800)
            target = OUTPUT_DIR / (name.replace(":", "-") + ".png")
            page.screenshot(path=str(target), full_page=True)
            _harness.progress(f"  {name}: {path} → {target.relative_to(_harness.PROJECT_DIR)}")
        browser.close()


if __name__ == "__main__":
    main()
