"""The rules modules by example, and the outbox trigger installed from ``channels.rules``.

``test_rules_properties.py`` compares their SQL with their Python on random data.
"""

from __future__ import annotations

import hashlib
import importlib
import pkgutil

import pytest
from django.db import connection

import channels.migrations
from bundles import rules as bundle_rules
from channels import rules, selectors
from tests import factories
from tests.bundles.helpers import make_bundle


def test_listing_rule_beats_sku_rule_beats_channel_rule():
    """Each narrower scope wins over the wider ones; with none at all, there is no rule."""
    scoped = rules.ScopedRules.of(
        [
            rules.Scoped(listing_id=None, sku_id=None, rule="channel"),
            rules.Scoped(listing_id=None, sku_id=7, rule="sku 7"),
            rules.Scoped(listing_id=3, sku_id=None, rule="listing 3"),
        ]
    )

    assert scoped.effective(listing_id=3, sku_id=7) == "listing 3"
    assert scoped.effective(listing_id=4, sku_id=7) == "sku 7"
    assert scoped.effective(listing_id=4, sku_id=8) == "channel"
    assert scoped.effective(listing_id=4, sku_id=None) == "channel"
    assert rules.ScopedRules[str]().effective(listing_id=3, sku_id=7) is None


def test_bundle_ats_counts_an_oversold_component_as_zero_and_no_components_as_zero():
    """floor(ATS / units) per component, negative ATS as 0; the smallest; 0 without any."""
    allowances = [
        bundle_rules.component_allows(ats=7, per_bundle=2),
        bundle_rules.component_allows(ats=-4, per_bundle=1),
    ]

    assert allowances == [3, 0]
    assert bundle_rules.bundle_ats(allowances) == 0
    assert bundle_rules.bundle_ats([3, 5]) == 3
    assert bundle_rules.bundle_ats([]) == 0


def test_a_listing_of_a_bundle_is_affected_by_its_components_only_where_its_channel_sells():
    """A component's stock change owes the bundle's active listings on channels selling
    from that location, and nothing else."""
    listing = rules.ListingFacts(sku_id=10, is_active=True, channel_location_ids=frozenset({1}))

    assert rules.owed_by_stock_change(
        listing=listing, sku_id=5, location_id=1, bundles_containing={10}
    )
    assert not rules.owed_by_stock_change(
        listing=listing, sku_id=5, location_id=2, bundles_containing={10}
    )
    assert not rules.owed_by_stock_change(
        listing=listing, sku_id=5, location_id=1, bundles_containing={11}
    )
    assert not rules.affected_by_sku(listing_sku_id=None, sku_id=5, bundles_containing={10})


@pytest.mark.django_db
def test_ats_on_a_channel_counts_only_the_channels_locations():
    """A bundle's ATS on a channel is worked out from its components' stock there only."""
    a, b = factories.make_sku(), factories.make_sku()
    sold_from, elsewhere = factories.make_location(), factories.make_location()
    factories.stock(a, sold_from, 4)
    factories.stock(a, elsewhere, 40)
    factories.stock(b, sold_from, 9)
    bundle = make_bundle((a, 2), (b, 3))
    channel = factories.make_channel(locations=[sold_from])
    empty_channel = factories.make_channel()

    assert selectors.ats_on_channel(sku_id=bundle.pk, channel_id=channel.pk) == 2
    assert selectors.ats_on_channel(sku_id=a.pk, channel_id=channel.pk) == 4
    assert selectors.ats_on_channel(sku_id=bundle.pk, channel_id=empty_channel.pk) == 0


def _trigger_migrations() -> list[str]:
    """Channels migrations that record the checksum of the trigger function they install."""
    names = sorted(module.name for module in pkgutil.iter_modules(channels.migrations.__path__))
    return [
        name
        for name in names
        if hasattr(importlib.import_module(f"channels.migrations.{name}"), "INSTALLED_SHA256")
    ]


def test_the_trigger_text_in_the_rules_is_the_one_the_latest_migration_installs():
    """A change to the trigger's SQL in ``channels.rules`` comes with a migration that
    installs it again: databases migrated earlier keep the old function otherwise."""
    latest = importlib.import_module(f"channels.migrations.{_trigger_migrations()[-1]}")
    text = rules.MARK_LISTINGS_OWED_FUNCTION.encode()

    assert hashlib.sha256(text).hexdigest() == latest.INSTALLED_SHA256, (
        "channels.rules.MARK_LISTINGS_OWED_FUNCTION changed: add a channels migration that "
        "runs it (RunSQL, reverse: the previous text) and records its INSTALLED_SHA256"
    )


@pytest.mark.django_db
def test_the_installed_trigger_function_is_the_rules_text():
    """The database runs the function ``channels.rules`` defines, not an older one."""
    with connection.cursor() as cursor:
        # Raw: the system catalogue has no model.
        cursor.execute("SELECT prosrc FROM pg_proc WHERE proname = 'channels_mark_listings_owed'")
        (installed,) = cursor.fetchone()

    body = rules.MARK_LISTINGS_OWED_FUNCTION.split("$$")[1]
    assert installed == body


@pytest.mark.django_db
def test_the_listings_a_stock_change_affects_are_found_through_the_sku_index():
    """Every stock change asks which listings it affects (the outbox trigger, inside the
    stock row's lock, and the wake-up of the pushers): among thousands of listings, through
    the index of their SKU, not by reading them all."""
    from channels.models import Listing
    from inventory.models import Sku

    channel = factories.make_channel(slug="many-listings")
    skus = Sku.objects.bulk_create(
        Sku(code=f"MANY-{n:05d}", name=f"Many {n}") for n in range(5000)
    )
    Listing.objects.bulk_create(
        Listing(channel=channel, sku=sku, external_id=sku.code, external_sku=sku.code)
        for sku in skus
    )
    component = factories.make_sku(code="MANY-COMPONENT")
    factories.make_listing(channel=channel, sku=make_bundle((component, 2), code="MANY-BUNDLE"))
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE channels_listing")
        cursor.execute(
            "EXPLAIN SELECT listing.id FROM channels_listing AS listing WHERE "
            + rules.affected_by_sku_sql(listing="listing", sku_id="%s"),
            [component.pk, component.pk],
        )
        plan = "\n".join(row[0] for row in cursor.fetchall())

    assert "Seq Scan on channels_listing" not in plan, plan
    assert "channels_listing_sku_id" in plan, plan
