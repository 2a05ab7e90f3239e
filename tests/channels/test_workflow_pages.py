"""The console's workflow pages: each shows its rows to anyone who may read them in a
bounded number of queries, whatever their number; each action changes what it says for a
person holding its permission and answers 403, changing nothing, to one who only reads."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from channels.models import DeadLetter, Listing, OversellIncident, UnmappedLine, WebhookReceipt
from inventory.models import EventKind, InventoryEvent
from nventory import permissions
from reconciliation.models import Discrepancy, ReconciliationRun
from tests import factories
from tests.channels.test_workflows import dead_letter, deliver, mug_line, order, shirt_line, store

pytestmark = pytest.mark.django_db

MANY = 120


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


def reader(username: str = "victor"):
    """A person who may read every page and change nothing (the Viewer role)."""
    user = factories.make_user(username=username)
    user.user_permissions.add(
        *Permission.objects.filter(
            codename__startswith="view_", content_type__app_label__in=permissions.READABLE_APPS
        )
    )
    return type(user).objects.get(pk=user.pk)


@pytest.fixture
def viewer_client(client):
    client.force_login(reader())
    return client


@pytest.fixture
def manager_client(client):
    manager = reader("maria")
    manager.user_permissions.add(
        *(
            Permission.objects.get(
                content_type__app_label=name.split(".")[0], codename=name.split(".")[1]
            )
            for name in permissions.ROLES[permissions.CHANNEL_MANAGER]
        )
    )
    client.force_login(type(manager).objects.get(pk=manager.pk))
    return client


HTMX = {"HTTP_HX_REQUEST": "true"}


def test_pages_need_a_login(client):
    answer = client.get(reverse("dashboard:dead-letters"))
    assert answer.status_code == 302 and "login" in answer["Location"]


def test_dead_letters_page_shows_many_in_bounded_queries(
    channel, shirt_listing, viewer_client, django_assert_max_num_queries
):
    for number in range(MANY):
        dead_letter(channel, shirt_listing, target=number)
    with django_assert_max_num_queries(10):
        page = viewer_client.get(reverse("dashboard:dead-letters"))
    assert page.status_code == 200
    assert page.content.decode().count("data-dead-letter=") == 50  # one page
    with django_assert_max_num_queries(10):
        rows = viewer_client.get(reverse("dashboard:dead-letters"), {"page": 3}, **HTMX)
    assert rows.content.decode().count("data-dead-letter=") == MANY - 100
    assert "<html" not in rows.content.decode()  # the fragment only


def test_a_dead_letter_shows_every_attempt_and_the_figure_now(
    channel, shirt_listing, viewer_client, django_assert_max_num_queries
):
    letter = dead_letter(
        channel,
        shirt_listing,
        attempts=[
            {"at": "2026-12-01T10:00:00Z", "error": "HTTP 500 <b>oops</b>"},
            {"at": "2026-12-01T10:00:05Z", "error": "Timeout after 10 s"},
        ],
    )
    with django_assert_max_num_queries(20):
        page = viewer_client.get(reverse("dashboard:dead-letter", args=[letter.pk]))
    text = page.content.decode()
    assert "HTTP 500 &lt;b&gt;oops&lt;/b&gt;" in text and "Timeout after 10 s" in text
    assert "The master lists now</dt><dd>10" in text


def test_dead_letters_replayed_and_discarded_from_the_page(channel, shirt_listing, manager_client):
    letters = [dead_letter(channel, shirt_listing) for _ in range(3)]
    answer = manager_client.post(
        reverse("dashboard:dead-letters-replay"),
        {"ids": [letters[0].pk, letters[1].pk]},
        **HTMX,
    )
    assert "Replayed 2 dead letter(s)" in answer.content.decode()
    refused = manager_client.post(
        reverse("dashboard:dead-letters-discard"), {"ids": [letters[2].pk], "reason": ""}, **HTMX
    )
    assert "Say why" in refused.content.decode()
    manager_client.post(
        reverse("dashboard:dead-letters-discard"),
        {"ids": [letters[2].pk], "reason": "Item ended"},
    )
    assert sorted(DeadLetter.objects.values_list("status", "replayed_by", "discarded_by")) == [
        ("discarded", "", "maria"),
        ("replayed", "maria", ""),
        ("replayed", "maria", ""),
    ]


def test_oversells_page_and_its_actions(
    channel, shirt_listing, manager_client, django_assert_max_num_queries
):
    for number in range(MANY // 20):
        deliver(channel, "orders/create", order(shirt_line(11), order_id=1000 + number))
    incident = OversellIncident.objects.order_by("pk")[0]
    with django_assert_max_num_queries(10):
        page = manager_client.get(reverse("dashboard:oversells"))
    assert page.content.decode().count("data-incident=") == MANY // 20

    row = manager_client.post(
        reverse("dashboard:oversell-acknowledge", args=[incident.pk]), **HTMX
    ).content.decode()
    assert "Acknowledged by maria" in row and "<table" not in row
    refused = manager_client.post(
        reverse("dashboard:oversell-resolve", args=[incident.pk]), {"root_cause": ""}, **HTMX
    )
    assert "Note what caused the oversell" in refused.content.decode()
    resolved = manager_client.post(
        reverse("dashboard:oversell-resolve", args=[incident.pk]),
        {"root_cause": "Counter sale"},
        **HTMX,
    ).content.decode()
    assert "Resolved by maria" in resolved
    assert OversellIncident.objects.get(pk=incident.pk).root_cause == "Counter sale"


def test_mapping_page_maps_a_line_and_applies_it(
    channel, shirt_listing, warehouse, manager_client, django_assert_max_num_queries
):
    mug = factories.make_sku(code="MUG-RED")
    factories.stock(mug, warehouse, 9)
    for number in range(MANY // 10):
        deliver(channel, "orders/create", order(shirt_line(1), mug_line(1), order_id=number + 1))
    for number in range(10):
        factories.make_listing(channel=channel, sku=None, external_id=f"gap-{number}")
    with django_assert_max_num_queries(12):
        page = manager_client.get(reverse("dashboard:mapping"))
    text = page.content.decode()
    assert text.count("data-line=") == MANY // 10 and text.count("data-listing=") == 10
    line = UnmappedLine.objects.order_by("pk")[0]
    no_id = manager_client.post(
        reverse("dashboard:map-line", args=[line.pk]), {"sku": "MUG-RED"}, **HTMX
    ).content.decode()
    assert "This field cannot be blank." in no_id  # the listing needs the platform's id

    answer = manager_client.post(
        reverse("dashboard:map-line", args=[line.pk]),
        {"sku": "MUG-RED", "external_id": "40001"},
        **HTMX,
    ).content.decode()

    assert f"{MANY // 10} waiting line(s) applied, 0 still waiting" in answer
    assert InventoryEvent.objects.filter(sku=mug, kind=EventKind.ORDER_COMMITTED).count() == (
        MANY // 10
    )
    unknown = manager_client.post(
        reverse("dashboard:map-listing", args=[Listing.objects.filter(sku=None)[0].pk]),
        {"sku": "NOPE"},
        **HTMX,
    )
    assert "No SKU has the code" in unknown.content.decode()


def test_receipts_page_shows_the_body_escaped_and_capped_and_reprocesses(
    channel, shirt_listing, manager_client, django_assert_max_num_queries
):
    for _ in range(MANY):
        store(channel, "orders/create", b"{broken", quarantine_reason="Unreadable")
    hostile = store(
        channel,
        "orders/create",
        b"<script>alert(1)</script>" + b"y" * 70_000,
        quarantine_reason="Too deep",
    )
    with django_assert_max_num_queries(10):
        page = manager_client.get(reverse("dashboard:receipts"))
    assert page.content.decode().count("data-receipt=") == 50
    with django_assert_max_num_queries(10):
        detail = manager_client.get(reverse("dashboard:receipt", args=[hostile])).content.decode()
    assert "<script>alert(1)</script>" not in detail
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in detail
    assert "the first 64 KiB are shown" in detail
    assert detail.count("y") < 66_000

    manager_client.post(reverse("dashboard:receipts-reprocess"), {"ids": [hostile]})
    receipt = WebhookReceipt.objects.get(pk=hostile)
    assert (receipt.status, receipt.reprocessed_by) == ("received", "maria")


def test_discrepancies_page_settles_both_ways(
    channel, shirt_listing, manager_client, django_assert_max_num_queries
):
    run = ReconciliationRun.objects.create(
        channel=channel, kind="poll", status="done", channel_mode="shadow"
    )
    listings = [shirt_listing] + [
        factories.make_listing(channel=channel, sku=shirt_listing.sku) for _ in range(MANY // 4)
    ]
    found = [
        Discrepancy.objects.create(
            run=run,
            channel=channel,
            listing=listing,
            sku=listing.sku,
            expected=10,
            actual=9,
            cause="manual_edit",
        )
        for listing in listings
    ]
    with django_assert_max_num_queries(10):
        page = manager_client.get(reverse("reconciliation_console:discrepancies"))
    assert page.content.decode().count("data-discrepancy=") == 31

    taken = manager_client.post(
        reverse("reconciliation_console:accept-channel-figure", args=[found[0].pk]), **HTMX
    ).content.decode()
    assert "on hand adjusted by -1" in taken
    manager_client.post(reverse("reconciliation_console:push-master-figure", args=[found[1].pk]))
    assert dict(Discrepancy.objects.exclude(settlement="").values_list("pk", "settlement")) == {
        found[0].pk: "accepted_channel",
        found[1].pk: "pushed_master",
    }


def test_a_reader_sees_every_page_but_each_action_answers_403(
    channel, shirt_listing, viewer_client
):
    letter = dead_letter(channel, shirt_listing)
    deliver(channel, "orders/create", order(shirt_line(12), mug_line(1)))
    incident = OversellIncident.objects.get()
    line = UnmappedLine.objects.get()
    gap = factories.make_listing(channel=channel, sku=None, external_id="9")
    receipt_id = store(channel, "orders/create", b"{", quarantine_reason="Unreadable")
    run = ReconciliationRun.objects.create(
        channel=channel, kind="poll", status="done", channel_mode="shadow"
    )
    discrepancy = Discrepancy.objects.create(
        run=run, channel=channel, listing=shirt_listing, expected=10, actual=8, cause="unknown"
    )
    pages = [
        reverse("dashboard:dead-letters"),
        reverse("dashboard:dead-letter", args=[letter.pk]),
        reverse("dashboard:oversells"),
        reverse("dashboard:mapping"),
        reverse("dashboard:receipts"),
        reverse("dashboard:receipt", args=[receipt_id]),
        reverse("reconciliation_console:discrepancies"),
    ]
    for url in pages:
        assert viewer_client.get(url).status_code == 200, url
    actions = [
        (reverse("dashboard:dead-letters-replay"), {"ids": [letter.pk]}),
        (reverse("dashboard:dead-letters-discard"), {"ids": [letter.pk], "reason": "x"}),
        (reverse("dashboard:oversell-acknowledge", args=[incident.pk]), {}),
        (reverse("dashboard:oversell-root-cause", args=[incident.pk]), {"root_cause": "x"}),
        (reverse("dashboard:oversell-resolve", args=[incident.pk]), {"root_cause": "x"}),
        (reverse("dashboard:map-line", args=[line.pk]), {"sku": "TSHIRT-001", "external_id": "5"}),
        (reverse("dashboard:map-listing", args=[gap.pk]), {"sku": "TSHIRT-001"}),
        (reverse("dashboard:receipts-reprocess"), {"ids": [receipt_id]}),
        (reverse("reconciliation_console:accept-channel-figure", args=[discrepancy.pk]), {}),
        (reverse("reconciliation_console:push-master-figure", args=[discrepancy.pk]), {}),
    ]
    for url, data in actions:
        assert viewer_client.post(url, data, **HTMX).status_code == 403, url
    assert DeadLetter.objects.get(pk=letter.pk).status == DeadLetter.Status.OPEN
    assert OversellIncident.objects.get().acknowledged_at is None
    assert UnmappedLine.objects.get().resolved_at is None
    assert Listing.objects.get(pk=gap.pk).sku is None
    assert WebhookReceipt.objects.get(pk=receipt_id).status == WebhookReceipt.Status.QUARANTINED
    assert Discrepancy.objects.get(pk=discrepancy.pk).settlement == ""


def test_the_admin_reprocesses_receipts_and_replays_dead_letters_through_the_workflows(
    channel, shirt_listing, admin_client, admin_user
):
    receipt_id = store(channel, "orders/create", b"{", quarantine_reason="Unreadable")
    letter = dead_letter(channel, shirt_listing)
    admin_client.post(
        reverse("admin:channels_webhookreceipt_changelist"),
        {"action": "reprocess", "_selected_action": [receipt_id]},
    )
    admin_client.post(
        reverse("admin:channels_deadletter_changelist"),
        {"action": "replay", "_selected_action": [letter.pk]},
    )
    receipt = WebhookReceipt.objects.get(pk=receipt_id)
    assert (receipt.status, receipt.reprocessed_by) == ("received", admin_user.get_username())
    assert DeadLetter.objects.get(pk=letter.pk).replayed_by == admin_user.get_username()
