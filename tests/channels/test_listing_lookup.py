"""Which listing an order line names: found once through the identifiers' index, then
remembered for a few seconds, yet never used once it no longer fits."""

from __future__ import annotations

import dataclasses

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from channels import services
from channels.connectors.registry import get_connector
from channels.models import Listing
from channels.pipeline import ingest
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _nothing_remembered():
    ingest.forget_found_listings()
    yield
    ingest.forget_found_listings()


@pytest.fixture
def channel():
    return factories.make_channel()


def _find(channel, variant_id: str):
    return ingest.listing_for_identifiers(
        channel=channel, connector=get_connector(channel), identifiers={"variant_id": variant_id}
    )


def _statements(channel, variant_id: str) -> tuple[Listing | None, list[str]]:
    with CaptureQueriesContext(connection) as captured:
        found = _find(channel, variant_id)
    return found, [query["sql"] for query in captured.captured_queries]


def _edit(listing, **changes) -> None:
    fields = dataclasses.replace(services.ListingFields.of(listing), **changes)
    services.update_listing(listing_id=listing.pk, fields=fields)


def test_a_second_lookup_reads_the_remembered_listing_by_its_key(channel):
    listing = factories.make_listing(
        channel=channel, sku=factories.make_sku(), extra_identifiers={"variant_id": "4101"}
    )

    first, first_sql = _statements(channel, "4101")
    second, second_sql = _statements(channel, "4101")

    assert first is not None and second is not None
    assert first.pk == second.pk == listing.pk
    assert any("extra_identifiers @>" in sql for sql in first_sql)
    assert len(second_sql) == 1
    assert "WHERE listing.id = " in second_sql[0]


def test_a_listing_mapped_to_another_sku_is_seen_at_once(channel):
    listing = factories.make_listing(
        channel=channel, sku=factories.make_sku(), extra_identifiers={"variant_id": "4102"}
    )
    _find(channel, "4102")
    other_sku = factories.make_sku()

    _edit(listing, sku_id=other_sku.pk)

    assert _find(channel, "4102").sku_id == other_sku.pk


def test_a_switched_off_listing_gives_way_to_the_active_one(channel):
    remembered = factories.make_listing(
        channel=channel, sku=factories.make_sku(), extra_identifiers={"variant_id": "4103"}
    )
    _find(channel, "4103")
    newer = factories.make_listing(
        channel=channel, sku=factories.make_sku(), extra_identifiers={"variant_id": 4103}
    )

    _edit(remembered, is_active=False)

    assert _find(channel, "4103").pk == newer.pk


def test_an_identifier_taken_off_the_listing_finds_it_no_more(channel):
    listing = factories.make_listing(
        channel=channel, sku=factories.make_sku(), extra_identifiers={"variant_id": "4104"}
    )
    _find(channel, "4104")

    _edit(listing, extra_identifiers={"variant_id": "4999"})

    assert _find(channel, "4104") is None
    assert _find(channel, "4999").pk == listing.pk


def test_a_number_stored_as_json_number_is_the_same_identifier(channel):
    listing = factories.make_listing(
        channel=channel, sku=factories.make_sku(), extra_identifiers={"variant_id": 4105}
    )

    assert _find(channel, "4105").pk == listing.pk
    assert _find(channel, "4105").pk == listing.pk  # remembered, and still holding it
    assert _find(channel, "04105") is None


def test_json_true_is_not_the_identifier_one(channel):
    factories.make_listing(
        channel=channel, sku=factories.make_sku(), extra_identifiers={"variant_id": True}
    )

    assert _find(channel, "1") is None
