"""The Prometheus endpoint and the KPI API: protected, and saying what the data say."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth.models import Permission, User
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from channels import kpis
from channels.models import PushAttempt
from tests import factories

pytestmark = pytest.mark.django_db

TOKEN = "scrape-token-for-tests"


@pytest.fixture
def pushed_channel(sku, settings):
    settings.METRICS_BEARER_TOKEN = TOKEN
    channel = factories.make_channel(name="Shop", slug="shop")
    listing = factories.make_listing(channel=channel, sku=sku)
    now = timezone.now()
    for seconds in (0.2, 3, 45):
        PushAttempt.objects.create(
            channel=channel,
            listing=listing,
            target_quantity=1,
            outcome="applied",
            change_at=now - dt.timedelta(seconds=seconds + 1),
            sent_at=now - dt.timedelta(seconds=1),
            acked_at=now - dt.timedelta(seconds=1),
            latency_ms=seconds * 1000,
        )
    PushAttempt.objects.create(
        channel=channel,
        listing=listing,
        target_quantity=1,
        outcome="failed",
        change_at=now,
        sent_at=now - dt.timedelta(seconds=1),
    )
    return channel


def _samples(body: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }


def test_metrics_need_the_token_or_a_reader(client, pushed_channel) -> None:
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    client.force_login(User.objects.create_user(username="nobody"))
    assert client.get("/metrics").status_code == 403


def test_metrics_for_a_signed_in_reader(client, pushed_channel) -> None:
    user = User.objects.create_user(username="reader")
    user.user_permissions.add(Permission.objects.get(codename="view_channel"))
    client.force_login(user)
    assert client.get("/metrics").status_code == 200


def test_metrics_show_counters_histograms_queues_and_the_scorecard(client, pushed_channel) -> None:
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    samples = _samples(response.content.decode())
    shop = (("channel", "shop"),)

    assert (
        samples[("nventory_push_attempts_total", (("channel", "shop"), ("outcome", "applied")))]
        == 3
    )
    assert (
        samples[("nventory_push_attempts_total", (("channel", "shop"), ("outcome", "failed")))]
        == 1
    )
    # Cumulative buckets: 0.2 s ≤ 0.25; 3 s ≤ 5; 45 s ≤ 60.
    bucket = "nventory_push_latency_seconds_bucket"
    assert samples[(bucket, (("channel", "shop"), ("le", "0.1")))] == 0
    assert samples[(bucket, (("channel", "shop"), ("le", "0.25")))] == 1
    assert samples[(bucket, (("channel", "shop"), ("le", "5.0")))] == 2
    assert samples[(bucket, (("channel", "shop"), ("le", "60.0")))] == 3
    assert samples[(bucket, (("channel", "shop"), ("le", "+Inf")))] == 3
    assert samples[("nventory_push_latency_seconds_sum", shop)] == pytest.approx(48.2)
    # The listing made by the factory is owed a push.
    assert samples[("nventory_pushes_owed", shop)] == 1
    assert samples[("nventory_dead_letters_open", shop)] == 0
    # Scorecard: 1 error of 4 sends; p50 of 0.2, 3, 45 s is 3 s (read from the rollup's
    # histograms: within their precision).
    assert samples[("nventory_push_error_rate_ratio", shop)] == 0.25
    quantile = "nventory_sync_latency_quantile_seconds"
    assert samples[
        (quantile, (("channel", "shop"), ("quantile", "0.5"), ("stage", "applied")))
    ] == pytest.approx(3, rel=kpis.LATENCY_PERCENTILE_PRECISION)
    assert samples[("nventory_kpi_status", shop)] == 2  # red: 25 % errors


def test_kpi_api_gives_the_scorecard(client, pushed_channel) -> None:
    user = User.objects.create_user(username="reader")
    user.user_permissions.add(Permission.objects.get(codename="view_channel"))
    client.force_login(user)

    body = client.get("/api/v1/kpis/").json()

    (row,) = body["channels"]
    assert row["channel"] == "shop"
    # percentile_cont over 0.2, 3 and 45 s, within the histograms' precision.
    precision = kpis.LATENCY_PERCENTILE_PRECISION
    assert row["latency_to_applied"] == {
        "samples": 3,
        "p50_ms": pytest.approx(3000.0, rel=precision),
        "p95_ms": pytest.approx(40_800.0, rel=precision),
        "p99_ms": pytest.approx(44_160.0, rel=precision),
    }
    assert row["error_rate"] == {"value": 0.25, "colour": "red", "target": "< 0.001"}
    assert row["sync_latency_p95"]["colour"] == "amber"
    assert (row["pushes_sent"], row["push_errors"]) == (4, 1)
    assert body["overall"]["channel"] is None
    assert body["overall"]["pushes_sent"] == 4


def test_kpi_api_needs_the_view_permission(client, pushed_channel) -> None:
    client.force_login(User.objects.create_user(username="nobody"))
    assert client.get("/api/v1/kpis/").status_code == 403
    assert client.get("/api/v1/kpis/?window_h=0").status_code == 403
