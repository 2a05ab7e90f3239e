"""Buyers for the simulators: orders, cancellations and returns on every running platform.

``python -m channels.simulators.traffic --shopify URL --amazon URL ...`` (``make demo`` runs
it against its simulators) finds each simulator's tenants and the items they show, and
places orders at ``--rate`` a second, spread over the platforms, for what a buyer there can
see (a platform showing 0 of an item sells none of it: that is what nventory's pushes
protect). Some orders are cancelled or returned a little later where the platform's control
API can do it. Every ``--burst-every-s`` it provokes an oversell on purpose: the same item
bought at once, on every platform, for as much as each shows, faster than any sync can
follow; the master records the shortfall as an oversell incident. Every ``--fault-every-s``
a platform fails its next writes (503), so pushes are seen retrying. A line of figures is
printed every ``--report-every-s``.

It talks to the simulators' control API only (``/_sim/``), never to nventory, so it is what
a marketplace's buyers would be: outside the system.
"""

from __future__ import annotations

import argparse
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import requests

from channels.simulators.registry import PLATFORMS

JSON = dict[str, Any]


@dataclass(frozen=True)
class Shelf:
    """How one platform shows its items to buyers, in its control API's terms."""

    collection: str
    items_path: str
    items_key: str
    code: Callable[[JSON], str]
    available: Callable[[JSON], int]
    line: Callable[[JSON, int], JSON]
    # From a placed order's answer, the path (below the tenant) that cancels it; None: the
    # platform's simulator cannot cancel an order.
    cancel_path: Callable[[JSON], str] | None = None
    # The body of that cancellation (some platforms cancel some units, or grant later).
    cancel_body: Callable[[JSON], JSON] = lambda answer: {}
    # The path and body that return an order's units (restocked); None: no returns.
    refund: Callable[[JSON], tuple[str, JSON]] | None = None
    # The fault endpoint of its quantity writes (None: its faults apply to every call).
    write_endpoint: str | None = "write"


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


SHELVES: dict[str, Shelf] = {
    "shopify": Shelf(
        collection="shops",
        items_path="items",
        items_key="items",
        code=lambda item: str(item.get("sku", "")),
        available=lambda item: _int(item.get("available")),
        line=lambda item, quantity: {"variant_id": item["variant_id"], "quantity": quantity},
        write_endpoint=None,
        cancel_path=lambda answer: f"orders/{answer['order_id']}/cancel",
        refund=lambda answer: (
            f"orders/{answer['order_id']}/refund",
            {
                "lines": [
                    {"line_item_id": line_id, "quantity": 1, "restock_type": "return"}
                    for line_id in answer.get("line_item_ids", [])[:1]
                ]
            },
        ),
    ),
    "amazon": Shelf(
        collection="sellers",
        items_path="listings",
        items_key="listings",
        code=lambda item: str(item.get("sku", "")),
        available=lambda item: _int(item.get("quantity")),
        line=lambda item, quantity: {"sku": item["sku"], "quantity": quantity},
        write_endpoint="patchListingsItem",
    ),
    "walmart": Shelf(
        collection="sellers",
        items_path="items",
        items_key="items",
        code=lambda item: str(item.get("sku", "")),
        available=lambda item: _int(item.get("availToSellQty")),
        line=lambda item, quantity: {"sku": item["sku"], "quantity": quantity},
        cancel_path=lambda answer: f"orders/{answer['purchase_order_id']}/cancel",
    ),
    "ebay": Shelf(
        collection="sellers",
        items_path="items",
        items_key="items",
        code=lambda item: str(item.get("sku", "")),
        available=lambda item: _int(item.get("listed")),
        line=lambda item, quantity: {"sku": item["sku"], "quantity": quantity},
    ),
    "tiktok": Shelf(
        collection="shops",
        items_path="skus",
        items_key="skus",
        code=lambda item: str(item.get("seller_sku", "")),
        available=lambda item: _int(item.get("available_quantity")),
        line=lambda item, quantity: {"sku_id": item["sku_id"], "quantity": quantity},
        # One unit of the order's first SKU: a partial cancellation of a larger order. The
        # buyer's request is pending at first and granted a little later (type 11 twice).
        cancel_path=lambda answer: f"orders/{answer['order_id']}/cancellations",
        cancel_body=lambda answer: {
            "status": "CANCELLATION_REQUEST_PENDING",
            "then": "CANCELLATION_REQUEST_SUCCESS",
            "after_s": 2,
        },
        # One unit sent back and restocked, each step a type 12.
        refund=lambda answer: (
            f"orders/{answer['order_id']}/returns",
            {
                "return_type": "RETURN_AND_REFUND",
                "then": [
                    "AWAITING_BUYER_SHIP",
                    "BUYER_SHIPPED_ITEM",
                    "RETURN_OR_REFUND_REQUEST_COMPLETE",
                ],
                "after_s": 2,
            },
        ),
    ),
}


@dataclass(frozen=True)
class Store:
    """One tenant of one running simulator."""

    platform: str
    url: str
    tenant: str

    @property
    def shelf(self) -> Shelf:
        return SHELVES[self.platform]

    def control(self, path: str) -> str:
        return f"{self.url}/_sim/{self.shelf.collection}/{self.tenant}/{path}"


class TrafficGenerator:
    def __init__(self, stores: Sequence[Store], *, seed: int | None = None) -> None:
        self.stores = list(stores)
        self.random = random.Random(seed)
        self.session = requests.Session()
        self.counts: Counter[str] = Counter()
        self.lock = threading.Lock()

    def _count(self, name: str, by: int = 1) -> None:
        with self.lock:
            self.counts[name] += by

    def shelf_of(self, store: Store) -> list[JSON]:
        """The items a buyer of ``store`` sees, with what they show as available."""
        answer = self.session.get(store.control(store.shelf.items_path), timeout=10)
        answer.raise_for_status()
        return [
            item for item in answer.json().get(store.shelf.items_key, []) if isinstance(item, dict)
        ]

    def buy(self, store: Store, item: JSON, quantity: int) -> JSON | None:
        """One order; its answer, or None when the platform refused it."""
        response = self.session.post(
            store.control("orders"),
            json={"lines": [store.shelf.line(item, quantity)]},
            timeout=30,
        )
        if response.status_code >= 400:
            self._count(f"{store.platform}:refused")
            return None
        self._count(f"{store.platform}:orders")
        return dict(response.json())

    def place_one_order(self) -> None:
        """An order of one to two units of an item the chosen store shows in stock; now
        and then cancelled or returned afterwards."""
        store = self.random.choice(self.stores)
        in_stock = [item for item in self.shelf_of(store) if store.shelf.available(item) > 0]
        if not in_stock:
            self._count(f"{store.platform}:sold_out")
            return
        item = self.random.choice(in_stock)
        quantity = min(store.shelf.available(item), self.random.choice((1, 1, 1, 2)))
        answer = self.buy(store, item, quantity)
        if answer is None:
            return
        roll = self.random.random()
        if roll < 0.08:
            self.cancel(store, answer)
        elif roll < 0.12:
            self.return_units(store, answer)

    def cancel(self, store: Store, answer: JSON) -> bool:
        """Cancel the order of that answer where the platform can; whether it did."""
        if store.shelf.cancel_path is None:
            return False
        return self._post(
            store, store.shelf.cancel_path(answer), store.shelf.cancel_body(answer), "cancelled"
        )

    def return_units(self, store: Store, answer: JSON) -> bool:
        """Return units of the order of that answer where the platform can; whether it did."""
        if store.shelf.refund is None:
            return False
        path, body = store.shelf.refund(answer)
        return self._post(store, path, body, "returned")

    def _post(self, store: Store, path: str, body: JSON, counted_as: str) -> bool:
        response = self.session.post(store.control(path), json=body, timeout=30)
        if response.status_code < 400:
            self._count(f"{store.platform}:{counted_as}")
        return response.status_code < 400

    def provoke_oversell(self) -> str:
        """The item with the fewest units left everywhere, bought at once on every platform
        for all each shows: more than the master holds once two platforms sell it."""
        shelves = {store: self.shelf_of(store) for store in self.stores}
        totals: Counter[str] = Counter()
        for store, items in shelves.items():
            for item in items:
                totals[store.shelf.code(item)] += store.shelf.available(item)
        candidates = [code for code, total in totals.items() if total > 0]
        if not candidates:
            return "nothing left to oversell"
        code = min(candidates, key=lambda c: totals[c])
        orders = []
        for store, items in shelves.items():
            for item in items:
                if store.shelf.code(item) == code and store.shelf.available(item) > 0:
                    orders.append((store, item, store.shelf.available(item)))
        threads = [threading.Thread(target=self.buy, args=order, daemon=True) for order in orders]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self._count("provoked_bursts")
        ordered = sum(quantity for _, _, quantity in orders)
        return (
            f"provoked: {code} bought at once on {len(orders)} platforms, {ordered} units in "
            "all; more than one platform's share is an oversell the master records"
        )

    def inject_fault(self) -> str:
        """The next three writes of one platform answered 503: pushes retry and converge."""
        store = self.random.choice(self.stores)
        endpoint = store.shelf.write_endpoint
        self.session.post(
            store.control("faults"),
            json={
                "fail_next": 3,
                "fail_status": 503,
                **({"endpoint": endpoint} if endpoint else {}),
            },
            timeout=10,
        ).raise_for_status()
        self._count("faults")
        return f"fault: {store.platform} ({store.tenant}) fails its next 3 calls with 503"

    def report(self) -> str:
        with self.lock:
            counts = dict(self.counts)
        parts = []
        for platform in sorted({store.platform for store in self.stores}):
            figures = [
                f"{counts.get(f'{platform}:{name}', 0)} {name}"
                for name in ("orders", "cancelled", "returned", "refused", "sold_out")
                if counts.get(f"{platform}:{name}")
            ]
            parts.append(f"{platform}: {', '.join(figures) or 'nothing yet'}")
        return "; ".join(parts)


def discover_stores(urls: dict[str, str]) -> list[Store]:
    """Every tenant of every simulator named (``GET /_sim``), as a store to buy from."""
    stores = []
    for platform, url in urls.items():
        overview = requests.get(f"{url}/_sim", timeout=10).json()
        for tenant in overview.get(SHELVES[platform].collection, []):
            stores.append(Store(platform=platform, url=url.rstrip("/"), tenant=str(tenant)))
    return stores


def _wait_for_simulators(urls: dict[str, str], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    for platform, url in urls.items():
        while True:
            try:
                requests.get(f"{url}/_sim", timeout=2).raise_for_status()
                break
            except requests.RequestException:
                if time.monotonic() > deadline:
                    raise SystemExit(
                        f"The {platform} simulator at {url} does not answer."
                    ) from None
                time.sleep(0.5)


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m channels.simulators.traffic",
        description="Buyers on the simulators: orders, cancellations, returns, bursts, faults.",
    )
    for key in SHELVES:
        parser.add_argument(f"--{key}", metavar="URL", help=f"the {key} simulator's URL")
    parser.add_argument("--rate", type=float, default=1.0, help="orders a second (default 1)")
    parser.add_argument(
        "--burst-every-s",
        type=float,
        default=90.0,
        help="provoke an oversell this often (0: never)",
    )
    parser.add_argument(
        "--fault-every-s", type=float, default=120.0, help="inject a fault this often (0: never)"
    )
    parser.add_argument("--report-every-s", type=float, default=10.0)
    parser.add_argument("--duration-s", type=float, default=0.0, help="stop after (0: never)")
    parser.add_argument(
        "--start-after-s", type=float, default=20.0, help="let the sync settle first"
    )
    parser.add_argument("--seed", type=int, default=None)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    urls = {key: getattr(args, key).rstrip("/") for key in SHELVES if getattr(args, key)}
    unknown = set(urls) - set(PLATFORMS)
    if not urls or unknown:
        parser().error("name at least one simulator URL: --shopify URL, --amazon URL, ...")
    _wait_for_simulators(urls, timeout_s=60)
    time.sleep(args.start_after_s)
    generator = TrafficGenerator(discover_stores(urls), seed=args.seed)
    if not generator.stores:
        print("No tenants on the simulators: nothing to buy from.", flush=True)
        return 1
    print(
        f"Traffic: {args.rate:g} orders/s over {len(generator.stores)} stores "
        f"({', '.join(sorted(urls))})",
        flush=True,
    )
    started = time.monotonic()
    next_burst = started + args.burst_every_s if args.burst_every_s else float("inf")
    next_fault = started + args.fault_every_s if args.fault_every_s else float("inf")
    next_report = started + args.report_every_s
    interval_s = 1.0 / args.rate if args.rate > 0 else float("inf")
    next_order = started
    while not args.duration_s or time.monotonic() - started < args.duration_s:
        now = time.monotonic()
        try:
            if now >= next_order:
                generator.place_one_order()
                next_order += interval_s
            if now >= next_burst:
                print(generator.provoke_oversell(), flush=True)
                next_burst += args.burst_every_s
            if now >= next_fault:
                print(generator.inject_fault(), flush=True)
                next_fault += args.fault_every_s
        except requests.RequestException as error:
            print(f"a simulator did not answer: {error}", file=sys.stderr, flush=True)
            time.sleep(1)
        if now >= next_report:
            print(generator.report(), flush=True)
            next_report += args.report_every_s
        time.sleep(max(0.0, min(next_order, next_report) - time.monotonic()))
    print(generator.report(), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
