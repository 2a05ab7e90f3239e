"""What every fault scenario does: a catalog on simulated shops, a burst of orders from
them as signed webhooks at a steady rate, a fault at a chosen moment, then the wait for
the system to converge and the invariants (``checker``).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import itertools
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django_celery_beat.models import IntervalSchedule, PeriodicTask

from channels.models import Channel, Listing
from channels.pipeline import ratelimit
from inventory.models import Sku
from tests import factories
from tests.reliability import checker
from tests.reliability.stack import LOG_DIR, Stack

_shops = itertools.count(1)
RESULTS_FILE = LOG_DIR / "results.txt"

# The safety nets beat runs (their production intervals; migrations create them, and the
# transactional tests empty every table between tests, so each scenario makes its own).
SWEEPS = {
    "channels.sweep_outbox": 10,
    "channels.sweep_webhook_receipts": 30,
}


@dataclasses.dataclass
class Catalog:
    channels: list[Channel]
    skus: list[Sku]
    # (channel slug, sku id) → the shop's variant id of that SKU.
    variants: dict[tuple[str, int], int]
    stock: dict[int, int]
    # (channel slug, sku id) → the item a shop was never given although its listing names
    # it: the shop refuses every write of it, and nobody can buy it there.
    withheld: dict[tuple[str, int], dict[str, Any]] = dataclasses.field(default_factory=dict)

    def listing(self, channel: Channel, sku: Sku) -> Listing:
        return Listing.objects.get(channel=channel, sku=sku)

    def item_id(self, channel: Channel, sku: Sku) -> int:
        return self.variants[(channel.slug, sku.pk)] - 1_000_000


def schedule_sweeps() -> None:
    for task, every_s in SWEEPS.items():
        interval, _ = IntervalSchedule.objects.get_or_create(every=every_s, period="seconds")
        PeriodicTask.objects.get_or_create(
            name=task, defaults={"task": task, "interval": interval, "expire_seconds": every_s}
        )


def build_catalog(
    simulator: Any,
    stack: Stack,
    *,
    shops: int,
    skus: int,
    units: int,
    withheld: frozenset[tuple[int, int]] = frozenset(),
) -> Catalog:
    """``skus`` SKUs of ``units`` each, every one listed on every shop, the shops already
    showing the master's figure; except each (shop index, SKU index) of ``withheld``,
    listed but missing from its shop (``Catalog.withheld``)."""
    location = factories.make_location()
    made = [factories.make_sku() for _ in range(skus)]
    for sku in made:
        factories.stock(sku, location, units)
    channels = []
    variants = {}
    missing: dict[tuple[str, int], dict[str, Any]] = {}
    for shop_index in range(shops):
        name = f"chaos-{next(_shops)}-{time.monotonic_ns()}"
        secret = f"secret-{name}-0123456789abcdef"
        channel = factories.make_channel(
            locations=[location],
            slug=name,
            name=name,
            mode=Channel.Mode.ACTIVE,
            api_base_url=simulator.shop_url(name),
            credentials={"access_token": f"shpat_{name}"},
            webhook_secret=secret,
            rate_limit_per_s=1000,
            platform_settings={"location_id": 1, "retry_base_s": 0.2, "timeout_s": 5},
        )
        simulator.create_shop(
            name,
            location_id=1,
            webhook_url=f"{stack.web_url}/webhooks/shopify/{name}/",
            webhook_secret=secret,
            webhook_retry_base_s=1.0,
            bucket_size=100000,
            restore_rate=10000,
        )
        items = []
        for number, sku in enumerate(made, start=1):
            item_id = 100_000 + number
            variants[(name, sku.pk)] = item_id + 1_000_000
            item = {
                "inventory_item_id": item_id,
                "variant_id": item_id + 1_000_000,
                "sku": sku.code,
                "available": units,
            }
            if (shop_index, number - 1) in withheld:
                missing[(name, sku.pk)] = item
            else:
                items.append(item)
            factories.make_listing(
                channel=channel,
                sku=sku,
                external_id=str(item_id),
                external_sku=sku.code,
                extra_identifiers={"variant_id": str(item_id + 1_000_000)},
            )
        simulator.add_items(name, items)
        channels.append(channel)
    for channel in channels:
        ratelimit.reset(channel_id=channel.pk)
    return Catalog(
        channels=channels,
        skus=made,
        variants=variants,
        stock={s.pk: units for s in made},
        withheld=missing,
    )


@dataclasses.dataclass
class Fault:
    """Started ``at_s`` seconds into the burst, on a thread; ``cleared_at`` is set by it
    (time.monotonic) when the fault is over."""

    at_s: float
    inject: Callable[[Fault], None]
    cleared_at: float = 0.0
    figures: dict[str, Any] = dataclasses.field(default_factory=dict)


def place_orders(
    simulator: Any,
    catalog: Catalog,
    *,
    orders: int,
    rate_per_s: float,
    faults: list[Fault] = (),  # type: ignore[assignment]
    seed: int = 19,
    after_warmup: Callable[[], object] | None = None,
) -> checker.Burst:
    """One-unit orders on random shops and SKUs at a steady rate; the faults run meanwhile.
    Returns once every order is placed and every fault is over."""
    chooser = random.Random(seed)

    def on_sale() -> tuple[Channel, Sku]:
        while True:
            channel, sku = chooser.choice(catalog.channels), chooser.choice(catalog.skus)
            if (channel.slug, sku.pk) not in catalog.withheld:
                return channel, sku

    plan = [on_sale() for _ in range(orders)]
    ordered: Counter[int] = Counter(sku.pk for _, sku in plan)
    deadlocks_before = checker.deadlocks()
    # Warm-up: the first requests of each web process load the code and open their
    # connections (seconds); the acknowledgements are measured after it.
    warmup = [on_sale() for _ in range(20)]
    ordered.update(sku.pk for _, sku in warmup)
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        for future in [
            pool.submit(
                simulator.place_order,
                channel.slug,
                [{"variant_id": catalog.variants[(channel.slug, sku.pk)], "quantity": 1}],
            )
            for channel, sku in warmup
        ]:
            future.result()
    if after_warmup is not None:
        after_warmup()
    measure_from = time.time()
    started = time.monotonic()
    fault_threads = []
    for fault in faults:

        def run(fault: Fault = fault) -> None:
            time.sleep(max(0.0, fault.at_s - (time.monotonic() - started)))
            fault.inject(fault)
            fault.cleared_at = fault.cleared_at or time.monotonic()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        fault_threads.append(thread)

    def buy(number: int, channel: Channel, sku: Sku) -> None:
        time.sleep(max(0.0, number / rate_per_s - (time.monotonic() - started)))
        simulator.place_order(
            channel.slug, [{"variant_id": catalog.variants[(channel.slug, sku.pk)], "quantity": 1}]
        )

    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        for future in [
            pool.submit(buy, number, channel, sku) for number, (channel, sku) in enumerate(plan)
        ]:
            future.result()
    for thread in fault_threads:
        thread.join()
    return checker.Burst(
        simulator=simulator,
        channels=catalog.channels,
        ordered=ordered,
        stock=dict(catalog.stock),
        orders_placed=orders + len(warmup),
        deadlocks_before=deadlocks_before,
        measure_from=measure_from,
    )


def converge(burst: checker.Burst, *, since: float, timeout_s: float) -> float:
    """Wait until the system has settled; seconds from ``since`` (the fault cleared)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if checker.settled(burst):
            return time.monotonic() - since
        time.sleep(0.5)
    return float("nan")


def report(scenario: str, verdict: checker.Verdict) -> str:
    """Print the scenario's line and keep it in ``.data/chaos/results.txt``."""
    line = verdict.line(scenario)
    print(line, flush=True)
    Path(RESULTS_FILE).parent.mkdir(parents=True, exist_ok=True)
    with Path(RESULTS_FILE).open("a") as results:
        results.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {line}\n")
    return line
