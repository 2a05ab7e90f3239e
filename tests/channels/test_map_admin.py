"""The SKU-map admin: CSV export/import, edit history, mapping gaps, the rule preview."""

from __future__ import annotations

from decimal import Decimal

import pytest
import tablib
from django.urls import reverse

from channels.models import BufferRule, Channel, Listing, PendingPush
from channels.pipeline import outbox
from channels.resources import ListingResource
from tests import factories


@pytest.fixture
def channel(db):
    location = factories.make_location()
    channel = Channel.objects.create(
        platform=Channel.Platform.SHOPIFY,
        name="Map Shopify",
        slug="map-shopify",
        api_base_url="http://127.0.0.1:9",
    )
    channel.locations.add(location)
    channel.location = location  # type: ignore[attr-defined]
    return channel


def test_csv_export_then_import_round_trips_and_is_idempotent(channel):
    sku = factories.make_sku(code="MUG-1")
    Listing.objects.create(
        channel=channel, sku=sku, external_id="1001", extra_identifiers={"variant_id": "2001"}
    )
    exported = ListingResource().export().csv
    assert "map-shopify,1001,,MUG-1" in exported

    Listing.objects.all().delete()
    dataset = tablib.Dataset().load(exported, format="csv")
    result = ListingResource().import_data(dataset, dry_run=False)
    assert not result.has_errors() and not result.has_validation_errors()
    listing = Listing.objects.get(channel=channel, external_id="1001")
    assert listing.sku == sku and listing.extra_identifiers == {"variant_id": "2001"}

    again = ListingResource().import_data(dataset, dry_run=False)
    assert Listing.objects.count() == 1
    assert again.totals["skip"] == 1


def test_csv_import_with_an_unknown_sku_imports_nothing(channel):
    factories.make_sku(code="KNOWN")
    csv_text = (
        "channel,external_id,external_sku,sku,extra_identifiers,is_active\n"
        "map-shopify,1,,KNOWN,{},1\n"
        "map-shopify,2,,NOT-A-SKU,{},1\n"
    )
    result = ListingResource().import_data(
        tablib.Dataset().load(csv_text, format="csv"), dry_run=False, raise_errors=False
    )
    assert result.has_errors() or result.has_validation_errors()
    assert Listing.objects.count() == 0


def test_admin_import_and_export_pages_answer(admin_client, channel):
    assert admin_client.get(reverse("admin:channels_listing_import")).status_code == 200
    assert admin_client.get(reverse("admin:channels_listing_export")).status_code == 200


def test_buffer_rule_and_listing_edits_are_kept_in_history(admin_client, channel):
    rule = BufferRule.objects.create(channel=channel, percent=Decimal(10))
    rule.percent = Decimal(20)
    rule.save()
    assert [float(h.percent) for h in rule.history.order_by("history_date")] == [10.0, 20.0]
    page = admin_client.get(reverse("admin:channels_bufferrule_history", args=[rule.pk]))
    assert page.status_code == 200


def test_mapping_gaps_lists_unmapped_listings_and_unlisted_skus(admin_client, channel):
    listed = factories.make_sku(code="LISTED")
    unlisted = factories.make_sku(code="UNLISTED")
    no_stock = factories.make_sku(code="NOSTOCK")
    for sku in (listed, unlisted):
        factories.stock(sku, channel.location, 5)
    Listing.objects.create(channel=channel, sku=listed, external_id="10")
    Listing.objects.create(channel=channel, sku=None, external_id="11")

    page = admin_client.get(reverse("admin:channels_channel_mapping_gaps", args=[channel.pk]))
    assert page.status_code == 200
    gaps = page.context["gaps"]
    assert [listing.external_id for listing in gaps.unmapped_listings] == ["11"]
    assert [sku.code for sku in gaps.unlisted_skus] == ["UNLISTED"]
    assert no_stock not in gaps.unlisted_skus


def test_rule_preview_shows_the_effect_without_saving(admin_client, channel):
    sku = factories.make_sku()
    factories.stock(sku, channel.location, 10)
    Listing.objects.create(channel=channel, sku=sku, external_id="20")
    response = admin_client.get(
        reverse("admin:channels_bufferrule_preview"),
        {"channel": channel.pk, "percent": "30", "fixed_units": "1"},
    )
    assert response.status_code == 200
    [row] = response.context["rows"]
    assert row.current == 10
    assert row.previewed.listed == 6  # floor(10 x 0.7) - 1
    assert not BufferRule.objects.exists()


def test_rule_preview_reports_form_errors(admin_client, channel):
    response = admin_client.get(
        reverse("admin:channels_bufferrule_preview"), {"channel": channel.pk, "percent": "150"}
    )
    assert response.status_code == 200
    assert "percent" in response.context["errors"]


def test_a_buffer_rule_change_owes_its_listings_a_push(channel):
    sku = factories.make_sku()
    listing = factories.make_listing(channel=channel, sku=sku, external_id="30")
    PendingPush.objects.all().delete()
    factories.make_buffer_rule(channel=channel, fixed_units=2)
    assert PendingPush.objects.filter(listing=listing).exists()


def test_a_stock_change_owes_every_listing_of_the_sku_a_push_in_its_transaction(channel):
    sku = factories.make_sku()
    elsewhere = factories.make_location()
    listing = Listing.objects.create(channel=channel, sku=sku, external_id="40")
    PendingPush.objects.all().delete()

    factories.stock(sku, elsewhere, 5)  # not a location this channel sells from
    assert not PendingPush.objects.exists()

    factories.stock(sku, channel.location, 5)
    pending = PendingPush.objects.get(listing=listing)
    factories.stock(sku, channel.location, 1)
    pending.refresh_from_db()
    assert pending.generation == 2  # coalesced: one row, bumped


def test_mark_listings_owed_skips_inactive_listings(channel):
    sku = factories.make_sku()
    inactive = Listing.objects.create(channel=channel, sku=sku, external_id="50", is_active=False)
    PendingPush.objects.all().delete()
    outbox.mark_listings_owed(listing_ids=[inactive.pk])
    assert not PendingPush.objects.exists()
