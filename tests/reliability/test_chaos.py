"""``make chaos``: the slow fault scenarios (RELIABILITY §6.2), each with real processes,
bounded in time, ending with the invariants I1-I6 (``checker``) and one PASS/FAIL line
with its figures (also kept in ``.data/chaos/results.txt``).

Sizes: ``CHAOS_ORDERS`` orders (default 400) at ``CHAOS_RATE`` per second (default 10)
over ``CHAOS_SKUS`` SKUs (default 40) on two shops. The fast versions of these faults
run in ``make test`` (tests/channels/e2e, tests/channels/test_push_poison.py,
tests/reliability/test_fast_faults.py).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.reliability import checker
from tests.reliability.scenario import (
    Fault,
    build_catalog,
    converge,
    place_orders,
    report,
    schedule_sweeps,
)
from tests.reliability.stack import LOG_DIR, Stack

pytestmark = [pytest.mark.chaos, pytest.mark.slow]

ORDERS = int(os.environ.get("CHAOS_ORDERS", "400"))
RATE_PER_S = float(os.environ.get("CHAOS_RATE", "10"))
SKUS = int(os.environ.get("CHAOS_SKUS", "40"))
UNITS = 1000
# Every scenario must have converged this long after its last fault cleared.
CONVERGE_WITHIN_S = 90.0


@pytest.fixture
def stack(request: Any, transactional_db: Any) -> Iterator[Stack]:
    made = Stack(request.node.name.removeprefix("test_"))
    schedule_sweeps()
    try:
        yield made
    finally:
        made.stop()


def start_system(stack: Stack, simulator: Any, *, beat: bool = True) -> Any:
    """Web first (the shops' webhooks point at it), then the catalog, then the workers
    (a push worker listens to the channels' queues there are when it starts)."""
    stack.start_web()
    catalog = build_catalog(simulator, stack, shops=2, skus=SKUS, units=UNITS)
    stack.start_worker("ingest")
    stack.start_worker("push")
    if beat:
        stack.start_beat()
    return catalog


def finish(
    scenario: str, burst: checker.Burst, *, cleared_at: float, stack: Stack, **figures: Any
) -> checker.Verdict:
    converge_s = converge(burst, since=cleared_at, timeout_s=CONVERGE_WITHIN_S)
    verdict = checker.check(burst, converge_s=converge_s)
    checker.keep_deliveries(burst, LOG_DIR / scenario.split()[0] / "deliveries.json")
    verdict.figures.update(figures, worker_restarts=stack.restarts)
    if converge_s != converge_s:  # nan: never settled
        verdict.failures.append(f"not converged within {CONVERGE_WITHIN_S:.0f} s")
    report(scenario, verdict)
    return verdict


def test_redis_paused_mid_burst(stack, shopify_simulator):
    """F2 (paused): Redis stopped with SIGSTOP for 20 s in a burst of webhooks. Every
    webhook is acknowledged (p99 under 1 s), stored, and applied once Redis resumes."""
    catalog = start_system(stack, shopify_simulator)

    def pause(fault: Fault) -> None:
        stack.redis.pause()
        time.sleep(20)
        stack.redis.resume()
        fault.cleared_at = time.monotonic()

    fault = Fault(at_s=5, inject=pause)
    burst = place_orders(
        shopify_simulator, catalog, orders=ORDERS, rate_per_s=RATE_PER_S, faults=[fault]
    )
    verdict = finish("F2p redis-paused-20s", burst, cleared_at=fault.cleared_at, stack=stack)
    assert verdict.passed, verdict.failures
    assert verdict.figures["ack_p99_ms"] < 1000


def test_poison_listing_answered_with_garbage(stack, shopify_simulator):
    """F10: one shop answers one listing with garbage through the burst: that listing is
    dead-lettered after its tries, every other listing converges."""
    catalog = start_system(stack, shopify_simulator)
    poisoned_shop = catalog.channels[0]
    poison_sku = catalog.skus[0]
    poison_item = catalog.variants[(poisoned_shop.slug, poison_sku.pk)] - 1_000_000
    shopify_simulator.update_shop(poisoned_shop.slug, garbage_item_ids=[poison_item])
    started = time.monotonic()
    burst = place_orders(shopify_simulator, catalog, orders=ORDERS, rate_per_s=RATE_PER_S)
    burst.expected_dead_listing_ids = frozenset({catalog.listing(poisoned_shop, poison_sku).pk})
    verdict = finish(
        "F10 poison-item",
        burst,
        cleared_at=time.monotonic(),
        stack=stack,
        burst_s=round(time.monotonic() - started, 1),
    )
    assert verdict.passed, verdict.failures


def test_workers_killed_repeatedly_mid_burst(stack, shopify_simulator):
    """F1: kill -9 of each worker kind in turn, every 5 s, three times each, each started
    again at once: nothing lost, nothing twice, no dead letter."""
    catalog = start_system(stack, shopify_simulator)
    for channel in catalog.channels:  # pushes in flight most of the time
        shopify_simulator.faults(channel.slug, latency_ms=200)

    def kill_in_turn(fault: Fault) -> None:
        kills = 0
        for kind in ("push", "ingest") * 3:
            stack.kill(f"{kind}-1")
            kills += 1
            stack.start_worker(kind)
            time.sleep(5)
        fault.figures["kills"] = kills
        fault.cleared_at = time.monotonic()

    fault = Fault(at_s=3, inject=kill_in_turn)
    burst = place_orders(
        shopify_simulator, catalog, orders=ORDERS, rate_per_s=RATE_PER_S, faults=[fault]
    )
    verdict = finish(
        "F1 kill-9-workers", burst, cleared_at=fault.cleared_at, stack=stack, **fault.figures
    )
    assert verdict.passed, verdict.failures


def test_redis_stopped_and_restarted_empty_mid_burst(stack, shopify_simulator):
    """F2 (B): Redis stopped for 20 s, then started again empty: webhooks stay 2xx, and
    the sweeps find everything Redis forgot (it is never the record)."""
    catalog = start_system(stack, shopify_simulator)

    def restart_empty(fault: Fault) -> None:
        stack.redis.stop()
        time.sleep(20)
        stack.redis.start()
        stack.redis.flushall()
        fault.cleared_at = time.monotonic()

    fault = Fault(at_s=5, inject=restart_empty)
    burst = place_orders(
        shopify_simulator, catalog, orders=ORDERS, rate_per_s=RATE_PER_S, faults=[fault]
    )
    verdict = finish("F2b redis-restarted-empty", burst, cleared_at=fault.cleared_at, stack=stack)
    assert verdict.passed, verdict.failures


def test_a_channel_down_for_a_minute_then_back(stack, shopify_simulator):
    """F5: one shop answers 503 to every call for 60 s: no dead letter (the breaker holds
    its pushes), it catches up once back; the other shop is unaffected."""
    catalog = start_system(stack, shopify_simulator)
    down = catalog.channels[1]

    def outage(fault: Fault) -> None:
        shopify_simulator.faults(down.slug, fail_rate=1.0, fail_status=503)
        time.sleep(60)
        shopify_simulator.faults(down.slug, fail_rate=0.0)
        fault.cleared_at = time.monotonic()

    fault = Fault(at_s=3, inject=outage)
    burst = place_orders(
        shopify_simulator, catalog, orders=ORDERS, rate_per_s=RATE_PER_S, faults=[fault]
    )
    verdict = finish("F5 channel-down-60s", burst, cleared_at=fault.cleared_at, stack=stack)
    assert verdict.passed, verdict.failures


def test_duplicates_and_disorder_at_thirty_percent(stack, shopify_simulator):
    """F7: 30 % of deliveries sent twice, and every delivery held back by up to 2 s (so
    they arrive out of order): each order's effect exactly once."""
    catalog = start_system(stack, shopify_simulator)

    def disorder() -> None:
        for channel in catalog.channels:
            shopify_simulator.emitter(channel.slug, duplicate_rate=0.3, jitter_s=2.0)

    started = time.monotonic()
    burst = place_orders(
        shopify_simulator, catalog, orders=ORDERS, rate_per_s=RATE_PER_S, after_warmup=disorder
    )
    time.sleep(3)  # the last held-back deliveries
    verdict = finish(
        "F7 duplicates-reordered-30pct",
        burst,
        cleared_at=time.monotonic(),
        stack=stack,
        burst_s=round(time.monotonic() - started, 1),
    )
    assert verdict.passed, verdict.failures
    assert verdict.figures["duplicates_suppressed"] > 0


def test_beat_started_twice(stack, shopify_simulator):
    """F8: two beat processes on one schedule through the burst: every sweep runs twice
    as often, and nothing is applied or pushed twice."""
    catalog = start_system(stack, shopify_simulator)
    stack.start_beat(index=2)
    burst = place_orders(shopify_simulator, catalog, orders=ORDERS, rate_per_s=RATE_PER_S)
    verdict = finish("F8 beat-twice", burst, cleared_at=time.monotonic(), stack=stack, beats=2)
    assert verdict.passed, verdict.failures


def test_the_broker_loses_messages(stack, shopify_simulator):
    """The broker loses what is queued: every queue emptied twice mid-burst (and the wake
    flags with them). The sweeps find the receipts and owed pushes again."""
    import redis

    catalog = start_system(stack, shopify_simulator)
    client: Any = redis.Redis.from_url(stack.redis.url)

    def lose_queued(fault: Fault) -> None:
        lost = 0
        for _ in range(2):
            queues = [key for key in client.keys("*") if not key.startswith(b"_kombu")]
            lost += sum(int(client.llen(key)) for key in queues if client.type(key) == b"list")
            if queues:
                client.delete(*queues)
            time.sleep(10)
        fault.figures["messages_lost"] = lost
        fault.cleared_at = time.monotonic()

    fault = Fault(at_s=5, inject=lose_queued)
    burst = place_orders(
        shopify_simulator, catalog, orders=ORDERS, rate_per_s=RATE_PER_S, faults=[fault]
    )
    verdict = finish(
        "F12 broker-loses-messages",
        burst,
        cleared_at=fault.cleared_at,
        stack=stack,
        **fault.figures,
    )
    assert verdict.passed, verdict.failures


def test_a_worker_runs_with_the_configured_delivery_settings(stack):
    """F11: what a started worker actually uses (celery#7651, #9339: a configured
    visibility timeout that never reached the worker)."""
    from celery import Celery
    from django.conf import settings

    stack.start_worker("push")
    control = Celery(broker=stack.redis.url)
    answers = control.control.inspect(timeout=10).conf(with_defaults=True) or {}
    [conf] = answers.values()
    seen = {
        "visibility_timeout": conf["broker_transport_options"]["visibility_timeout"],
        "acks_late": conf["task_acks_late"],
        "reject_on_worker_lost": conf["task_reject_on_worker_lost"],
        "prefetch_multiplier": conf["worker_prefetch_multiplier"],
    }
    wanted = {
        "visibility_timeout": settings.CELERY_VISIBILITY_TIMEOUT_S,
        "acks_late": True,
        "reject_on_worker_lost": True,
        "prefetch_multiplier": 1,
    }
    verdict = checker.Verdict(
        failures=[
            f"{name}: {seen[name]} != {wanted[name]}"
            for name in wanted
            if seen[name] != wanted[name]
        ],
        figures=seen,
    )
    report("F11 config-truth", verdict)
    assert verdict.passed, verdict.failures
