"""Load test: the whole system under growing load until its p99 passes a second.

Starts what ``make run`` starts (gunicorn, an ingest and a push worker, every platform's
simulator, an SQS server and the notification consumer) on the bench database, wired by
``prepare_local`` with the demo catalog topped up so it never sells out, then runs the
locust scenario of ``bench/locustfile.py`` headless: buyers ordering on every platform's
simulator (each order arrives at nventory as that platform's signed webhook, Amazon's
through SQS) and API clients reading stock and holding reservations, more users every
step, until a step's p99 passes ``--p99-limit-ms`` or ``--max-s`` is spent. Prints each
step (users, requests/s, p50/p99, failures) and ends with one JSON line: the last step
under the limit, the step that passed it, and whether any request failed below it.

    .venv/bin/python bench/load.py [--step-s 20] [--users-per-step 8] [--max-s 300]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from io import StringIO
from pathlib import Path
from typing import Any

import _harness

_harness.ensure_servers()

LOG_DIR = _harness.PROJECT_DIR / ".data" / "bench"
STOCK_TOP_UP = 1_000_000
PLATFORM_PORT_SETTINGS = {
    "shopify": "SHOPIFY_SIMULATOR_PORT",
    "amazon": "AMAZON_SIMULATOR_PORT",
    "walmart": "WALMART_SIMULATOR_PORT",
    "ebay": "EBAY_SIMULATOR_PORT",
    "tiktok": "TIKTOK_SIMULATOR_PORT",
}


def _prepare(env: dict[str, str], seed_file: Path) -> dict[str, Any]:
    """The demo channels wired to this run's ports, stock to last, an API token."""
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from channels.management.commands import prepare_local
    from inventory import services
    from inventory.models import EventSource, Location, Sku

    os.environ.update({k: v for k, v in env.items() if k.endswith("_PORT") or k == "WEB_ADDR"})
    call_command("prepare_local", simulator_seed_file=seed_file, stdout=StringIO())
    warehouse = Location.objects.get(code="WH-MAIN")
    codes = []
    for sku in Sku.objects.filter(code__in=[demo.code for demo in prepare_local.DEMO_SKUS]):
        services.receive_stock(
            sku_id=sku.pk,
            location_id=warehouse.pk,
            quantity=STOCK_TOP_UP,
            context=services.EventContext(
                idempotency_key=f"load-top-up-{sku.code}",
                source=EventSource.SYSTEM,
                actor="bench",
                reason="load test stock",
            ),
        )
        codes.append(sku.code)
    user_model = get_user_model()
    if not user_model.objects.filter(username="load").exists():
        user_model.objects.create_superuser(username="load", email="", password=None)
    token = StringIO()
    call_command("issue_api_token", "load", stdout=token, stderr=StringIO())
    return {
        "sku_codes": codes,
        "location_code": warehouse.code,
        "api_token": token.getvalue().strip(),
    }


def _stores(urls: dict[str, str]) -> list[dict[str, Any]]:
    """Every simulator tenant and the items it sells, as the locust buyers use them."""
    from channels.simulators.traffic import TrafficGenerator, discover_stores

    generator = TrafficGenerator(discover_stores(urls))
    return [
        {
            "platform": store.platform,
            "control_url": store.control("").rstrip("/"),
            "items": generator.shelf_of(store),
        }
        for store in generator.stores
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--step-s", type=float, default=20)
    parser.add_argument("--users-per-step", type=int, default=8)
    parser.add_argument("--p99-limit-ms", type=float, default=1000)
    parser.add_argument("--max-s", type=float, default=300)
    args = parser.parse_args()
    _harness.setup_django()
    _harness.reset_data()

    web_port = _harness.free_port()
    ports = {name: str(_harness.free_port()) for name in PLATFORM_PORT_SETTINGS.values()}
    ports["SQS_PORT"] = str(_harness.free_port())
    env = {**_harness.production_env(), **ports, "WEB_ADDR": f"127.0.0.1:{web_port}"}
    work = Path(tempfile.mkdtemp(prefix="nventory-load-"))
    seed_file = work / "seed.json"
    config = _prepare(env, seed_file)
    _harness.progress(f"{len(config['sku_codes'])} SKUs topped up; starting the system")

    simulator_args = [
        arg
        for platform, setting in PLATFORM_PORT_SETTINGS.items()
        for arg in (f"--{platform}", ports[setting])
    ]
    processes = {
        "web": _harness.start_web(port=web_port, log_path=LOG_DIR / "load-web.log", env=env),
        "ingest": _harness.start_worker(
            name="ingest",
            queues="webhooks",
            log_path=LOG_DIR / "load-ingest.log",
            env=env,
            pool="threads",
            concurrency=4,
        ),
        "push": _harness.start_worker(
            name="push",
            queues="celery,push",
            log_path=LOG_DIR / "load-push.log",
            env=env,
            pool="threads",
            concurrency=4,
        ),
        "simulators": _harness.start_process(
            [
                sys.executable,
                "-m",
                "channels.simulators",
                *simulator_args,
                "--seed-file",
                str(seed_file),
            ],
            LOG_DIR / "load-simulators.log",
            env,
        ),
        "sqs": _harness.start_process(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", ports["SQS_PORT"]],
            LOG_DIR / "load-sqs.log",
            env,
        ),
        "notifications": _harness.start_process(
            [sys.executable, "manage.py", "consume_notifications"],
            LOG_DIR / "load-notifications.log",
            env,
        ),
    }
    try:
        _harness.wait_for(lambda: _harness.web_answers(web_port), 60, "web answers")
        _harness.wait_for_worker(LOG_DIR / "load-ingest.log", "ingest worker")
        _harness.wait_for_worker(LOG_DIR / "load-push.log", "push worker")
        urls = {
            platform: f"http://127.0.0.1:{ports[setting]}"
            for platform, setting in PLATFORM_PORT_SETTINGS.items()
        }
        _harness.wait_for(
            lambda: b"Simulators ready" in (LOG_DIR / "load-simulators.log").read_bytes(),
            60,
            "simulators ready",
        )
        config |= {"web_url": f"http://127.0.0.1:{web_port}", "stores": _stores(urls)}
        config_file, steps_file = work / "config.json", work / "steps.json"
        config_file.write_text(json.dumps(config))
        _harness.progress("letting the first pushes settle for 15 s")
        time.sleep(15)
        _harness.progress(
            f"stepping up {args.users_per_step} users every {args.step_s:g} s until p99 > "
            f"{args.p99_limit_ms:g} ms (at most {args.max_s:g} s)"
        )
        locust = subprocess.run(
            [
                sys.executable,
                "-m",
                "locust",
                "-f",
                str(_harness.PROJECT_DIR / "bench" / "locustfile.py"),
                "--headless",
                "--only-summary",
                "--loglevel",
                "WARNING",
                "--stop-timeout",
                "5",
            ],
            cwd=_harness.PROJECT_DIR,
            env={
                **os.environ,
                "LOAD_CONFIG": str(config_file),
                "LOAD_STEPS_FILE": str(steps_file),
                "LOAD_STEP_S": str(args.step_s),
                "LOAD_USERS_PER_STEP": str(args.users_per_step),
                "LOAD_P99_LIMIT_MS": str(args.p99_limit_ms),
                "LOAD_MAX_S": str(args.max_s),
            },
            timeout=args.max_s + 120,
            check=False,
        )
        steps = json.loads(steps_file.read_text()) if steps_file.exists() else []
    finally:
        _harness.stop_processes(list(processes.values()))
    for step in steps:
        _harness.progress(
            f"{step['users']:>4} users: {step['requests_per_s']:7.1f} requests/s, p50 "
            f"{step['p50_ms']} ms, p99 {step['p99_ms']} ms, {step['failures']} failed"
        )
    under = [step for step in steps if step["p99_ms"] <= args.p99_limit_ms]
    over = [step for step in steps if step["p99_ms"] > args.p99_limit_ms]
    _harness.emit(
        {
            "bench": "load",
            "locust_exit_code": locust.returncode,
            "steps": steps,
            "last_step_under_limit": under[-1] if under else None,
            "first_step_over_limit": over[0] if over else None,
            "failures_under_limit": sum(step["failures"] for step in under),
            "p99_limit_ms": args.p99_limit_ms,
        }
    )


if __name__ == "__main__":
    main()
