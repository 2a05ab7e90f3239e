"""The load of ``bench/load.py``: buyers on every platform's simulator, and API clients.

Buyers place orders through each simulator's control API, which delivers the platform's
signed webhook to nventory before it answers (Amazon's through SQS), so a buyer's response
time includes nventory's acknowledgement. API clients read SKUs and stock and hold and
release reservations. The load steps up every ``LOAD_STEP_S`` seconds until a step's p99
passes ``LOAD_P99_LIMIT_MS`` or ``LOAD_MAX_S`` is spent; each step's figures go to
``LOAD_STEPS_FILE`` as JSON.

Configuration comes from the JSON file named by ``LOAD_CONFIG`` (written by the bench).
"""

from __future__ import annotations

import itertools
import json
import os
import random
import time
import uuid
from typing import Any

from locust import HttpUser, LoadTestShape, between, events, task

from channels.simulators.traffic import SHELVES

CONFIG: dict[str, Any] = json.loads(open(os.environ["LOAD_CONFIG"]).read())  # noqa: SIM115
STEP_S = float(os.environ.get("LOAD_STEP_S", "20"))
USERS_PER_STEP = int(os.environ.get("LOAD_USERS_PER_STEP", "8"))
P99_LIMIT_MS = float(os.environ.get("LOAD_P99_LIMIT_MS", "1000"))
MAX_S = float(os.environ.get("LOAD_MAX_S", "300"))
STEPS_FILE = os.environ.get("LOAD_STEPS_FILE", "load-steps.json")
_orders = itertools.count(1)


class Buyer(HttpUser):
    """Orders one unit of an item on one platform's simulator."""

    weight = 3
    wait_time = between(0.2, 0.6)
    host = CONFIG["web_url"]

    @task
    def order(self) -> None:
        store = random.choice(CONFIG["stores"])
        shelf = SHELVES[store["platform"]]
        item = random.choice(store["items"])
        self.client.post(
            f"{store['control_url']}/orders",
            json={"lines": [shelf.line(item, 1)]},
            name=f"order on {store['platform']}",
        )


class ApiClient(HttpUser):
    """Reads stock and holds a reservation, as a storefront would."""

    weight = 1
    wait_time = between(0.2, 0.6)
    host = CONFIG["web_url"]

    def on_start(self) -> None:
        self.client.headers["Authorization"] = f"Token {CONFIG['api_token']}"

    @task(3)
    def read_stock(self) -> None:
        code = random.choice(CONFIG["sku_codes"])
        self.client.get(f"/api/v1/skus/{code}/stock/", name="/api/v1/skus/<code>/stock/")

    @task(1)
    def list_skus(self) -> None:
        self.client.get("/api/v1/skus/?limit=50", name="/api/v1/skus/")

    @task(1)
    def reserve_and_release(self) -> None:
        answer = self.client.post(
            "/api/v1/reservations/",
            json={
                "sku": random.choice(CONFIG["sku_codes"]),
                "location": CONFIG["location_code"],
                "quantity": 1,
                "idempotency_key": f"load-{uuid.uuid4().hex}-{next(_orders)}",
            },
            name="/api/v1/reservations/",
        )
        if answer.status_code == 201:
            reservation_id = answer.json()["id"]
            self.client.post(
                f"/api/v1/reservations/{reservation_id}/release/",
                json={},
                name="/api/v1/reservations/<id>/release/",
            )


class StepUntilP99Passes(LoadTestShape):
    """More users every step; stops once a step's p99 passes the limit, or at the bound."""

    def __init__(self) -> None:
        super().__init__()
        self.steps: list[dict[str, Any]] = []
        self.step_started = time.monotonic()
        self.requests_at_step = 0
        self.failures_at_step = 0

    def tick(self) -> tuple[int, float] | None:
        run_time = self.get_run_time()
        step = int(run_time // STEP_S)
        if step > len(self.steps):
            self._close_step(users=len(self.steps) * USERS_PER_STEP + USERS_PER_STEP)
            if self.steps[-1]["p99_ms"] > P99_LIMIT_MS or run_time > MAX_S:
                return None
        return ((len(self.steps) + 1) * USERS_PER_STEP, USERS_PER_STEP)

    def _close_step(self, *, users: int) -> None:
        assert self.runner is not None, "a shape ticks only inside a running test"
        total = self.runner.stats.total
        now = time.monotonic()
        requests = total.num_requests - self.requests_at_step
        failures = total.num_failures - self.failures_at_step
        self.steps.append(
            {
                "users": users,
                "requests_per_s": round(requests / max(0.001, now - self.step_started), 1),
                "p50_ms": total.get_current_response_time_percentile(0.50) or 0,
                "p99_ms": total.get_current_response_time_percentile(0.99) or 0,
                "failures": failures,
            }
        )
        self.step_started, self.requests_at_step = now, total.num_requests
        self.failures_at_step = total.num_failures
        with open(STEPS_FILE, "w") as out:
            json.dump(self.steps, out)


@events.request.add_listener
def _remember_failures(
    request_type: str, name: str, response_time: float, exception: Exception | None, **_: Any
) -> None:
    if exception is not None:
        print(f"failed: {request_type} {name}: {exception}", flush=True)
