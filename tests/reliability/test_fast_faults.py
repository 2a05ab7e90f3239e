"""The fast versions of ``make chaos``'s Redis faults, run in ``make test``: a short burst
with Redis paused for 5 s (F2p) and with Redis stopped and started again empty (F2b);
the same stack, checker and invariants as the chaos scenarios, at a tenth of their size.
"""

from __future__ import annotations

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
    schedule_sweeps,
)
from tests.reliability.stack import Stack

pytestmark = pytest.mark.slow

ORDERS = 60
RATE_PER_S = 8.0


@pytest.fixture
def stack(request: Any, transactional_db: Any) -> Iterator[Stack]:
    made = Stack(f"fast-{request.node.name.removeprefix('test_')}")
    schedule_sweeps()
    try:
        yield made
    finally:
        made.stop()


def burst_with(stack: Stack, simulator: Any, fault: Fault) -> checker.Verdict:
    stack.start_web(workers=1)
    catalog = build_catalog(simulator, stack, shops=2, skus=6, units=100)
    stack.start_worker("ingest", concurrency=2)
    stack.start_worker("push", concurrency=2)
    stack.start_beat()
    burst = place_orders(simulator, catalog, orders=ORDERS, rate_per_s=RATE_PER_S, faults=[fault])
    converge_s = converge(burst, since=fault.cleared_at, timeout_s=90)
    return checker.check(burst, converge_s=converge_s)


def test_with_redis_paused_webhooks_are_acknowledged_and_applied_after_it_resumes(
    stack, shopify_simulator
):
    def pause(fault: Fault) -> None:
        stack.redis.pause()
        time.sleep(5)
        stack.redis.resume()
        fault.cleared_at = time.monotonic()

    verdict = burst_with(stack, shopify_simulator, Fault(at_s=1, inject=pause))
    assert verdict.passed, verdict.line("F2p-fast")
    assert verdict.figures["acked"] == ORDERS + 20  # the warm-up's orders too


def test_with_redis_restarted_empty_nothing_is_lost(stack, shopify_simulator):
    def restart_empty(fault: Fault) -> None:
        stack.redis.stop()
        time.sleep(5)
        stack.redis.start()
        stack.redis.flushall()
        fault.cleared_at = time.monotonic()

    verdict = burst_with(stack, shopify_simulator, Fault(at_s=1, inject=restart_empty))
    assert verdict.passed, verdict.line("F2b-fast")
