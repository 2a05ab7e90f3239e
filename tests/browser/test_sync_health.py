"""The scorecard and the channels page in a real browser."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from django.test import Client
from playwright.sync_api import expect

from channels.models import Channel, ChannelOperation
from tests import factories
from tests.channels.conftest import shopify_simulator  # noqa: F401
from tests.channels.e2e.conftest import (  # noqa: F401
    nventory_web,
    nventory_worker,
    wait_until,
    wire_simulated_shop,
)

ITEM_ID = 5001
VARIANT_ID = 6001


def _signed_in(page, user: User, url: str):
    client = Client()
    client.force_login(user)
    page.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": url}]
    )
    return page


@pytest.mark.slow
def test_scorecard_changes_live_after_an_order_on_a_simulator(
    page,
    channel_manager,
    shopify_simulator,  # noqa: F811
    nventory_web,  # noqa: F811
    nventory_worker,  # noqa: F811
) -> None:
    """An order placed on the simulated shop arrives as a webhook, is committed by the
    worker, and the open scorecard shows it without a reload (htmx polling)."""
    location = factories.make_location()
    sku = factories.make_sku()
    factories.stock(sku, location, 20)
    channel = wire_simulated_shop(
        shopify_simulator,
        web_url=nventory_web,
        location=location,
        sku=sku,
        item_id=ITEM_ID,
        variant_id=VARIANT_ID,
        units_shown=20,
    )
    _signed_in(page, channel_manager, nventory_web)
    page.goto(f"{nventory_web}/dashboard/")
    row = page.locator(f"tr[data-channel='{channel.slug}']")
    expect(row.get_by_test_id("channel-orders")).to_have_text("0 / 0 orders")
    expect(page.get_by_test_id("orders")).to_have_text("0")
    page.evaluate("window.loadedAt = 'this page'")

    shopify_simulator.place_order(channel.slug, [{"variant_id": VARIANT_ID, "quantity": 2}])

    expect(row.get_by_test_id("channel-orders")).to_have_text("0 / 1 orders", timeout=40_000)
    expect(page.get_by_test_id("orders")).to_have_text("1")
    # The same page, refreshed in place: no navigation happened.
    assert page.evaluate("window.loadedAt") == "this page"


def test_manager_switches_a_channel_to_shadow(logged_in_page, live_server) -> None:
    """Choose shadow, confirm, and the row shows the new mode with who switched it."""
    channel = factories.make_channel(name="Main store", mode=Channel.Mode.ACTIVE)
    page = logged_in_page
    page.goto(f"{live_server.url}/dashboard/channels/")
    row = page.locator(f"tr[data-channel='{channel.slug}']")
    expect(row.get_by_test_id("mode")).to_contain_text("Active")
    confirmations: list[str] = []

    def confirm(dialog) -> None:
        confirmations.append(dialog.message)
        dialog.accept()

    page.on("dialog", confirm)
    row.locator("select[name=mode]").select_option("shadow")
    row.get_by_role("button", name="Switch").click()

    expect(page.locator(".message-success")).to_have_text("Main store is now shadow.")
    row = page.locator(f"tr[data-channel='{channel.slug}']")
    expect(row.get_by_test_id("mode")).to_contain_text("Shadow")
    expect(row).to_contain_text("Switched mode by manager")
    assert confirmations == ["Switch Main store to Shadow (compute and log, push nothing)?"]
    channel.refresh_from_db()
    assert channel.mode == Channel.Mode.SHADOW


def test_dismissing_the_confirmation_changes_nothing(logged_in_page, live_server) -> None:
    channel = factories.make_channel(name="Main store", mode=Channel.Mode.ACTIVE)
    page = logged_in_page
    page.goto(f"{live_server.url}/dashboard/channels/")
    page.on("dialog", lambda dialog: dialog.dismiss())
    row = page.locator(f"tr[data-channel='{channel.slug}']")
    row.locator("select[name=mode]").select_option("paused")
    row.get_by_role("button", name="Switch").click()
    expect(row.get_by_test_id("mode")).to_contain_text("Active")
    channel.refresh_from_db()
    assert channel.mode == Channel.Mode.ACTIVE
    assert not ChannelOperation.objects.exists()


def test_viewer_sees_the_channels_page_but_every_action_is_disabled(
    sign_in, viewer, live_server
) -> None:
    """A user without the Channel manager's permission sees the rows, not the buttons."""
    channel = factories.make_channel(name="Main store", mode=Channel.Mode.ACTIVE)
    page = sign_in(viewer)
    page.goto(f"{live_server.url}/dashboard/channels/")
    row = page.locator(f"tr[data-channel='{channel.slug}']")
    expect(row.get_by_test_id("mode")).to_contain_text("Active")
    for name in ("Switch", "Poll", "Full sync"):
        expect(row.get_by_role("button", name=name)).to_be_disabled()
    expect(page.locator("main")).to_contain_text("You may look but not change")


def test_charts_are_drawn_with_the_vendored_library(logged_in_page, live_server) -> None:
    factories.make_channel(name="Main store")
    page = logged_in_page
    page.goto(f"{live_server.url}/dashboard/charts/")
    page.wait_for_function("window.consoleCharts !== undefined")
    assert page.evaluate("Object.keys(window.consoleCharts).sort()") == [
        "buffers",
        "drift",
        "latency",
        "throughput",
    ]
    assert page.evaluate("window.consoleCharts.buffers.data.labels") == ["Main store"]
    assert re.search(r"chart\.js-4\.6\.1", page.content())
