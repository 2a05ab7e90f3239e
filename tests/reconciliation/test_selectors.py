"""The bulk expected quantities agree with the channels app's own arithmetic."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from channels import selectors as channel_selectors
from channels.models import Listing
from reconciliation import selectors
from tests import factories

pytestmark = pytest.mark.django_db


def test_expected_quantities_match_listed_quantities_under_every_kind_of_rule():
    here, elsewhere = factories.make_location(), factories.make_location()
    channel = factories.make_channel(locations=[here], out_of_stock_threshold=2)
    skus = [factories.make_sku() for _ in range(6)]
    for number, sku in enumerate(skus):
        factories.stock(sku, here, 3 + 7 * number)
        factories.stock(sku, elsewhere, 100)  # not sold on this channel
    listings = [factories.make_listing(channel=channel, sku=sku) for sku in skus]
    listings.append(factories.make_listing(channel=channel, sku=None))  # a mapping gap
    now = timezone.now()
    factories.make_buffer_rule(channel=channel, percent=Decimal(25))
    factories.make_buffer_rule(channel=channel, sku=skus[1], fixed_units=4)
    factories.make_buffer_rule(channel=channel, listing=listings[2], max_cap=5)
    factories.make_buffer_rule(
        channel=channel,
        sku=skus[3],
        max_cap=1,
        cap_starts_at=now + dt.timedelta(hours=1),  # not started: no cap
    )
    channel.refresh_from_db()

    expected = selectors.expected_listed_quantities(
        channel=channel,
        location_ids=[here.pk],
        rules=selectors.channel_rules(channel=channel),
        rows=selectors.listing_rows(channel=channel),
        now=now,
    )

    reference = channel_selectors.listed_quantities(
        channel=channel, listings=list(Listing.objects.filter(channel=channel)), now=now
    )
    assert expected == reference
    assert expected[listings[0].pk] == 2  # floor(3 x 0.75) = 2, at the threshold
    assert expected[listings[-1].pk] == 0
