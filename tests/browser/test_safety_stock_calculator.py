"""Apply a recommended buffer from the safety-stock calculator, in a real browser."""

from __future__ import annotations

from decimal import Decimal

from channels.models import BufferRule
from tests import factories


def test_operator_applies_a_recommended_buffer(page, sign_in, channel_manager, live_server):
    """The manager opens a SKU's calculator, picks a cautious tolerance (the arithmetic
    changes in place), applies it, and the rule is saved with who did it and why."""
    location = factories.make_location()
    sku = factories.make_sku(code="BROWSER-TEE")
    factories.stock(sku, location, 120)
    channel = factories.make_channel(locations=[location], name="Browser shop")
    factories.make_listing(channel=channel, sku=sku)

    sign_in(channel_manager)
    page.goto(f"{live_server.url}/dashboard/skus/{sku.code}/")
    page.get_by_role("link", name="Safety stock").click()
    heading = page.locator("#recommendation-heading")
    assert "10 % + 0 units" in heading.inner_text()
    assert page.get_by_text("120 → 108").is_visible()

    page.get_by_label("Cautious", exact=False).check()
    page.wait_for_function(
        "document.querySelector('#recommendation-heading').innerText.includes('15 %')"
    )
    assert page.get_by_text("120 → 102").is_visible()

    page.locator("#apply-buffer").click()
    page.wait_for_selector(".message-success")
    assert "now 15.00 % + 0 units" in page.locator(".message-success").inner_text()

    rule = BufferRule.objects.get(channel=channel, sku=sku)
    assert rule.percent == Decimal(15)
    entry = rule.history.latest()
    assert entry.history_user == channel_manager
    assert entry.history_change_reason.startswith("Safety-stock calculator (cautious)")
