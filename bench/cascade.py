"""Cascade: one component shared by 1,000 bundles, listed on 5 channels.

Bundle ``i`` is ``k_i`` x the shared component C (``k_i`` in 1..5) plus one unit of a part
of its own, stocked well beyond what C allows, so every bundle's quantity is C's ATS over
``k_i`` and each change of C moves every listing. Every bundle and C itself is listed on
every shop of one Shopify simulator (5,005 listings); a Celery worker with beat pushes.

Each repetition changes C's stock once through ``inventory.services.adjust_stock`` and
measures:

- ``pending_ms``: from just before the service call to its COMMIT, inside which one COUNT
  has checked that the outbox trigger owed a push to every listing (5,005 rows);
- ``applied_ms``: from the same start to the simulator's record (its change log's
  timestamps) of the last listing on any shop reaching its new quantity.

    .venv/bin/python bench/cascade.py [--repeat 5] [--bundles 1000] [--channels 5]
"""

from __future__ import annotations

import argparse
import functools
import time
import uuid
from typing import Any

import _harness

_harness.ensure_servers()

LOG_DIR = _harness.PROJECT_DIR / ".data" / "bench-cascade"
WORKER_LOG = LOG_DIR / "cascade-worker.log"
COMPONENT_STOCK = 10_000
# Far beyond what C allows any bundle, so C is always the scarcest component.
OWN_PART_STOCK = 1_000_000
# At least the largest k_i, so every bundle's floor(C / k_i) drops on every change.
CHANGE_UNITS = 7
MAX_UNITS_PER_BUNDLE = 5
PENDING_TARGET_MS = 100.0


def _items(session: Any, base: str, shop: str) -> dict[int, int]:
    response = session.get(f"{base}/_sim/shops/{shop}/items", timeout=30)
    response.raise_for_status()
    return {int(item["inventory_item_id"]): item["available"] for item in response.json()["items"]}


def _changes(session: Any, base: str, shop: str, since: int) -> list[dict[str, Any]]:
    response = session.get(
        f"{base}/_sim/shops/{shop}/changes", params={"since": since}, timeout=30
    )
    response.raise_for_status()
    return list(response.json()["changes"])


def _stamp(stamps: list[float]) -> None:
    stamps.append(time.perf_counter())


def _reached(
    session: Any,
    base: str,
    shop: str,
    since: int,
    shown: dict[int, int],
    want: dict[int, int],
) -> tuple[float, int]:
    """When the shop's last item reached its wanted quantity (the simulator's clock), and
    the last change-log sequence read. Items already showing it count from ``-inf``."""
    state = dict(shown)
    reached = {item: float("-inf") for item, quantity in want.items() if state[item] == quantity}
    deadline = time.monotonic() + 120
    while len(reached) < len(want):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{shop}: {len(want) - len(reached)} items not updated")
        time.sleep(0.02)
        for change in _changes(session, base, shop, since):
            since = change["seq"]
            item = int(change["inventory_item_id"])
            state[item] = change["available"]
            if change["available"] == want.get(item):
                reached[item] = change["time"]
            else:
                reached.pop(item, None)
    return max(reached.values()), since


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--bundles", type=int, default=1000)
    parser.add_argument("--channels", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=5, help="Celery worker processes")
    args = parser.parse_args()

    _harness.setup_django()
    from django.db import connection, transaction
    from simple_history.utils import bulk_create_with_history

    from bundles import services as bundle_services
    from channels.models import Channel, Listing, PendingPush, PushAttempt
    from channels.pipeline import outbox
    from channels.selectors import listed_quantities
    from inventory import services
    from inventory.models import Location, Sku

    _harness.progress("resetting the bench database's catalog, bundles and channels")
    _harness.reset_data()

    env = _harness.production_env()
    simulator, simulator_url = _harness.start_simulator(env)
    processes = [simulator]
    try:
        setup_started = time.perf_counter()
        location = Location.objects.create(code="BENCH-WH", name="Bench warehouse")
        component = Sku.objects.create(code="CASCADE-C", name="Shared component")
        parts = Sku.objects.bulk_create(
            Sku(code=f"CASCADE-P{n:04d}", name=f"Own part {n}") for n in range(args.bundles)
        )
        _harness.progress(f"stocking the shared component and {len(parts)} own parts")
        for sku, units in [
            (component, COMPONENT_STOCK),
            *((part, OWN_PART_STOCK) for part in parts),
        ]:
            services.receive_stock(
                sku_id=sku.pk,
                location_id=location.pk,
                quantity=units,
                context=services.EventContext(idempotency_key=f"cascade-seed-{sku.pk}"),
            )

        _harness.progress(f"creating {args.bundles} bundles through bundles.services")
        bundles_started = time.perf_counter()
        bundles = []
        for n, part in enumerate(parts):
            bundles.append(
                bundle_services.create_bundle(
                    code=f"CASCADE-B{n:04d}",
                    name=f"Bundle {n}",
                    lines=[(component, 1 + n % MAX_UNITS_PER_BUNDLE), (part, 1)],
                )
            )
            if (n + 1) % 250 == 0:
                _harness.progress(f"  {n + 1}/{args.bundles} bundles")
        bundles_s = time.perf_counter() - bundles_started

        listed = [component, *bundles]
        shops = [f"cascade-{n}" for n in range(args.channels)]
        channels = []
        session = _harness.http_session()
        _harness.progress(
            f"creating {len(shops)} channels and {len(shops) * len(listed)} listings"
        )
        for shop in shops:
            channel = Channel.objects.create(
                platform=Channel.Platform.SHOPIFY,
                name=shop,
                slug=shop,
                mode=Channel.Mode.ACTIVE,
                api_base_url=f"{simulator_url}/shops/{shop}",
                credentials={"access_token": f"shpat_{shop}"},
                webhook_secret=f"webhook-secret-of-{shop}-0123456789",
                rate_limit_per_s=1000,
                platform_settings={
                    "location_id": 1,
                    "api_version": "2026-01",
                    "max_batch_size": 250,
                },
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
                    # No webhooks in this bench: nothing listens there.
                    "webhook_url": "http://127.0.0.1:9/unused",
                    "webhook_secret": f"webhook-secret-of-{shop}-0123456789",
                    "location_id": 1,
                    "bucket_size": 100_000,
                    "restore_rate": 100_000,
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
                            "variant_id": 100_000 + index,
                            "sku": sku.code,
                            "available": 0,
                        }
                        for index, sku in enumerate(listed)
                    ]
                },
            )
            # In bulk (services.create_listing's one-by-one outbox writes would take most of
            # the setup); owed below in one statement, which is what it would have done.
            with transaction.atomic():
                created = bulk_create_with_history(
                    [
                        Listing(
                            channel=channel,
                            sku=sku,
                            external_id=str(1000 + index),
                            external_sku=sku.code,
                            extra_identifiers={"variant_id": str(100_000 + index)},
                        )
                        for index, sku in enumerate(listed)
                    ],
                    Listing,
                    batch_size=1000,
                )
                outbox.mark_listings_owed(listing_ids=[listing.pk for listing in created])
        listing_count = Listing.objects.count()
        setup_s = time.perf_counter() - setup_started
        _harness.progress(
            f"catalog set up in {setup_s:.1f} s ({bundles_s:.1f} s of it creating bundles)"
        )

        _harness.progress("starting a Celery worker with beat")
        processes.append(
            _harness.start_worker(
                name="cascade",
                # "push": the per-channel push queues, added by the worker at start.
                queues="celery,push",
                log_path=WORKER_LOG,
                env=env,
                pool="prefork",
                concurrency=args.concurrency,
                beat=True,
            )
        )
        _harness.wait_for_worker(WORKER_LOG)

        def expected() -> dict[str, dict[int, int]]:
            """Per shop, each inventory item's quantity as the master lists it now."""
            by_shop = {}
            for shop, channel in zip(shops, channels, strict=True):
                listings = list(Listing.objects.filter(channel=channel))
                quantities = listed_quantities(channel=channel, listings=listings)
                by_shop[shop] = {int(lst.external_id): quantities[lst.pk] for lst in listings}
            return by_shop

        _harness.progress("initial sync of every listing to every shop")
        sync_started = time.perf_counter()
        outbox.wake_pushers(channel_ids=[channel.pk for channel in channels])
        initial = expected()
        _harness.wait_for(
            lambda: (
                not PendingPush.objects.exists()
                and all(_items(session, simulator_url, shop) == initial[shop] for shop in shops)
            ),
            300,
            "initial sync",
        )
        _harness.progress(f"initial sync done in {time.perf_counter() - sync_started:.1f} s")
        PushAttempt.objects.all().delete()
        last_seq = {
            shop: max((c["seq"] for c in _changes(session, simulator_url, shop, 0)), default=0)
            for shop in shops
        }

        service_ms: list[float] = []
        commit_ms: list[float] = []
        pending_ms: list[float] = []
        applied_ms: list[float] = []
        pushes: list[int] = []
        for repetition in range(1, args.repeat + 1):
            _harness.wait_for(lambda: not PendingPush.objects.exists(), 60, "outbox empty")
            PushAttempt.objects.all().delete()
            shown = {shop: _items(session, simulator_url, shop) for shop in shops}
            committed_at: list[float] = []

            wall_started = time.time()
            started = time.perf_counter()
            with transaction.atomic():
                # Registered first, so it runs first after COMMIT: before the stock
                # change's own hooks (waking the pushers) that follow the commit.
                transaction.on_commit(functools.partial(_stamp, committed_at))
                services.adjust_stock(
                    sku_id=component.pk,
                    location_id=location.pk,
                    delta=-CHANGE_UNITS,
                    context=services.EventContext(
                        idempotency_key=f"cascade-{uuid.uuid4()}", reason="bench"
                    ),
                )
                serviced = time.perf_counter()
                with connection.cursor() as cursor:
                    # Both insert and bump stamp statement_timestamp(): rows of this change.
                    cursor.execute(
                        "SELECT count(*) FROM channels_pendingpush "
                        "WHERE last_change_at >= to_timestamp(%s)",
                        [wall_started],
                    )
                    (owed,) = cursor.fetchone()
                checked = time.perf_counter()
            if owed != listing_count:
                raise AssertionError(f"{owed} pending pushes written, {listing_count} expected")
            service_ms.append((serviced - started) * 1000)
            commit_ms.append((committed_at[0] - checked) * 1000)
            pending_ms.append((committed_at[0] - started) * 1000)

            want = expected()
            applied_at = wall_started
            for shop in shops:
                reached_at, last_seq[shop] = _reached(
                    session, simulator_url, shop, last_seq[shop], shown[shop], want[shop]
                )
                applied_at = max(applied_at, reached_at)
            applied_ms.append((applied_at - wall_started) * 1000)
            _harness.wait_for(lambda: not PendingPush.objects.exists(), 60, "outbox empty")
            pushes.append(PushAttempt.objects.filter(outcome="applied").count())
            _harness.progress(
                f"repetition {repetition}: service {service_ms[-1]:.1f} ms, "
                f"commit {commit_ms[-1]:.1f} ms, "
                f"pending {pending_ms[-1]:.1f} ms, applied {applied_ms[-1]:.1f} ms, "
                f"{pushes[-1]} pushes applied"
            )

        figures = {
            "pending_ms": round(_harness.percentile(pending_ms, 0.50), 1),
            "pending_ms_max": round(max(pending_ms), 1),
            "service_ms": round(_harness.percentile(service_ms, 0.50), 1),
            "service_ms_max": round(max(service_ms), 1),
            # COMMIT alone: it runs the outbox rows' deferred foreign-key checks.
            "commit_ms": round(_harness.percentile(commit_ms, 0.50), 1),
            "applied_ms": round(_harness.percentile(applied_ms, 0.50), 1),
            "applied_ms_max": round(max(applied_ms), 1),
            "bundles": args.bundles,
            "channels": len(channels),
            "listings": listing_count,
            "repeat": args.repeat,
            "pushes": round(sum(pushes) / len(pushes), 1),
            "setup_s": round(setup_s, 1),
            "pending_target_met": _harness.percentile(pending_ms, 0.50) < PENDING_TARGET_MS,
        }
        _harness.progress(
            f"p50 pending {figures['pending_ms']} ms (max {figures['pending_ms_max']}), "
            f"service alone {figures['service_ms']} ms, commit {figures['commit_ms']} ms, "
            f"applied {figures['applied_ms']} ms "
            f"(max {figures['applied_ms_max']}); target pending < {PENDING_TARGET_MS:g} ms: "
            f"{'met' if figures['pending_target_met'] else 'missed'}"
        )
        _harness.emit(figures)
    finally:
        _harness.stop_processes(processes)


if __name__ == "__main__":
    main()
