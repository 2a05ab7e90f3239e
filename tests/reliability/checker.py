"""The invariants every fault scenario ends with (RELIABILITY §6.1, I1-I6), checked once.

A scenario drives a burst of signed order webhooks from the simulated shops through a
stack of real processes, injects its fault, lets the system converge, and hands what it
did to ``check``: the verdict lists every invariant broken, with the figures the
scenario's PASS/FAIL line prints.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from django.db import connection
from django.db.models import Count, Sum

from channels.models import (
    Channel,
    DeadLetter,
    Listing,
    OversellIncident,
    PendingPush,
    WebhookReceipt,
)
from inventory.models import EventKind, InventoryEvent, StockLevel


@dataclasses.dataclass
class Burst:
    """What a scenario did: the shops it sold on and what it expects in the end."""

    simulator: Any
    channels: Sequence[Channel]
    # Units ordered per SKU id, over every shop (each order one line).
    ordered: Counter[int]
    # Units in stock per SKU id before the burst.
    stock: dict[int, int]
    orders_placed: int
    # Listings allowed (and expected) to end as dead letters.
    expected_dead_listing_ids: frozenset[int] = frozenset()
    # Webhook 5xx answers tolerated (a fault window where the database is down).
    allowed_webhook_5xx: int = 0
    # (from, to) in simulator time: the database faulted on purpose; a 5xx answered then
    # is the fault (the shop sends it again), not a breach of I6.
    database_fault_window: tuple[float, float] | None = None
    deadlocks_before: int = 0
    # Acknowledgement latency is measured on attempts from then on (simulator time): the
    # warm-up before it loads the web processes' code.
    measure_from: float = 0.0


@dataclasses.dataclass
class Verdict:
    failures: list[str]
    figures: dict[str, Any]

    @property
    def passed(self) -> bool:
        return not self.failures

    def line(self, scenario: str) -> str:
        """``F2 redis-paused PASS events=... ack_p99_ms=...``: one line per scenario."""
        shown = " ".join(f"{name}={value}" for name, value in self.figures.items())
        outcome = "PASS" if self.passed else "FAIL"
        reasons = "" if self.passed else "  broken: " + "; ".join(self.failures)
        return f"{scenario} {outcome} {shown}{reasons}"


def deadlocks() -> int:
    """PostgreSQL's count of deadlocks in this database so far."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
        (count,) = cursor.fetchone()
    return int(count)


def _percentile(samples: Sequence[float], fraction: float) -> float:
    if not samples:
        return 0.0
    if len(samples) == 1:
        return samples[0]
    return statistics.quantiles(samples, n=100, method="inclusive")[round(fraction * 100) - 1]


def deliveries(burst: Burst) -> list[dict[str, Any]]:
    """Every order delivery the shops stored, with its attempts."""
    return [
        delivery
        for channel in burst.channels
        for delivery in burst.simulator.webhooks(channel.slug)
        if delivery["topic"].startswith("orders/")
    ]


def keep_deliveries(burst: Burst, path: Path) -> None:
    """Every delivery attempt (time, status, duration) as JSON, to study a slow one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            [
                {"webhook_id": d["webhook_id"], "url": d["url"], "attempts": d["attempts"]}
                for d in deliveries(burst)
            ]
        )
    )


def keep_requests(burst: Burst, path: Path) -> None:
    """Every call the shops received (time, body, status), to study a listing left off
    the master: which writes of it went out, from which claim, in which order."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            {channel.slug: burst.simulator.requests(channel.slug) for channel in burst.channels}
        )
    )


def check(burst: Burst, *, converge_s: float | None = None) -> Verdict:
    """I1-I6 on the database and the shops as they are now."""
    failures: list[str] = []
    sent = deliveries(burst)
    attempts = [attempt for delivery in sent for attempt in delivery["attempts"]]
    acked = {
        (delivery["url"], delivery["webhook_id"])
        for delivery in sent
        if any(200 <= (a["status"] or 0) < 300 for a in delivery["attempts"])
    }
    ack_ms = [
        a["duration_ms"]
        for a in attempts
        if 200 <= (a["status"] or 0) < 300 and a["time"] >= burst.measure_from
    ]
    server_errors = sum(1 for a in attempts if (a["status"] or 0) >= 500)
    window = burst.database_fault_window
    server_errors_outside_fault = sum(
        1
        for a in attempts
        if (a["status"] or 0) >= 500
        and (window is None or not window[0] <= a["time"] <= window[1])
    )
    slugs = {channel.pk: channel.slug for channel in burst.channels}
    receipts = WebhookReceipt.objects.filter(
        channel__in=burst.channels, topic__startswith="orders/"
    )

    # I3 nothing lost: every acknowledged delivery stored once and applied.
    stored = {
        (slugs[channel_id], key)
        for channel_id, key in receipts.values_list("channel_id", "dedupe_key")
    }
    acked_keys = {(url.rstrip("/").rsplit("/", 1)[-1], key) for url, key in acked}
    lost = len(acked_keys - stored)
    if lost:
        failures.append(f"I3: {lost} acknowledged deliveries have no receipt")
    unapplied = receipts.exclude(status=WebhookReceipt.Status.PROCESSED).count()
    if unapplied:
        failures.append(f"I3: {unapplied} receipts not processed")
    if len(acked) < burst.orders_placed:
        failures.append(f"I3: {burst.orders_placed - len(acked)} orders never acknowledged")

    # I5 idempotent effects: one commit per order, never two.
    commits = InventoryEvent.objects.filter(kind=EventKind.ORDER_COMMITTED, sku_id__in=burst.stock)
    commit_count = commits.count()
    if commit_count != burst.orders_placed:
        failures.append(f"I5: {commit_count} commits for {burst.orders_placed} orders")
    by_sku = dict(commits.values_list("sku_id").annotate(units=Sum("delta_committed")).order_by())
    wrong_skus = [
        sku for sku, units in burst.ordered.items() if int(by_sku.get(sku) or 0) != units
    ]
    if wrong_skus:
        failures.append(f"I5: committed units differ from the orders on {len(wrong_skus)} SKUs")

    # I2 ledger = projection, keys unique.
    levels = StockLevel.objects.filter(sku_id__in=burst.stock)
    ledger = {
        (row["sku_id"], row["location_id"]): row
        for row in InventoryEvent.objects.filter(sku_id__in=burst.stock)
        .values("sku_id", "location_id")
        .annotate(
            on_hand=Sum("delta_on_hand"),
            committed=Sum("delta_committed"),
            reserved=Sum("delta_reserved"),
        )
        .order_by()
    }
    drifted = [
        level.pk
        for level in levels
        if (row := ledger.get((level.sku_id, level.location_id))) is None
        or (row["on_hand"], row["committed"], row["reserved"])
        != (level.on_hand, level.committed, level.reserved)
    ]
    if drifted:
        failures.append(f"I2: {len(drifted)} stock levels differ from their ledger")
    repeated_keys = (
        InventoryEvent.objects.values("idempotency_key")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .count()
    )
    if repeated_keys:
        failures.append(f"I2: {repeated_keys} idempotency keys used twice")

    # I1 no invisible oversell: the shortfall recorded is the model's.
    model_shortfall = sum(max(0, units - burst.stock[sku]) for sku, units in burst.ordered.items())
    recorded_shortfall = (
        OversellIncident.objects.filter(sku_id__in=burst.stock).aggregate(s=Sum("shortfall"))["s"]
        or 0
    )
    if recorded_shortfall != model_shortfall:
        failures.append(f"I1: shortfall {recorded_shortfall}, the model's {model_shortfall}")
    if levels.filter(on_hand__lt=0).exists():
        failures.append("I1: negative on hand")

    # I4 convergence: every shop shows the master's figure; nothing owed; dead letters
    # exactly the expected ones.
    wrong_on_shop = _listings_off_master(burst)
    if wrong_on_shop:
        failures.append(f"I4: {len(wrong_on_shop)} listings off the master: {wrong_on_shop[:5]}")
    owed = PendingPush.objects.filter(channel__in=burst.channels).count()
    if owed:
        failures.append(f"I4: {owed} pushes still owed")
    dead = set(
        DeadLetter.objects.filter(channel__in=burst.channels).values_list("listing_id", flat=True)
    )
    if dead != set(burst.expected_dead_listing_ids):
        failures.append(
            f"I4: dead letters {sorted(dead)}, expected {sorted(burst.expected_dead_listing_ids)}"
        )

    # I6 no deadlock, no 5xx outside a database fault.
    new_deadlocks = deadlocks() - burst.deadlocks_before
    if new_deadlocks:
        failures.append(f"I6: {new_deadlocks} deadlocks")
    if server_errors_outside_fault > burst.allowed_webhook_5xx:
        failures.append(f"I6: {server_errors_outside_fault} webhook 5xx outside a database fault")

    figures: dict[str, Any] = {
        "events": burst.orders_placed,
        "acked": len(acked),
        "deliveries": len(attempts),
        "duplicates_suppressed": max(
            0, sum(200 <= (a["status"] or 0) < 300 for a in attempts) - len(acked)
        ),
        "lost": lost,
        "oversold": recorded_shortfall,
        "dlq": len(dead),
        "webhook_5xx": server_errors,
        "ack_p50_ms": round(_percentile(ack_ms, 0.50), 1),
        "ack_p99_ms": round(_percentile(ack_ms, 0.99), 1),
        "ack_max_ms": round(max(ack_ms, default=0.0), 1),
        "deadlocks": new_deadlocks,
    }
    if converge_s is not None:
        figures["converge_s"] = round(converge_s, 1)
    return Verdict(failures=failures, figures=figures)


def _listings_off_master(burst: Burst) -> list[tuple[str, str, int | None, int]]:
    """(shop, item, shown, expected) for each listing whose shop shows another figure than
    the master's available stock (no buffer rules in the scenarios); an expected dead
    letter's listing is left out while the dead letter is open."""
    available = {
        sku_id: on_hand - committed - reserved
        for sku_id, on_hand, committed, reserved in StockLevel.objects.filter(
            sku_id__in=burst.stock
        ).values_list("sku_id", "on_hand", "committed", "reserved")
    }
    wrong = []
    # A dead letter replayed once the cause was fixed must converge like any other listing.
    dead = set(
        DeadLetter.objects.filter(
            channel__in=burst.channels,
            listing_id__in=burst.expected_dead_listing_ids,
            status=DeadLetter.Status.OPEN,
        ).values_list("listing_id", flat=True)
    )
    for channel in burst.channels:
        shown = {
            str(item_id): item["available"]
            for item_id, item in burst.simulator.items(channel.slug).items()
        }
        for listing in Listing.objects.filter(channel=channel).exclude(pk__in=dead):
            expected = max(0, available.get(listing.sku_id or 0, 0))
            if shown.get(listing.external_id) != expected:
                wrong.append(
                    (channel.slug, listing.external_id, shown.get(listing.external_id), expected)
                )
    return wrong


def settled(burst: Burst) -> bool:
    """Whether the system looks done: every receipt processed, nothing owed, no listing
    off the master (cheap checks first)."""
    if PendingPush.objects.filter(channel__in=burst.channels).exists():
        return False
    receipts = WebhookReceipt.objects.filter(
        channel__in=burst.channels, topic__startswith="orders/"
    )
    if receipts.exclude(status=WebhookReceipt.Status.PROCESSED).exists():
        return False
    if receipts.count() < burst.orders_placed:
        return False
    return not _listings_off_master(burst)
