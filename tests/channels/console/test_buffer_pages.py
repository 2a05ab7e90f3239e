"""The calculator, the bulk buffer edit, channel modes and the alerts page, as an operator
uses them; and the same actions refused to a user without the permission."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.test import Client
from django.utils import timezone

from channels import alerts
from channels.models import BufferRule, Channel, ChannelBreaker
from nventory import permissions
from tests import factories
from tests.channels.operators import make_operator

pytestmark = pytest.mark.django_db


def _client(*permission_names: str) -> Client:
    client = Client()
    client.force_login(make_operator(*permission_names))
    return client


@pytest.fixture
def shop(location):
    sku = factories.make_sku(code="TEE-1", category="Tees")
    factories.stock(sku, location, 200)
    channel = factories.make_channel(locations=[location], name="Shop A", slug="shop-a")
    factories.make_listing(channel=channel, sku=sku)
    return channel, sku


def test_calculator_shows_the_arithmetic_and_applies_it(shop) -> None:
    channel, sku = shop
    client = _client(permissions.EDIT_BUFFERS)
    page = client.get(f"/dashboard/skus/{sku.code}/safety-stock/", {"channel": channel.pk})
    text = page.content.decode()
    assert "Recommended for Shop A: 10 % + 0 units" in text
    assert "no push measured: the 60 s alert threshold" in text
    assert "200 → 180" in text
    partial = client.get(
        f"/dashboard/skus/{sku.code}/safety-stock/",
        {"channel": channel.pk, "tolerance": "cautious"},
        HTTP_HX_REQUEST="true",
    ).content.decode()
    assert partial.lstrip().startswith('<section id="recommendation"')
    assert "15 %" in partial
    answer = client.post(
        f"/dashboard/skus/{sku.code}/safety-stock/",
        {"channel": channel.pk, "tolerance": "cautious"},
    )
    assert answer.status_code == 302
    rule = BufferRule.objects.get(channel=channel, sku=sku)
    assert rule.percent == Decimal(15)
    assert rule.history.latest().history_change_reason.startswith("Safety-stock calculator")


def test_calculator_apply_is_refused_without_the_permission(shop) -> None:
    channel, sku = shop
    client = _client()
    page = client.get(f"/dashboard/skus/{sku.code}/safety-stock/").content.decode()
    assert "Applying it needs the permission to edit buffers." in page
    answer = client.post(f"/dashboard/skus/{sku.code}/safety-stock/", {"channel": channel.pk})
    assert answer.status_code == 302
    assert not BufferRule.objects.exists()


def _bulk_form(channel, **overrides) -> dict:
    form = {
        "channels": [channel.pk],
        "sku_codes": "",
        "category": "Tees",
        "percent": "20",
        "fixed_units": "1",
        "max_cap": "",
        "reason": "Tees: launch buffer",
    }
    form.update(overrides)
    return form


def test_bulk_preview_then_save(shop) -> None:
    channel, sku = shop
    client = _client(permissions.EDIT_BUFFERS)
    preview = client.get(
        "/dashboard/buffers/", {**_bulk_form(channel), "preview": "1"}, HTTP_HX_REQUEST="true"
    ).content.decode()
    assert preview.lstrip().startswith('<section id="bulk-preview"')
    assert "Effect: 1 rule" in preview
    assert "<td>200</td><td><strong>159</strong></td>" in preview  # floor(200 x .8) - 1
    assert not BufferRule.objects.exists()
    answer = client.post("/dashboard/buffers/", _bulk_form(channel))
    assert answer.status_code == 302
    rule = BufferRule.objects.get(channel=channel, sku=sku)
    assert (rule.percent, rule.fixed_units) == (Decimal(20), 1)
    page = client.get("/dashboard/buffers/").content.decode()
    assert "Tees: launch buffer" in page


def test_bulk_save_is_refused_without_the_permission(shop) -> None:
    channel, _sku = shop
    answer = _client().post("/dashboard/buffers/", _bulk_form(channel), follow=True)
    assert "needs the permission to edit buffers" in answer.content.decode()
    assert not BufferRule.objects.exists()


def test_bulk_edit_needs_skus_or_a_category(shop) -> None:
    channel, _sku = shop
    answer = _client(permissions.EDIT_BUFFERS).post(
        "/dashboard/buffers/", _bulk_form(channel, category="")
    )
    assert answer.status_code == 200
    assert "Name some SKUs or a category." in answer.content.decode()


def test_channel_modes_switch_with_confirmation(shop, location) -> None:
    channel, _sku = shop
    other = factories.make_channel(locations=[location])
    client = _client(permissions.MANAGE_CHANNELS)
    unconfirmed = client.post(
        "/dashboard/channel-modes/", {"channels": [channel.pk, other.pk], "mode": "paused"}
    )
    assert unconfirmed.status_code == 200
    assert set(Channel.objects.values_list("mode", flat=True)) == {"shadow"}
    answer = client.post(
        "/dashboard/channel-modes/",
        {"channels": [channel.pk, other.pk], "mode": "paused", "confirm": "on"},
    )
    assert answer.status_code == 302
    assert set(Channel.objects.values_list("mode", flat=True)) == {"paused"}


def test_channel_modes_are_refused_without_the_permission(shop) -> None:
    channel, _sku = shop
    _client(permissions.EDIT_BUFFERS).post(
        "/dashboard/channel-modes/", {"channels": [channel.pk], "mode": "active", "confirm": "on"}
    )
    assert Channel.objects.get(pk=channel.pk).mode == "shadow"


def test_alerts_page_and_banner(shop, settings) -> None:
    settings.ALERT_EMAILS = []
    channel, sku = shop
    breaker = ChannelBreaker.objects.create(
        channel=channel, failures=3, open_until=timezone.now() + dt.timedelta(minutes=1)
    )
    alerts.evaluate_alerts()
    client = _client()
    page = client.get(f"/dashboard/skus/{sku.code}/").content.decode()
    assert 'role="alert"' in page and "Shop A: circuit breaker open" in page
    breaker.open_until = None
    breaker.save()
    alerts.evaluate_alerts()
    assert 'role="alert"' not in client.get(f"/dashboard/skus/{sku.code}/").content.decode()
    history = client.get("/dashboard/alerts/").content.decode()
    assert "Circuit breaker open" in history and "status-green" in history
    assert "No alert." in client.get("/dashboard/alerts/", {"open": "1"}).content.decode()


def test_alerts_and_buffer_pages_take_a_fixed_number_of_queries(shop) -> None:
    """Ten times the alerts and rule changes: the same queries."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from channels.models import Alert

    channel, _sku = shop
    client = _client()

    def grow(count: int) -> None:
        now = timezone.now()
        Alert.objects.bulk_create(
            Alert(
                kind=Alert.Kind.OVERSELL,
                key=f"oversell:{n}:{count}",
                channel=channel,
                message="m",
                opened_at=now,
                cleared_at=now,
            )
            for n in range(count)
        )
        for n in range(count):
            factories.make_buffer_rule(
                channel=channel, sku=factories.make_sku(), percent=Decimal(n % 50)
            )

    counts = []
    for count in (3, 30):
        grow(count)
        client.get("/dashboard/alerts/")
        with CaptureQueriesContext(connection) as alerts_page:
            client.get("/dashboard/alerts/")
        with CaptureQueriesContext(connection) as buffers_page:
            client.get("/dashboard/buffers/")
        counts.append((len(alerts_page), len(buffers_page)))
    assert counts[0] == counts[1]
