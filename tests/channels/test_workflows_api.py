"""The workflows over the REST API: each action answers what it did, 403 to a caller without
its permission (changing nothing), 409 when the row's state forbids it."""

from __future__ import annotations

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from channels.models import DeadLetter, Listing, OversellIncident, UnmappedLine, WebhookReceipt
from inventory.models import EventKind, InventoryEvent
from nventory import permissions
from reconciliation.models import Discrepancy, ReconciliationRun
from tests import factories
from tests.channels.test_workflows import (
    dead_letter,
    deliver,
    mug_line,
    order,
    shirt_line,
    store,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def warehouse():
    return factories.make_location()


@pytest.fixture
def channel(warehouse):
    return factories.make_channel(locations=[warehouse], slug="shop")


@pytest.fixture
def shirt(warehouse):
    sku = factories.make_sku(code="TSHIRT-001")
    factories.stock(sku, warehouse, 10)
    return sku


@pytest.fixture
def shirt_listing(channel, shirt):
    return factories.make_listing(
        channel=channel,
        sku=shirt,
        external_id="30322695",
        external_sku="TSHIRT-001",
        extra_identifiers={"variant_id": "123456789"},
    )


def client_of(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def manager_api():
    return client_of(factories.make_user(roles=[permissions.CHANNEL_MANAGER], username="maria"))


@pytest.fixture
def viewer_api():
    return client_of(factories.make_user(roles=[permissions.VIEWER], username="victor"))


def test_dead_letters_replayed_in_bulk_and_discarded_over_the_api(
    channel, shirt_listing, manager_api
):
    letters = [dead_letter(channel, shirt_listing) for _ in range(3)]

    replayed = manager_api.post(
        reverse("channels_api:dead-letter-bulk-replay"),
        {"ids": [letters[0].pk, letters[1].pk]},
        format="json",
    )
    assert replayed.status_code == 200
    assert {row["replayed_by"] for row in replayed.json()["dead_letters"]} == {"maria"}

    discarded = manager_api.post(
        reverse("channels_api:dead-letter-discard", args=[letters[2].pk]),
        {"reason": "Item ended on the channel"},
        format="json",
    )
    assert discarded.status_code == 200
    assert discarded.json()["discard_reason"] == "Item ended on the channel"
    again = manager_api.post(
        reverse("channels_api:dead-letter-discard", args=[letters[2].pk]),
        {"reason": "twice"},
        format="json",
    )
    assert (again.status_code, again.json()["status"]) == (409, "discarded")
    blank = manager_api.post(
        reverse("channels_api:dead-letter-bulk-discard"),
        {"ids": [letters[0].pk], "reason": ""},
        format="json",
    )
    assert blank.status_code == 400
    listed = manager_api.get(reverse("channels_api:dead-letter-list"), {"status": "discarded"})
    assert [row["id"] for row in listed.json()["results"]] == [letters[2].pk]


def test_an_oversell_handled_over_the_api(channel, shirt_listing, manager_api):
    deliver(channel, "orders/create", order(shirt_line(12)))
    incident = OversellIncident.objects.get()

    acknowledged = manager_api.post(
        reverse("channels_api:oversell-incident-acknowledge", args=[incident.pk])
    )
    assert acknowledged.json()["acknowledged_by"] == "maria"
    unresolved = manager_api.post(
        reverse("channels_api:oversell-incident-resolve", args=[incident.pk]), {}, format="json"
    )
    assert unresolved.status_code == 400
    noted = manager_api.post(
        reverse("channels_api:oversell-incident-root-cause", args=[incident.pk]),
        {"root_cause": "Counter sale not recorded"},
        format="json",
    )
    assert noted.json()["root_cause"] == "Counter sale not recorded"
    resolved = manager_api.post(
        reverse("channels_api:oversell-incident-resolve", args=[incident.pk]), {}, format="json"
    )
    assert resolved.status_code == 200 and resolved.json()["resolved_by"] == "maria"
    listed = manager_api.get(reverse("channels_api:oversell-incident-list"), {"state": "open"})
    assert listed.json()["count"] == 0


def test_a_waiting_line_mapped_over_the_api(channel, shirt_listing, warehouse, manager_api):
    mug = factories.make_sku(code="MUG-RED")
    factories.stock(mug, warehouse, 5)
    deliver(channel, "orders/create", order(shirt_line(1), mug_line(2)))
    waiting = manager_api.get(reverse("channels_api:unmapped-line-list"), {"channel": "shop"})
    [line] = waiting.json()["results"]
    assert line["identifiers"] == {"variant_id": "555", "sku": "MUG-RED"}
    assert line["receipt"]["topic"] == "orders/create"

    mapped = manager_api.post(
        reverse("channels_api:unmapped-line-map", args=[line["id"]]),
        {"sku": "MUG-RED", "external_id": "40001"},
        format="json",
    )

    assert mapped.status_code == 200
    listing = Listing.objects.get(external_id="40001")
    assert mapped.json() == {"listing": listing.pk, "lines_applied": 1, "lines_waiting": 0}
    assert InventoryEvent.objects.filter(sku=mug, kind=EventKind.ORDER_COMMITTED).count() == 1
    again = manager_api.post(
        reverse("channels_api:unmapped-line-map", args=[line["id"]]),
        {"sku": "MUG-RED"},
        format="json",
    )
    assert again.status_code == 409


def test_a_mapping_gap_listing_mapped_over_the_api(channel, warehouse, manager_api):
    mug = factories.make_sku(code="MUG-RED")
    gap = factories.make_listing(channel=channel, sku=None, external_id="40001")
    answer = manager_api.post(
        reverse("channels_api:listing-map", args=[gap.pk]), {"sku": "MUG-RED"}, format="json"
    )
    assert answer.json() == {"listing": gap.pk, "lines_applied": 0, "lines_waiting": 0}
    assert Listing.objects.get(pk=gap.pk).sku == mug


def test_failed_and_quarantined_receipts_listed_inspected_and_reprocessed(
    channel, shirt_listing, manager_api
):
    quarantined = deliver(channel, "orders/create", b"<b>not json</b>" + b"x" * 70_000)
    processed = deliver(channel, "orders/create", order(shirt_line(1)))

    listed = manager_api.get(reverse("channels_api:webhook-receipt-list"))
    assert [row["id"] for row in listed.json()["results"]] == [quarantined.pk]
    assert "body" not in listed.json()["results"][0]
    detail = manager_api.get(reverse("channels_api:webhook-receipt-detail", args=[quarantined.pk]))
    body = detail.json()["body"]
    assert (body["size_bytes"], body["truncated"]) == (70_015, True)
    assert body["text"].startswith("<b>not json</b>") and len(body["text"]) == 64 * 1024
    assert (
        manager_api.get(
            reverse("channels_api:webhook-receipt-list"), {"status": "processed"}
        ).status_code
        == 400
    )

    answer = manager_api.post(
        reverse("channels_api:webhook-receipt-reprocess", args=[quarantined.pk])
    )
    assert answer.status_code == 200
    assert (answer.json()["status"], answer.json()["reprocessed_by"]) == ("received", "maria")
    refused = manager_api.post(
        reverse("channels_api:webhook-receipt-reprocess", args=[processed.pk])
    )
    assert (refused.status_code, refused.json()["status"]) == (409, "processed")
    bulk = manager_api.post(
        reverse("channels_api:webhook-receipt-bulk-reprocess"),
        {"ids": [quarantined.pk, processed.pk]},
        format="json",
    )
    assert bulk.json() == {"reprocessed": []}  # one is received now, the other applied


def discrepancy_of(listing) -> Discrepancy:
    run = ReconciliationRun.objects.create(
        channel=listing.channel, kind="poll", status="done", channel_mode="shadow"
    )
    return Discrepancy.objects.create(
        run=run,
        channel=listing.channel,
        listing=listing,
        sku=listing.sku,
        expected=10,
        actual=8,
        cause=Discrepancy.Cause.MANUAL_EDIT,
    )


def test_discrepancies_settled_over_the_api(shirt_listing, warehouse, manager_api):
    accepted = discrepancy_of(shirt_listing)
    answer = manager_api.post(
        reverse("reconciliation_api:discrepancy-accept-channel-figure", args=[accepted.pk]),
        {"location": warehouse.code},
        format="json",
    )
    assert answer.status_code == 200
    assert (answer.json()["settlement"], answer.json()["settled_by"]) == (
        "accepted_channel",
        "maria",
    )
    pushed = discrepancy_of(shirt_listing)
    answer = manager_api.post(
        reverse("reconciliation_api:discrepancy-push-master-figure", args=[pushed.pk])
    )
    assert answer.json()["settlement"] == "pushed_master"
    again = manager_api.post(
        reverse("reconciliation_api:discrepancy-push-master-figure", args=[pushed.pk])
    )
    assert again.status_code == 409


def test_every_workflow_action_answers_403_to_a_caller_without_its_permission(
    channel, shirt_listing, viewer_api
):
    letter = dead_letter(channel, shirt_listing)
    deliver(channel, "orders/create", order(shirt_line(12), mug_line(1)))
    incident = OversellIncident.objects.get()
    line = UnmappedLine.objects.get()
    gap = factories.make_listing(channel=channel, sku=None, external_id="9")
    receipt_id = store(channel, "orders/create", b"{", quarantine_reason="Unreadable")
    discrepancy = discrepancy_of(shirt_listing)
    actions = [
        ("channels_api:dead-letter-replay", [letter.pk], None),
        ("channels_api:dead-letter-bulk-replay", [], {"ids": [letter.pk]}),
        ("channels_api:dead-letter-discard", [letter.pk], {"reason": "x"}),
        ("channels_api:dead-letter-bulk-discard", [], {"ids": [letter.pk], "reason": "x"}),
        ("channels_api:oversell-incident-acknowledge", [incident.pk], None),
        ("channels_api:oversell-incident-root-cause", [incident.pk], {"root_cause": "x"}),
        ("channels_api:oversell-incident-resolve", [incident.pk], {"root_cause": "x"}),
        ("channels_api:unmapped-line-map", [line.pk], {"sku": "TSHIRT-001", "external_id": "5"}),
        ("channels_api:listing-map", [gap.pk], {"sku": "TSHIRT-001"}),
        ("channels_api:webhook-receipt-reprocess", [receipt_id], None),
        ("channels_api:webhook-receipt-bulk-reprocess", [], {"ids": [receipt_id]}),
        ("reconciliation_api:discrepancy-accept-channel-figure", [discrepancy.pk], {}),
        ("reconciliation_api:discrepancy-push-master-figure", [discrepancy.pk], None),
    ]
    for route, args, body in actions:
        answer = viewer_api.post(reverse(route, args=args), body, format="json")
        assert answer.status_code == 403, route
    # Reading is allowed to anyone signed in; nothing changed.
    assert viewer_api.get(reverse("channels_api:webhook-receipt-list")).status_code == 200
    assert DeadLetter.objects.get(pk=letter.pk).status == DeadLetter.Status.OPEN
    assert OversellIncident.objects.get().acknowledged_at is None
    assert UnmappedLine.objects.get().resolved_at is None
    assert Listing.objects.get(pk=gap.pk).sku is None
    assert WebhookReceipt.objects.get(pk=receipt_id).status == WebhookReceipt.Status.QUARANTINED
    assert Discrepancy.objects.get(pk=discrepancy.pk).settlement == ""
