"""The operator's workflows (channels.workflows) against known data: each action does what
it says once, records who did it, and refuses a person without its permission."""

from __future__ import annotations

import contextlib
import itertools
import json
import threading

import pytest
from django.core.exceptions import PermissionDenied
from django.db import connection

from channels import selectors, workflows
from channels.models import (
    DeadLetter,
    Listing,
    OversellIncident,
    PendingPush,
    UnmappedLine,
    WebhookReceipt,
)
from channels.pipeline import dead_letters, ingest, receive
from inventory.models import EventKind, InventoryEvent, StockLevel
from nventory import permissions
from tests import factories

pytestmark = pytest.mark.django_db

_deliveries = itertools.count(1)


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


@pytest.fixture
def manager():
    return factories.make_user(*permissions.ROLES[permissions.CHANNEL_MANAGER], username="maria")


@pytest.fixture
def viewer():
    return factories.make_user(username="victor")


def store(channel, topic: str, payload: object, *, quarantine_reason: str = "") -> int:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    receipt_id = receive.record_receipt(
        channel_id=channel.pk,
        topic=topic,
        dedupe_key=f"delivery-{next(_deliveries)}",
        headers={"X-Shopify-Topic": topic},
        body=body,
        quarantine_reason=quarantine_reason,
    )
    assert receipt_id is not None
    return receipt_id


def deliver(channel, topic: str, payload: object) -> WebhookReceipt:
    receipt_id = store(channel, topic, payload)
    # An error leaves the receipt failed, as a worker leaves it.
    with contextlib.suppress(ingest.IngestError):
        ingest.process_receipt(receipt_id=receipt_id)
    return WebhookReceipt.objects.get(pk=receipt_id)


def order(*lines: tuple[int, int, dict], order_id: int = 5678901234) -> dict:
    return {
        "id": order_id,
        "line_items": [
            {"id": line_id, "quantity": quantity, **identifiers}
            for line_id, quantity, identifiers in lines
        ],
    }


def shirt_line(quantity: int = 2, line_id: int = 111) -> tuple[int, int, dict]:
    return (line_id, quantity, {"variant_id": 123456789, "sku": "TSHIRT-001"})


def mug_line(quantity: int = 3, line_id: int = 222) -> tuple[int, int, dict]:
    return (line_id, quantity, {"variant_id": 555, "sku": "MUG-RED"})


def committed(sku, location) -> int:
    return StockLevel.objects.get(sku=sku, location=location).committed


def commits_of(sku) -> int:
    return InventoryEvent.objects.filter(sku=sku, kind=EventKind.ORDER_COMMITTED).count()


# --- dead letters --------------------------------------------------------------------------


def dead_letter(channel, listing, **fields) -> DeadLetter:
    fields.setdefault("attempts", [{"at": "2026-12-01T10:00:00Z", "error": "HTTP 500"}])
    return DeadLetter.objects.create(
        channel=channel, listing=listing, target_quantity=fields.pop("target", 7), **fields
    )


def test_replaying_dead_letters_owes_each_listing_a_push_and_records_who(
    channel, shirt_listing, manager
):
    PendingPush.objects.all().delete()
    other = factories.make_listing(channel=channel, sku=shirt_listing.sku)
    letters = [dead_letter(channel, shirt_listing), dead_letter(channel, other)]

    replayed = workflows.replay_dead_letters(
        dead_letter_ids=[letter.pk for letter in letters], actor=manager
    )

    assert {letter.pk for letter in replayed} == {letter.pk for letter in letters}
    assert set(PendingPush.objects.values_list("listing_id", flat=True)) == {
        shirt_listing.pk,
        other.pk,
    }
    for letter in DeadLetter.objects.all():
        assert letter.status == DeadLetter.Status.REPLAYED
        assert letter.replayed_by == "maria" and letter.replayed_at is not None


def test_a_second_replay_of_the_same_dead_letters_replays_nothing(channel, shirt_listing, manager):
    letter = dead_letter(channel, shirt_listing)
    workflows.replay_dead_letters(dead_letter_ids=[letter.pk], actor=manager)
    PendingPush.objects.all().delete()

    assert workflows.replay_dead_letters(dead_letter_ids=[letter.pk], actor=manager) == []
    assert not PendingPush.objects.exists()
    with pytest.raises(dead_letters.DeadLetterNotOpen):
        workflows.replay_dead_letter(dead_letter_id=letter.pk, actor=manager)


def test_discarding_dead_letters_keeps_the_reason_and_owes_nothing(
    channel, shirt_listing, manager
):
    PendingPush.objects.all().delete()
    letter = dead_letter(channel, shirt_listing)
    replayed = dead_letter(channel, shirt_listing, status=DeadLetter.Status.REPLAYED)

    discarded = workflows.discard_dead_letters(
        dead_letter_ids=[letter.pk, replayed.pk],
        reason="  Listing deleted on the channel  ",
        actor=manager,
    )

    assert [row.pk for row in discarded] == [letter.pk]
    letter.refresh_from_db()
    assert (letter.status, letter.discarded_by, letter.discard_reason) == (
        DeadLetter.Status.DISCARDED,
        "maria",
        "Listing deleted on the channel",
    )
    assert letter.discarded_at is not None
    assert DeadLetter.objects.get(pk=replayed.pk).status == DeadLetter.Status.REPLAYED
    assert not PendingPush.objects.exists()
    with pytest.raises(dead_letters.DeadLetterNotOpen):
        workflows.discard_dead_letter(dead_letter_id=letter.pk, reason="again", actor=manager)


def test_a_discard_needs_a_reason(channel, shirt_listing, manager):
    letter = dead_letter(channel, shirt_listing)
    with pytest.raises(workflows.ReasonRequired):
        workflows.discard_dead_letters(dead_letter_ids=[letter.pk], reason="  ", actor=manager)
    assert DeadLetter.objects.get(pk=letter.pk).status == DeadLetter.Status.OPEN


def test_dead_letter_context_shows_the_pushes_and_the_figure_now(channel, shirt_listing):
    letter = dead_letter(channel, shirt_listing)
    context = selectors.dead_letter_context(dead_letter_id=letter.pk)
    assert context.dead_letter == letter
    assert context.listed_now.listed == 10
    assert context.push_owed  # the listing was owed its first push when it was created


# --- oversell incidents ------------------------------------------------------------------


@pytest.fixture
def incident(channel, shirt_listing):
    deliver(channel, "orders/create", order(shirt_line(13)))
    return OversellIncident.objects.get()


def test_an_oversell_is_acknowledged_noted_and_resolved_with_who_did_each(incident, manager):
    other = factories.make_user(permissions.HANDLE_OVERSELLS, username="olga")
    assert incident.shortfall == 3

    workflows.acknowledge_oversell(incident_id=incident.pk, actor=manager)
    workflows.acknowledge_oversell(incident_id=incident.pk, actor=other)
    workflows.note_oversell_root_cause(
        incident_id=incident.pk, root_cause="Buffer of 0 on a flash sale", actor=other
    )
    resolved = workflows.resolve_oversell(incident_id=incident.pk, actor=other)

    assert resolved.acknowledged_by == "maria"  # the first acknowledgement is kept
    assert (resolved.root_cause, resolved.root_cause_noted_by) == (
        "Buffer of 0 on a flash sale",
        "olga",
    )
    assert resolved.resolved_by == "olga" and resolved.resolved_at is not None
    with pytest.raises(workflows.IncidentResolved):
        workflows.resolve_oversell(incident_id=incident.pk, actor=manager)
    with pytest.raises(workflows.IncidentResolved):
        workflows.acknowledge_oversell(incident_id=incident.pk, actor=manager)


def test_an_oversell_is_not_resolved_without_a_root_cause(incident, manager):
    with pytest.raises(workflows.RootCauseRequired):
        workflows.resolve_oversell(incident_id=incident.pk, actor=manager)
    assert OversellIncident.objects.get().resolved_at is None

    resolved = workflows.resolve_oversell(
        incident_id=incident.pk, actor=manager, root_cause="Sold at the shop counter"
    )
    assert resolved.root_cause == "Sold at the shop counter"
    assert resolved.acknowledged_by == "maria"


# --- waiting lines and mapping gaps ------------------------------------------------------


@pytest.fixture
def mug(warehouse):
    sku = factories.make_sku(code="MUG-RED")
    factories.stock(sku, warehouse, 20)
    return sku


def test_mapping_a_waiting_line_creates_the_listing_and_applies_the_line_once(
    channel, shirt, shirt_listing, mug, warehouse, manager
):
    receipt = deliver(channel, "orders/create", order(shirt_line(2), mug_line(3)))
    line = UnmappedLine.objects.get()
    assert committed(mug, warehouse) == 0
    proposed = workflows.proposed_listing(line=line)
    assert proposed == workflows.ProposedListing(
        external_id="", external_sku="MUG-RED", extra_identifiers={"variant_id": "555"}
    )

    result = workflows.map_unmapped_line(
        unmapped_line_id=line.pk, sku_id=mug.pk, external_id="40001", actor=manager
    )

    listing = Listing.objects.get(channel=channel, external_id="40001")
    assert (listing.sku, listing.external_sku, listing.extra_identifiers) == (
        mug,
        "MUG-RED",
        {"variant_id": "555"},
    )
    assert (result.listing, result.lines_applied, result.lines_waiting) == (listing, 1, 0)
    assert committed(mug, warehouse) == 3
    assert committed(shirt, warehouse) == 2  # the line applied before is not applied again
    line.refresh_from_db()
    assert (line.resolved_by, line.listing) == ("maria", listing)
    assert WebhookReceipt.objects.get(pk=receipt.pk).status == WebhookReceipt.Status.PROCESSED
    assert PendingPush.objects.filter(listing=listing).exists()

    # Applying the channel's waiting lines again applies nothing twice.
    again = workflows.reapply_waiting_lines(channel_id=channel.pk, actor=manager)
    assert (again.lines_applied, again.lines_waiting) == (0, 0)
    assert ingest.reapply_receipt(receipt_id=receipt.pk) == WebhookReceipt.Status.PROCESSED
    assert (commits_of(mug), commits_of(shirt)) == (1, 1)
    assert committed(mug, warehouse) == 3


def test_mapping_a_gap_listing_applies_its_order_then_its_cancellation(
    channel, mug, warehouse, manager
):
    gap = factories.make_listing(
        channel=channel, sku=None, extra_identifiers={"variant_id": "555"}
    )
    first = deliver(channel, "orders/create", order(shirt_line(1), mug_line(3), order_id=77))
    cancel = deliver(
        channel,
        "orders/cancelled",
        {**order(shirt_line(1), mug_line(3), order_id=77), "cancelled_at": "2026-12-01T10:00Z"},
    )
    # Neither line maps: the order committed nothing, and its cancellation waits for it
    # (one of its lines names a listing of the channel).
    assert UnmappedLine.objects.filter(receipt=first).count() == 2
    assert cancel.status == WebhookReceipt.Status.AWAITING_ORDER

    result = workflows.map_listing(listing_id=gap.pk, sku_id=mug.pk, actor=manager)

    assert (result.lines_applied, result.lines_waiting) == (1, 1)  # the shirt still waits
    assert WebhookReceipt.objects.get(pk=cancel.pk).status == WebhookReceipt.Status.PROCESSED
    kinds = list(
        InventoryEvent.objects.filter(sku=mug, kind__startswith="order")
        .order_by("pk")
        .values_list("kind", flat=True)
    )
    assert kinds == [EventKind.ORDER_COMMITTED, EventKind.ORDER_CANCELLED]
    assert committed(mug, warehouse) == 0


def test_a_line_the_platform_sent_unusable_is_not_mapped(channel, mug, manager):
    deliver(channel, "orders/create", order(mug_line(3)))
    line = UnmappedLine.objects.get()
    UnmappedLine.objects.filter(pk=line.pk).update(reason="NUL byte in the SKU")
    with pytest.raises(workflows.LineUnusable):
        workflows.map_unmapped_line(
            unmapped_line_id=line.pk, sku_id=mug.pk, external_id="1", actor=manager
        )
    assert not Listing.objects.filter(sku=mug).exists()


def test_mapping_needs_both_the_mapping_and_the_waiting_line_permissions(channel, mug):
    deliver(channel, "orders/create", order(mug_line(3)))
    line = UnmappedLine.objects.get()
    mapper = factories.make_user(permissions.MAP_LISTINGS)
    with pytest.raises(PermissionDenied):
        workflows.map_unmapped_line(
            unmapped_line_id=line.pk, sku_id=mug.pk, external_id="1", actor=mapper
        )
    assert not Listing.objects.filter(sku=mug).exists()


# --- webhook receipts ------------------------------------------------------------------


@pytest.fixture
def no_location_channel(shirt):
    # Sells from no location: every order fails to apply until one is given.
    channel = factories.make_channel(slug="nowhere")
    factories.make_listing(
        channel=channel, sku=shirt, external_id="1", extra_identifiers={"variant_id": "123456789"}
    )
    return channel


def test_a_failed_receipt_reprocessed_after_the_fix_applies_once(
    no_location_channel, shirt, warehouse, manager
):
    from channels import services

    receipt = deliver(no_location_channel, "orders/create", order(shirt_line(2)))
    assert receipt.status == WebhookReceipt.Status.FAILED
    services.set_channel_locations(channel_id=no_location_channel.pk, location_ids=[warehouse.pk])

    reprocessed = workflows.reprocess_receipt(receipt_id=receipt.pk, actor=manager)
    assert (reprocessed.status, reprocessed.attempts, reprocessed.reprocessed_by) == (
        WebhookReceipt.Status.RECEIVED,
        0,
        "maria",
    )
    ingest.process_receipt(receipt_id=receipt.pk)  # what the queued task does
    ingest.process_receipt(receipt_id=receipt.pk)  # a duplicate delivery of the task

    assert WebhookReceipt.objects.get(pk=receipt.pk).status == WebhookReceipt.Status.PROCESSED
    assert committed(shirt, warehouse) == 2
    with pytest.raises(workflows.ReceiptNotReprocessable):
        workflows.reprocess_receipt(receipt_id=receipt.pk, actor=manager)
    assert workflows.reprocess_receipts(receipt_ids=[receipt.pk], actor=manager) == []
    assert commits_of(shirt) == 1


def test_a_receipt_quarantined_on_arrival_is_applied_when_reprocessed(
    channel, shirt, shirt_listing, warehouse, manager
):
    receipt_id = store(
        channel, "orders/create", order(shirt_line(4)), quarantine_reason="Too large"
    )
    assert workflows.reprocess_receipts(receipt_ids=[receipt_id], actor=manager) == [receipt_id]
    ingest.process_receipt(receipt_id=receipt_id)
    assert committed(shirt, warehouse) == 4


def test_an_unreadable_body_reprocessed_without_a_fix_is_quarantined_again(channel, manager):
    receipt = deliver(channel, "orders/create", b"{not json")
    assert receipt.status == WebhookReceipt.Status.QUARANTINED
    workflows.reprocess_receipts(receipt_ids=[receipt.pk], actor=manager)
    ingest.process_receipt(receipt_id=receipt.pk)
    assert WebhookReceipt.objects.get(pk=receipt.pk).status == WebhookReceipt.Status.QUARANTINED
    assert not InventoryEvent.objects.filter(kind=EventKind.ORDER_COMMITTED).exists()


def test_receipt_body_is_capped_for_the_page(channel):
    receipt_id = store(channel, "orders/create", b"x" * 100 + "é".encode())
    body = selectors.receipt_body(receipt_id=receipt_id, limit=101)
    assert (body.size_bytes, body.truncated) == (102, True)
    assert body.text == "x" * 100 + "\ufffd"  # half a character: replaced, not an error


@pytest.mark.django_db(transaction=True)
def test_two_operators_reprocessing_one_failed_receipt_at_once_apply_it_once(
    no_location_channel, shirt, warehouse
):
    from channels import services

    operators = [
        factories.make_user(permissions.REPROCESS_RECEIPTS, username=f"op{n}") for n in range(2)
    ]
    receipt = deliver(no_location_channel, "orders/create", order(shirt_line(2)))
    services.set_channel_locations(channel_id=no_location_channel.pk, location_ids=[warehouse.pk])
    start = threading.Barrier(len(operators))
    errors: list[BaseException] = []

    def operate(actor) -> None:
        try:
            start.wait()
            workflows.reprocess_receipts(receipt_ids=[receipt.pk], actor=actor)
            ingest.process_receipt(receipt_id=receipt.pk)
        except BaseException as error:  # reported by the test thread
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=operate, args=(actor,)) for actor in operators]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert WebhookReceipt.objects.get(pk=receipt.pk).status == WebhookReceipt.Status.PROCESSED
    assert commits_of(shirt) == 1
    assert committed(shirt, warehouse) == 2


# --- permissions ---------------------------------------------------------------------------


def test_a_person_without_the_permission_changes_nothing(channel, shirt_listing, incident, viewer):
    letter = dead_letter(channel, shirt_listing)
    receipt = deliver(channel, "orders/create", b"{not json")
    actions = [
        lambda: workflows.replay_dead_letter(dead_letter_id=letter.pk, actor=viewer),
        lambda: workflows.replay_dead_letters(dead_letter_ids=[letter.pk], actor=viewer),
        lambda: workflows.discard_dead_letters(
            dead_letter_ids=[letter.pk], reason="x", actor=viewer
        ),
        lambda: workflows.acknowledge_oversell(incident_id=incident.pk, actor=viewer),
        lambda: workflows.note_oversell_root_cause(
            incident_id=incident.pk, root_cause="x", actor=viewer
        ),
        lambda: workflows.resolve_oversell(incident_id=incident.pk, root_cause="x", actor=viewer),
        lambda: workflows.map_listing(listing_id=shirt_listing.pk, sku_id=1, actor=viewer),
        lambda: workflows.reapply_waiting_lines(channel_id=channel.pk, actor=viewer),
        lambda: workflows.reprocess_receipts(receipt_ids=[receipt.pk], actor=viewer),
    ]
    for action in actions:
        with pytest.raises(PermissionDenied):
            action()
    assert DeadLetter.objects.get(pk=letter.pk).status == DeadLetter.Status.OPEN
    incident.refresh_from_db()
    assert (incident.acknowledged_at, incident.root_cause, incident.resolved_at) == (
        None,
        "",
        None,
    )
    assert WebhookReceipt.objects.get(pk=receipt.pk).status == WebhookReceipt.Status.QUARANTINED


def test_a_line_whose_listing_has_another_sku_is_not_mapped_over_it(
    channel, shirt, shirt_listing, mug, manager
):
    deliver(channel, "orders/create", order(mug_line(3)))
    line = UnmappedLine.objects.get()
    factories.make_listing(
        channel=channel, sku=shirt, external_id="777", extra_identifiers={"variant_id": "555"}
    )
    with pytest.raises(workflows.ListingMappedElsewhere):
        workflows.map_unmapped_line(unmapped_line_id=line.pk, sku_id=mug.pk, actor=manager)
    assert Listing.objects.get(external_id="777").sku == shirt
