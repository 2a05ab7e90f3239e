"""Reconciliation: one full poll of 100,000 listings across 5 channels, 1% of them drifted.

Starts the Shopify simulator as its own process with 5 shops of 20,000 items each (their
throttle bucket raised to 1,000,000 points restored at 1,000,000 a second, so the
platform's cost limit never paces the reads), lists 20,000 SKUs on every shop, and sets
1% of the items on the simulator to another figure than the master's. Then it times
``reconciliation.services.reconcile_channels`` over all five channels at once (reads of
250 ids per GraphQL call, compared in bulk), checks that the discrepancies found are
exactly the items drifted, drains the correcting pushes in process and checks that every
drifted item now shows the master's figure.

    .venv/bin/python bench/reconcile.py [--channels 5] [--items 20000] [--drift 0.01]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import random
import time

import _harness

_harness.ensure_servers()

SEED = 20_240_601
FIRST_ITEM = 1_000_000
SIM_CHUNK = 5_000


# Bench seeding only: a receipt per SKU, ledger event and stock level written together as
# ``inventory.services.receive_stock`` would, in two statements instead of 20,000 calls.
# No listing exists yet, so the outbox trigger owes nothing.
_SEED_STOCK_SQL = """
WITH seeded AS (
    SELECT sku.id AS sku_id, %(location_id)s::bigint AS location_id,
           1 + (sku.id %% 50)::integer AS quantity
      FROM inventory_sku AS sku
), events AS (
    INSERT INTO inventory_inventoryevent
           (kind, sku_id, location_id, delta_on_hand, delta_committed, delta_reserved,
            on_hand_after, committed_after, reserved_after, shortfall, source, actor,
            external_reference, reason, idempotency_key, created_at)
    SELECT 'receipt', sku_id, location_id, quantity, 0, 0, quantity, 0, 0, 0, 'system',
           'bench', '', 'bench seed', 'bench-seed-' || sku_id, now()
      FROM seeded
)
INSERT INTO inventory_stocklevel (sku_id, location_id, on_hand, committed, reserved, updated_at)
SELECT sku_id, location_id, quantity, 0, 0, now() FROM seeded
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=5)
    parser.add_argument("--items", type=int, default=20_000, help="listings per channel")
    parser.add_argument("--drift", type=float, default=0.01, help="share of items drifted")
    parser.add_argument("--workers", type=int, default=5, help="channels read at once")
    args = parser.parse_args()

    _harness.setup_django()
    from django.db import connection
    from django.utils import timezone

    from channels.models import Channel, Listing, ListingSyncState, PendingPush, PushAttempt
    from inventory.models import Location, Sku
    from reconciliation import services

    _harness.progress("resetting the bench database's catalog, channels and runs")
    _harness.reset_data()

    simulator, simulator_url = _harness.start_simulator({**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        _harness.progress(f"seeding {args.items:,} SKUs and {args.channels} shops")
        location = Location.objects.create(code="BENCH-WH", name="Bench warehouse")
        Sku.objects.bulk_create(
            Sku(code=f"RB-{n:06d}", name=f"Bench {n}", category=f"Category {n % 12}")
            for n in range(args.items)
        )
        with connection.cursor() as cursor:
            cursor.execute(_SEED_STOCK_SQL, {"location_id": location.pk})
        quantity_by_sku = {
            sku_id: 1 + sku_id % 50 for sku_id in Sku.objects.values_list("pk", flat=True)
        }
        sku_ids = sorted(quantity_by_sku)

        rng = random.Random(SEED)
        session = _harness.http_session()
        channels = []
        injected: set[tuple[int, int]] = set()  # (channel id, inventory item id)
        now = timezone.now()
        for number in range(args.channels):
            shop = f"recon-bench-{number}"
            channel = Channel.objects.create(
                platform=Channel.Platform.SHOPIFY,
                name=shop,
                slug=shop,
                mode=Channel.Mode.ACTIVE,
                api_base_url=f"{simulator_url}/shops/{shop}",
                credentials={"access_token": f"shpat_{shop}"},
                webhook_secret=f"webhook-secret-of-{shop}-0123456789",
                rate_limit_per_s=100_000,
                platform_settings={"location_id": 1, "timeout_s": 30},
            )
            channel.locations.add(location)
            channels.append(channel)
            _harness.simulator_post(
                session,
                simulator_url,
                "/_sim/shops",
                {
                    "shop": shop,
                    "access_token": f"shpat_{shop}",
                    "location_id": 1,
                    "bucket_size": 1_000_000,
                    "restore_rate": 1_000_000,
                },
                timeout_s=120,
            )
            drifted = set(rng.sample(range(args.items), round(args.items * args.drift)))
            items = []
            for index, sku_id in enumerate(sku_ids):
                shown = quantity_by_sku[sku_id]
                if index in drifted:
                    shown = max(0, shown + rng.choice([-3, -2, -1, 1, 2, 3]))
                    if shown == quantity_by_sku[sku_id]:
                        shown += 1
                    injected.add((channel.pk, FIRST_ITEM + index))
                items.append(
                    {
                        "inventory_item_id": FIRST_ITEM + index,
                        "variant_id": 2 * FIRST_ITEM + index,
                        "sku": f"RB-{index:06d}",
                        "available": shown,
                    }
                )
            for start in range(0, len(items), SIM_CHUNK):
                _harness.simulator_post(
                    session,
                    simulator_url,
                    f"/_sim/shops/{shop}/items",
                    {"items": items[start : start + SIM_CHUNK]},
                    timeout_s=120,
                )
            # In bulk, not through channels.services: nothing is owed; the channel starts in
            # sync.
            listings = Listing.objects.bulk_create(
                Listing(
                    channel=channel,
                    sku_id=sku_id,
                    external_id=str(FIRST_ITEM + index),
                    extra_identifiers={"variant_id": str(2 * FIRST_ITEM + index)},
                )
                for index, sku_id in enumerate(sku_ids)
            )
            ListingSyncState.objects.bulk_create(
                ListingSyncState(
                    listing=listing,
                    last_pushed_quantity=quantity_by_sku[listing.sku_id],
                    last_pushed_at=now,
                    expected_channel_quantity=quantity_by_sku[listing.sku_id],
                )
                for listing in listings
                if listing.sku_id is not None
            )
        PendingPush.objects.all().delete()
        total = Listing.objects.count()
        _harness.progress(
            f"{total:,} listings on {len(channels)} channels, {len(injected):,} drifted; "
            f"reconciling with {args.workers} channels at once"
        )

        started = time.perf_counter()
        runs = services.reconcile_channels(max_workers=args.workers)
        seconds = time.perf_counter() - started
        failed = [run for run in runs if run.status != "done"]
        if failed:
            raise SystemExit(f"runs failed: {[(run.channel_id, run.error) for run in failed]}")
        found = sum(run.found for run in runs)
        checked = sum(run.listings_checked for run in runs)
        detected = {
            (channel_id, int(external_id))
            for channel_id, external_id in Listing.objects.filter(
                discrepancies__run__in=runs
            ).values_list("channel_id", "external_id")
        }
        owed = PendingPush.objects.count()
        _harness.progress(
            f"reconciled {checked:,} listings in {seconds:.2f} s: {found:,} discrepancies "
            f"(injected {len(injected):,}, exactly those: {detected == injected}), "
            f"{owed:,} pushes owed"
        )

        drain_started = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(channels)) as pool:
            list(pool.map(lambda channel: _drain(channel.pk), channels))
        drain_seconds = time.perf_counter() - drain_started
        sent = PushAttempt.objects.filter(outcome="applied").count()
        wrong = 0
        for channel in channels:
            shop_items = session.get(
                f"{simulator_url}/_sim/shops/{channel.slug}/items", timeout=120
            ).json()["items"]
            for item in shop_items:
                index = item["inventory_item_id"] - FIRST_ITEM
                wrong += item["available"] != quantity_by_sku[sku_ids[index]]
        _harness.progress(
            f"{sent:,} correcting pushes sent in {drain_seconds:.2f} s; "
            f"items still wrong on the shops: {wrong}"
        )
        _harness.emit(
            {
                "bench": "reconcile",
                "seconds": round(seconds, 3),
                "listings": checked,
                "channels": len(channels),
                "injected": len(injected),
                "found": found,
                "found_exactly_injected": detected == injected,
                "pushes_owed": owed,
                "pushes_sent": sent,
                "drain_seconds": round(drain_seconds, 3),
                "still_wrong_after_drain": wrong,
                "listings_per_s": round(checked / seconds) if seconds else None,
            }
        )
    finally:
        _harness.stop_processes([simulator])


def _drain(channel_id: int) -> None:
    from django.db import connection

    from channels.models import PendingPush
    from channels.pipeline import push

    try:
        deadline = time.monotonic() + 120
        while PendingPush.objects.filter(channel_id=channel_id).exists():
            if time.monotonic() > deadline:
                raise TimeoutError(f"channel {channel_id} did not drain")
            push.push_owed(channel_id=channel_id)
    finally:
        connection.close()


if __name__ == "__main__":
    main()
