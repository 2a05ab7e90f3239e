"""Console: every main page of the operator's console, timed over a full-size catalog.

Builds 20,000 SKUs listed on 5 channels (100,000 listings), 1,000,000 ledger events over
four weeks, and what a busy month leaves behind (200,000 pushes, 50,000 webhook receipts,
reconciliation runs and their discrepancies, dead letters, oversell incidents, buffer
rules and their history, alerts), each table in one ``INSERT … SELECT generate_series``
statement rather than the ORM row by row (the pushes are rolled up, and the buffer
snapshot taken, once each, timed, as the beat would). Then it starts gunicorn
(configured as in production) and times every console page it finds under ``/dashboard/``
(those without parameters, and the SKU page and calculator for one SKU) with a signed-in
operator: two warm-up requests, then ``--samples`` timed ones each. It also counts each
page's queries, in process, with Django's test client.

The data is shaped for the pages, not a replay of the pipeline: the ledger's ``*_after``
columns are not a running sum. No worker runs, so nothing is pushed while it times.

    .venv/bin/python bench/console.py [--skus 20000] [--events 1000000] [--samples 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import _harness

_harness.ensure_servers()

WEB_LOG = _harness.PROJECT_DIR / ".data" / "bench" / "console-web.log"
# The gunicorn processes and this one must sign sessions with the same key.
BENCH_SECRET_KEY = "bench-only-not-a-secret"  # noqa: S105
PLATFORMS = ("shopify", "amazon", "walmart", "ebay", "tiktok")

# Bench seeding only, all raw: each table in one statement. %(name)s are bound values.
_SEED_SQL: list[tuple[str, str]] = [
    (
        "SKUs",
        """
        INSERT INTO inventory_sku (code, name, category, is_active, created_at, updated_at)
        SELECT 'CB-' || lpad(n::text, 6, '0'), 'Bench product ' || n,
               'Category ' || (n %% 40), true, now(), now()
          FROM generate_series(0, %(skus)s - 1) AS n
        """,
    ),
    (
        "stock levels",
        """
        INSERT INTO inventory_stocklevel (sku_id, location_id, on_hand, committed, reserved,
                                          updated_at)
        SELECT sku.id, location.id, 50 + (sku.id * 7 + location.id) %% 400,
               (sku.id + location.id) %% 5, 0, now()
          FROM inventory_sku AS sku CROSS JOIN inventory_location AS location
        """,
    ),
    (
        "ledger events",
        """
        INSERT INTO inventory_inventoryevent
               (kind, sku_id, location_id, delta_on_hand, delta_committed, delta_reserved,
                on_hand_after, committed_after, reserved_after, shortfall, source, actor,
                external_reference, reason, reservation_id, idempotency_key, created_at)
        SELECT CASE WHEN n %% 5 = 0 THEN 'receipt' ELSE 'order_committed' END,
               %(first_sku)s + (n * 7919) %% %(skus)s,
               %(first_location)s + n %% %(locations)s,
               CASE WHEN n %% 5 = 0 THEN 20 ELSE 0 END,
               CASE WHEN n %% 5 = 0 THEN 0 ELSE 1 + n %% 3 END,
               0, 200 + n %% 300, n %% 7, 0, 0,
               CASE WHEN n %% 5 = 0 THEN 'api' ELSE 'channel' END, 'bench',
               'order-' || n, '', NULL, 'console-bench-' || n,
               now() - make_interval(secs => n * 2.4)
          FROM generate_series(1::bigint, %(events)s) AS n
        """,
    ),
    (
        "listings",
        """
        INSERT INTO channels_listing (channel_id, sku_id, external_id, external_sku,
                                      extra_identifiers, is_active, fulfilled_by_channel,
                                      created_at)
        SELECT channel.id, sku.id, channel.slug || '-' || sku.id, sku.code,
               jsonb_build_object('variant_id', (channel.id * 10000000 + sku.id)::text),
               true, false, now()
          FROM channels_channel AS channel CROSS JOIN inventory_sku AS sku
         ORDER BY channel.id, sku.id
        """,
    ),
    (
        "sync states",
        """
        INSERT INTO channels_listingsyncstate
               (listing_id, last_pushed_quantity, last_pushed_at, expected_channel_quantity,
                channel_moves_total, unexplained_channel_moves, updated_at)
        SELECT id, 100, now(), 100, 0, 0, now() FROM channels_listing
        """,
    ),
    (
        "pushes",
        """
        INSERT INTO channels_pushattempt
               (channel_id, listing_id, target_quantity, compare_quantity, channel_quantity,
                outcome, error, attempt_number, change_at, sent_at, acked_at, latency_ms)
        SELECT listing.channel_id, listing.id, 100 - n %% 50, NULL, NULL,
               CASE WHEN n %% 200 = 0 THEN 'failed' WHEN n %% 97 = 0 THEN 'throttled'
                    ELSE 'applied' END,
               CASE WHEN n %% 200 = 0 THEN '503 Service Unavailable' ELSE '' END, 1,
               now() - make_interval(secs => n * 0.43) - make_interval(secs => latency / 1000),
               now() - make_interval(secs => n * 0.43),
               now() - make_interval(secs => n * 0.43),
               CASE WHEN n %% 200 = 0 THEN NULL ELSE latency END
          FROM (SELECT n, 40 + (n * 37) %% 1500 AS latency,
                       %(first_listing)s + (n * 104729) %% %(listings)s AS listing_id
                  FROM generate_series(1::bigint, %(pushes)s) AS n) AS push
          JOIN channels_listing AS listing ON listing.id = push.listing_id
        """,
    ),
    (
        "webhook receipts",
        """
        INSERT INTO channels_webhookreceipt
               (channel_id, topic, dedupe_key, headers, body, received_at, status, error,
                attempts, processed_at, awaited_order)
        SELECT %(first_channel)s + n %% 5, 'orders/create', 'delivery-' || n, '{}'::jsonb,
               convert_to('{"id": ' || n || '}', 'UTF8'),
               now() - make_interval(secs => n * 48),
               CASE WHEN n %% 500 = 0 THEN 'failed' WHEN n %% 997 = 0 THEN 'quarantined'
                    ELSE 'processed' END,
               CASE WHEN n %% 500 = 0 THEN 'bench: a failure to show' ELSE '' END,
               1, now() - make_interval(secs => n * 48), ''
          FROM generate_series(1, %(receipts)s) AS n
        """,
    ),
    (
        "unmapped lines",
        """
        INSERT INTO channels_unmappedline
               (channel_id, receipt_id, line_reference, identifiers, quantity, reason,
                created_at, resolved_at, resolved_by)
        SELECT receipt.channel_id, receipt.id, 'line-1',
               jsonb_build_object('sku', 'UNKNOWN-' || receipt.id), 1,
               'No listing has these identifiers.', receipt.received_at, NULL, ''
          FROM channels_webhookreceipt AS receipt
         WHERE receipt.id %% 400 = 0
        """,
    ),
    (
        "dead letters",
        """
        INSERT INTO channels_deadletter
               (channel_id, listing_id, target_quantity, attempts, status, created_at,
                replayed_at, replayed_by, discard_reason, discarded_by)
        SELECT listing.channel_id, listing.id, 7,
               jsonb_build_array(jsonb_build_object('at', now(), 'error', '503')),
               CASE WHEN n %% 3 = 0 THEN 'replayed' ELSE 'open' END,
               now() - make_interval(mins => n::integer), NULL, '', '', ''
          FROM generate_series(1::bigint, %(dead_letters)s) AS n
          JOIN channels_listing AS listing
            ON listing.id = %(first_listing)s + (n * 7919) %% %(listings)s
        """,
    ),
    (
        "oversell incidents",
        """
        INSERT INTO channels_oversellincident
               (channel_id, sku_id, listing_id, order_reference, shortfall, event_id,
                receipt_id, created_at, resolved_at, acknowledged_by, resolved_by, root_cause,
                root_cause_noted_by)
        SELECT listing.channel_id, event.sku_id, listing.id, event.external_reference, 1,
               event.id, NULL, event.created_at,
               CASE WHEN event.id %% 2 = 0 THEN event.created_at + interval '1 hour' END,
               '', '', '', ''
          FROM (SELECT * FROM inventory_inventoryevent
                 WHERE kind = 'order_committed' AND id %% 5000 = 1) AS event
          JOIN channels_listing AS listing
            ON listing.sku_id = event.sku_id
           AND listing.channel_id = %(first_channel)s + event.id %% 5
        """,
    ),
    (
        "buffer rules",
        """
        INSERT INTO channels_bufferrule
               (channel_id, sku_id, listing_id, percent, fixed_units, max_cap,
                cap_starts_at, cap_ends_at, created_at, updated_at, velocity_only,
                velocity_units)
        SELECT id, NULL::bigint, NULL::bigint, 10, 0, NULL::integer, NULL::timestamptz,
               NULL::timestamptz, now(), now(), false, 0
          FROM channels_channel
        UNION ALL
        SELECT %(first_channel)s + sku.id %% 5, sku.id, NULL, 15, 2, NULL, NULL, NULL,
               now(), now(), false, 0
          FROM inventory_sku AS sku WHERE sku.id %% 10 = 0
        """,
    ),
    (
        "buffer rule history",
        """
        INSERT INTO channels_historicalbufferrule
               (id, channel_id, sku_id, listing_id, percent, fixed_units, max_cap,
                cap_starts_at, cap_ends_at, created_at, updated_at, history_date,
                history_change_reason, history_type, history_user_id, velocity_only,
                velocity_units)
        SELECT id, channel_id, sku_id, listing_id, percent, fixed_units, max_cap,
               cap_starts_at, cap_ends_at, created_at, updated_at, created_at,
               'bench seed', '+', NULL, velocity_only, velocity_units
          FROM channels_bufferrule
        """,
    ),
    (
        "reconciliation runs",
        """
        INSERT INTO reconciliation_reconciliationrun
               (channel_id, kind, status, channel_mode, started_at, finished_at,
                period_date, listings_total, listings_checked, skipped_in_flight, found,
                corrected, drift_percent, alerted_at, figures, error)
        SELECT channel.id, 'poll', 'done', 'active',
               now() - make_interval(hours => 3 * n), now() - make_interval(hours => 3 * n),
               NULL, 20000, 20000, 0, 20, 20, 0.1, NULL, '{}'::jsonb, ''
          FROM channels_channel AS channel CROSS JOIN generate_series(1, %(runs)s) AS n
        """,
    ),
    (
        "discrepancies",
        """
        INSERT INTO reconciliation_discrepancy
               (run_id, channel_id, listing_id, sku_id, category, expected, actual,
                last_pushed_quantity, last_pushed_at, cause, evidence, consecutive_runs,
                repeated, corrected, detected_at, settled_by, settlement)
        SELECT run.id, run.channel_id, listing.id, listing.sku_id, 'Category 1', 100, 97,
               100, run.started_at, 'manual_edit', 'bench', 1, false, true, run.started_at,
               '', ''
          FROM reconciliation_reconciliationrun AS run
          CROSS JOIN generate_series(1, 20) AS n
          JOIN channels_listing AS listing
            ON listing.id = %(first_listing)s + (run.id * 20 + n) %% %(listings)s
        """,
    ),
    (
        "alerts",
        """
        INSERT INTO channels_alert
               (kind, key, channel_id, message, figures, opened_at, cleared_at,
                opened_email_sent_at, cleared_email_sent_at)
        SELECT 'breaker_open', 'breaker_open:' || channel.id || ':' || n, channel.id,
               channel.name || ': circuit breaker open (bench).', '{}'::jsonb,
               now() - make_interval(hours => n), now() - make_interval(hours => n) + interval
               '10 minutes', now() - make_interval(hours => n), now()
          FROM channels_channel AS channel CROSS JOIN generate_series(1, 60) AS n
        """,
    ),
]


# The table each seed step fills: a step whose table has rows was done by an earlier run
# (--reuse resumes a seed that was stopped).
_SEEDED_TABLE = {
    "SKUs": "inventory_sku",
    "stock levels": "inventory_stocklevel",
    "ledger events": "inventory_inventoryevent",
    "listings": "channels_listing",
    "sync states": "channels_listingsyncstate",
    "pushes": "channels_pushattempt",
    "webhook receipts": "channels_webhookreceipt",
    "unmapped lines": "channels_unmappedline",
    "dead letters": "channels_deadletter",
    "oversell incidents": "channels_oversellincident",
    "buffer rules": "channels_bufferrule",
    "buffer rule history": "channels_historicalbufferrule",
    "reconciliation runs": "reconciliation_reconciliationrun",
    "discrepancies": "reconciliation_discrepancy",
    "alerts": "channels_alert",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skus", type=int, default=20_000, help="SKUs, each on every channel")
    parser.add_argument("--events", type=int, default=1_000_000, help="ledger events")
    parser.add_argument("--pushes", type=int, default=200_000)
    parser.add_argument("--samples", type=int, default=15, help="timed requests per page")
    parser.add_argument(
        "--reuse", action="store_true", help="keep the data of the last run, finish its seed"
    )
    args = parser.parse_args()

    os.environ["SECRET_KEY"] = BENCH_SECRET_KEY
    _harness.setup_django()
    from django.db import connection

    from channels.models import Channel, Listing
    from inventory.models import Location, Sku

    started = time.perf_counter()
    if not (args.reuse and Channel.objects.exists()):
        _harness.progress("resetting the bench database's catalog, channels and runs")
        _harness.reset_data()
        Location.objects.create(code="CB-WH", name="Bench warehouse")
        Location.objects.create(code="CB-STORE", name="Bench store", kind="store")
        for platform in PLATFORMS:
            channel = Channel.objects.create(
                platform=platform,
                name=f"Bench {platform}",
                slug=f"bench-{platform}",
                mode=Channel.Mode.ACTIVE,
                api_base_url="http://127.0.0.1:9/",
            )
            channel.locations.set(Location.objects.all())
    _seed(connection, args)
    _harness.progress(f"seeded in {time.perf_counter() - started:.0f} s; analysing")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    figures: dict[str, Any] = {
        "skus": Sku.objects.count(),
        "listings": Listing.objects.count(),
        "channels": Channel.objects.count(),
    }
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM inventory_inventoryevent")
        figures["ledger_events"] = cursor.fetchone()[0]
    _harness.progress(
        f"{figures['listings']:,} listings, {figures['ledger_events']:,} ledger events, "
        f"{figures['channels']} channels"
    )
    from channels import kpis, services

    # What the beat does every 5 s (the pages read the rollup): the seeded pushes rolled up
    # at once, timed, as the beat would have taken them in its stride.
    rollup_started = time.perf_counter()
    kpis.roll_up_pushes()
    figures["push_roll_up_ms"] = round((time.perf_counter() - rollup_started) * 1000, 1)
    # What the beat does every 5 minutes (the pages read its snapshot): timed, as the
    # background cost of the buffer figures.

    snapshot_started = time.perf_counter()
    services.take_buffer_snapshots()
    figures["buffer_snapshot_ms"] = round((time.perf_counter() - snapshot_started) * 1000, 1)
    sku_code = Sku.objects.order_by("pk").values_list("code", flat=True)[7]
    pages = console_pages(sku_code)
    queries = _query_counts(pages)
    # The machine's load while the pages were timed: on a shared machine it moves them.
    load_before = os.getloadavg()[0]
    timings = _time_pages(pages, args.samples)
    figures["load_average_1m"] = round((load_before + os.getloadavg()[0]) / 2, 1)
    figures["pages"] = {name: {**timings[name], "queries": queries.get(name)} for name in timings}
    timed = {name: row for name, row in timings.items() if row["status"] == 200}
    slowest = max(timed, key=lambda name: timed[name]["median_ms"])
    figures["slowest_page"] = slowest
    figures["main_page_ms"] = timed[slowest]["median_ms"]
    _harness.progress(
        f"slowest page: {slowest}, median {figures['main_page_ms']} ms (bar 300); "
        f"load average {figures['load_average_1m']} on {os.cpu_count()} cores"
    )
    _harness.emit(figures)


def _seed(connection: Any, args: argparse.Namespace) -> None:
    from channels.models import Channel
    from inventory.models import Location

    values: dict[str, Any] = {
        "skus": args.skus,
        "events": args.events,
        "pushes": args.pushes,
        "locations": Location.objects.count(),
        "first_location": Location.objects.order_by("pk").values_list("pk", flat=True)[0],
        "first_channel": Channel.objects.order_by("pk").values_list("pk", flat=True)[0],
        "receipts": 50_000,
        "dead_letters": 600,
        "runs": 60,
    }
    with connection.cursor() as cursor:
        for what, sql in _SEED_SQL:
            started = time.perf_counter()
            cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {_SEEDED_TABLE[what]})")
            if cursor.fetchone()[0]:
                _harness.progress(f"  {what}: kept from the last run")
                continue
            # Ids the later steps spread their rows over (none before the rows exist).
            cursor.execute("SELECT min(id) FROM inventory_sku")
            values["first_sku"] = cursor.fetchone()[0]
            cursor.execute("SELECT min(id), count(*) FROM channels_listing")
            values["first_listing"], values["listings"] = cursor.fetchone()
            cursor.execute(sql, values)
            _harness.progress(
                f"  {what}: {cursor.rowcount:,} rows in {time.perf_counter() - started:.1f} s"
            )
        # The seed wrote what the outbox trigger owes for the stock rows it inserted
        # before any listing existed: nothing; the few owed rows a busy system has:
        cursor.execute(
            """
            INSERT INTO channels_pendingpush
                   (listing_id, channel_id, generation, first_change_at, last_change_at,
                    not_before, claimed_until, attempts, target_quantity, errors)
            SELECT id, channel_id, 1, now(), now(), now(), NULL, 0, NULL, '[]'::jsonb
              FROM channels_listing WHERE id % 100 = 0
            ON CONFLICT DO NOTHING
            """
        )


def console_pages(sku_code: str) -> dict[str, str]:
    """Every console page under /dashboard/ that takes no parameter, and the pages of one
    SKU, by route name."""
    from django.urls import URLPattern, URLResolver, get_resolver

    pages: dict[str, str] = {}

    def walk(patterns: list[Any], prefix: str, namespace: str) -> None:
        for pattern in patterns:
            route = str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                inner = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
                walk(pattern.url_patterns, prefix + route, inner)
            elif isinstance(pattern, URLPattern):
                path = prefix + route
                if not path.startswith("dashboard/"):
                    continue
                name = f"{namespace}{pattern.name or path}"
                if "<" not in path:
                    pages[name] = "/" + path
                elif path.count("<") == 1 and "<str:code>" in path:
                    pages[name] = "/" + path.replace("<str:code>", sku_code)

    walk(get_resolver().url_patterns, "", "")
    return dict(sorted(pages.items()))


def bench_operator() -> Any:
    from django.contrib.auth.models import User

    user, _ = User.objects.get_or_create(
        username="bench-operator", defaults={"is_staff": True, "is_superuser": True}
    )
    return user


def _query_counts(pages: dict[str, str]) -> dict[str, int | None]:
    """Each page's queries, counted in process (DEBUG off: pages as in production)."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext, override_settings

    client = Client()
    client.force_login(bench_operator())
    counts: dict[str, int | None] = {}
    # Without the redirect to HTTPS the pages are served, not redirected, over plain HTTP;
    # static files are named as the web process names them (console_settings).
    import console_settings

    with override_settings(
        DEBUG=False,
        ALLOWED_HOSTS=["testserver"],
        SECURE_SSL_REDIRECT=False,
        STORAGES=console_settings.STORAGES,
    ):
        for name, path in pages.items():
            client.get(path)
            with CaptureQueriesContext(connection) as captured:
                response = client.get(path)
            # A page that does not answer GET (an action) counts for nothing.
            counts[name] = len(captured) if response.status_code == 200 else None
    return counts


def session_cookie() -> str:
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore

    user = bench_operator()
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    return str(session.session_key)


def web_env() -> dict[str, str]:
    """The web process's environment: production's, on ``console_settings``."""
    return {
        **_harness.production_env(),
        "SECRET_KEY": BENCH_SECRET_KEY,
        "DJANGO_SETTINGS_MODULE": "console_settings",
        "PYTHONPATH": str(_harness.PROJECT_DIR / "bench"),
    }


def _time_pages(pages: dict[str, str], samples: int) -> dict[str, dict[str, Any]]:
    env = web_env()
    # With DEBUG off whitenoise serves the static files collectstatic gathers.
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "--verbosity=0"],
        cwd=_harness.PROJECT_DIR,
        env=env,
        check=True,
    )
    port = _harness.free_port()
    web = _harness.start_web(port=port, log_path=WEB_LOG, env=env, workers=1, threads=2)
    results: dict[str, dict[str, Any]] = {}
    try:
        _harness.wait_for(lambda: _harness.web_answers(port), 60, "gunicorn answering")
        session = _harness.http_session()
        session.cookies.set("sessionid", session_cookie())
        for name, path in pages.items():
            url = f"http://127.0.0.1:{port}{path}"
            for _ in range(2):
                session.get(url, timeout=60)
            durations = []
            status = 0
            size = 0
            for _ in range(samples):
                started = time.perf_counter()
                response = session.get(url, timeout=60, allow_redirects=False)
                durations.append((time.perf_counter() - started) * 1000)
                status, size = response.status_code, len(response.content)
            results[name] = {
                "path": path,
                "status": status,
                "bytes": size,
                "median_ms": round(statistics.median(durations), 1),
                "p95_ms": round(_harness.percentile(durations, 0.95), 1),
            }
            _harness.progress(
                f"  {name:<40} {path:<45} {status} median "
                f"{results[name]['median_ms']:7.1f} ms  p95 {results[name]['p95_ms']:7.1f} ms"
            )
    finally:
        _harness.stop_processes([web])
    return results


if __name__ == "__main__":
    Path(WEB_LOG).parent.mkdir(parents=True, exist_ok=True)
    main()
