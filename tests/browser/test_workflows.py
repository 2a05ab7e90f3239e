"""The workflows in a real browser: replay a dead letter, resolve an oversell incident, map
a gap and apply the line that waited for it."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import expect

from channels.models import DeadLetter, OversellIncident, PendingPush, UnmappedLine
from channels.pipeline import ingest, receive
from inventory.models import EventKind, InventoryEvent, StockLevel
from tests import factories


@pytest.fixture
def warehouse(transactional_db):
    return factories.make_location()


@pytest.fixture
def channel(warehouse):
    return factories.make_channel(locations=[warehouse], slug="shop", name="Shop")


@pytest.fixture
def shirt_listing(channel, warehouse):
    shirt = factories.make_sku(code="TSHIRT-001")
    factories.stock(shirt, warehouse, 10)
    return factories.make_listing(
        channel=channel, sku=shirt, external_id="30322695", extra_identifiers={"variant_id": "1"}
    )


def deliver_order(channel, *lines: tuple[int, int, dict], order_id: int = 5001) -> None:
    body = {
        "id": order_id,
        "line_items": [
            {"id": line_id, "quantity": quantity, **identifiers}
            for line_id, quantity, identifiers in lines
        ],
    }
    receipt_id = receive.record_receipt(
        channel_id=channel.pk,
        topic="orders/create",
        dedupe_key=f"order-{order_id}",
        headers={},
        body=json.dumps(body).encode(),
    )
    assert receipt_id is not None
    ingest.process_receipt(receipt_id=receipt_id)


def test_replay_a_dead_letter(logged_in_page, live_server, channel, shirt_listing):
    page = logged_in_page
    PendingPush.objects.all().delete()
    letter = DeadLetter.objects.create(
        channel=channel,
        listing=shirt_listing,
        target_quantity=10,
        attempts=[{"at": "2026-12-01T10:00:00Z", "error": "HTTP 503 from the shop"}],
    )

    page.goto(f"{live_server.url}/dashboard/dead-letters/")
    expect(page.get_by_text("HTTP 503 from the shop")).to_be_visible()
    page.locator(f'tr[data-dead-letter="{letter.pk}"] a').click()
    expect(page.get_by_role("heading", name=f"Dead letter {letter.pk}")).to_be_visible()
    page.get_by_role("button", name="Replay").click()

    expect(page.get_by_text("Replayed 1 dead letter(s)")).to_be_visible()
    expect(page.get_by_text("Replayed by manager")).to_be_visible()
    letter.refresh_from_db()
    # (The push it owes is the service's to test: a worker of the browser tests may have
    # sent it already.)
    assert (letter.status, letter.replayed_by) == (DeadLetter.Status.REPLAYED, "manager")


def test_resolve_an_oversell_incident(logged_in_page, live_server, channel, shirt_listing):
    page = logged_in_page
    deliver_order(channel, (1, 12, {"variant_id": "1"}))
    incident = OversellIncident.objects.get()

    page.goto(f"{live_server.url}/dashboard/oversells/")
    row = page.locator(f'tr[data-incident="{incident.pk}"]')
    expect(row).to_contain_text("TSHIRT-001")
    row.get_by_role("button", name="Acknowledge").click()
    expect(page.locator(f'tr[data-incident="{incident.pk}"]')).to_contain_text(
        "Acknowledged by manager"
    )
    row = page.locator(f'tr[data-incident="{incident.pk}"]')
    row.get_by_label("Root cause").fill("Counter sale not recorded")
    row.get_by_role("button", name="Resolve").click()

    expect(page.locator(f'tr[data-incident="{incident.pk}"]')).to_contain_text(
        "Resolved by manager"
    )
    incident.refresh_from_db()
    assert (incident.root_cause, incident.resolved_by) == ("Counter sale not recorded", "manager")


def test_map_a_gap_and_apply_its_waiting_line(
    logged_in_page, live_server, channel, shirt_listing, warehouse
):
    page = logged_in_page
    mug = factories.make_sku(code="MUG-RED")
    factories.stock(mug, warehouse, 5)
    deliver_order(
        channel, (1, 1, {"variant_id": "1"}), (2, 3, {"variant_id": "55", "sku": "MUG-RED"})
    )
    line = UnmappedLine.objects.get()

    page.goto(f"{live_server.url}/dashboard/mapping/")
    row = page.locator(f'tr[data-line="{line.pk}"]')
    expect(row.get_by_label("SKU code")).to_have_value("MUG-RED")  # from the line's own SKU
    row.get_by_label("Listing id on the channel").fill("40001")
    row.get_by_role("button", name="Map and apply").click()

    expect(page.get_by_text("1 waiting line(s) applied, 0 still waiting")).to_be_visible()
    expect(page.get_by_text("No line is waiting.")).to_be_visible()
    assert InventoryEvent.objects.filter(sku=mug, kind=EventKind.ORDER_COMMITTED).count() == 1
    assert StockLevel.objects.get(sku=mug, location=warehouse).committed == 3
    assert UnmappedLine.objects.get().resolved_by == "manager"


def test_a_viewer_sees_the_page_but_is_told_the_action_is_not_allowed(
    sign_in, viewer, live_server, channel, shirt_listing
):
    page = sign_in(viewer)
    letter = DeadLetter.objects.create(
        channel=channel, listing=shirt_listing, target_quantity=10, attempts=[]
    )

    page.goto(f"{live_server.url}/dashboard/dead-letters/{letter.pk}/")
    page.get_by_role("button", name="Replay").click()

    expect(page.get_by_role("alert")).to_contain_text("Not allowed")
    assert DeadLetter.objects.get(pk=letter.pk).status == DeadLetter.Status.OPEN
