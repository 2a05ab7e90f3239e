"""The reconciliation API: runs with their progress, their discrepancies, by cause."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from reconciliation.models import Discrepancy, ReconciliationRun
from tests import factories
from tests.channels.operators import make_operator

pytestmark = pytest.mark.django_db


@pytest.fixture
def reader():
    client = APIClient()
    client.force_authenticate(make_operator())
    return client


@pytest.fixture
def run_with_drift(location):
    channel = factories.make_channel(locations=[location], slug="shop-r")
    sku = factories.make_sku()
    listings = [factories.make_listing(channel=channel, sku=sku) for _ in range(3)]
    run = ReconciliationRun.objects.create(
        channel=channel,
        kind=ReconciliationRun.Kind.POLL,
        status=ReconciliationRun.Status.DONE,
        channel_mode="active",
        listings_total=4,
        listings_checked=3,
        found=3,
        drift_percent=75.0,
    )
    causes = [
        Discrepancy.Cause.MANUAL_EDIT,
        Discrepancy.Cause.MANUAL_EDIT,
        Discrepancy.Cause.MISSED_WEBHOOK,
    ]
    for listing, cause in zip(listings, causes, strict=True):
        Discrepancy.objects.create(
            run=run, channel=channel, listing=listing, sku=sku, expected=5, actual=4, cause=cause
        )
    return run, listings


def test_runs_list_with_progress(reader, run_with_drift) -> None:
    run, _listings = run_with_drift
    body = reader.get("/api/v1/reconciliation-runs/", {"channel": "shop-r"}).json()
    assert body["count"] == 1
    (row,) = body["results"]
    assert (row["id"], row["channel"], row["progress_percent"]) == (run.pk, "shop-r", 75.0)
    assert reader.get("/api/v1/reconciliation-runs/", {"kind": "full_sync"}).json()["count"] == 0


def test_run_detail_counts_discrepancies_by_cause(reader, run_with_drift) -> None:
    run, _listings = run_with_drift
    body = reader.get(f"/api/v1/reconciliation-runs/{run.pk}/").json()
    assert body["discrepancies_by_cause"] == [
        {"cause": "manual_edit", "count": 2},
        {"cause": "missed_webhook", "count": 1},
    ]
    assert reader.get("/api/v1/reconciliation-runs/999999/").status_code == 404


def test_discrepancies_of_a_run_with_their_listing(reader, run_with_drift) -> None:
    run, listings = run_with_drift
    body = reader.get(f"/api/v1/reconciliation-runs/{run.pk}/discrepancies/").json()
    assert body["count"] == 3
    assert {row["listing"]["id"] for row in body["results"]} == {
        listing.pk for listing in listings
    }
    missed = reader.get("/api/v1/discrepancies/", {"cause": "missed_webhook"}).json()
    assert missed["count"] == 1
    assert missed["results"][0]["expected"] == 5
    assert reader.get("/api/v1/reconciliation-runs/999999/discrepancies/").status_code == 404


def test_reading_runs_needs_the_view_permission(run_with_drift) -> None:
    from django.contrib.auth.models import User

    client = APIClient()
    client.force_authenticate(User.objects.create_user("nobody", password="x-long-password"))
    assert client.get("/api/v1/reconciliation-runs/").status_code == 403
    assert client.get("/api/v1/discrepancies/").status_code == 403
