"""Property-based: the SQL and the Python of each rule give the same answers.

Each example draws a world (locations; leaf SKUs with stock over them, oversold ones
included; bundles, nested ones included; channels selling from some of the locations, with
listings of leaves, bundles or no SKU; buffer rules of every scope, percent, fixed units and
caps with windows; SKU rules holding a velocity guard's rise, some of them holding only the
rise) and compares:

- the effective buffer rule: ``channels.rules.effective_rule_sql`` and the claim, against
  ``ScopedRules.effective`` and the selector; the velocity guard's rise:
  ``channels.rules.velocity_units_sql`` in the claim against ``ScopedRules.velocity_units``;
- the ATS, bundles' included: the claim's and ``bundles.rules``' SQL, against its Python
  applied to the drawn BOM (expanded here, independently of the closure table);
- the listed quantity: the claim's targets, ``channels.selectors.listed_quantities`` and
  reconciliation's expected quantities, against the Python worked out here;
- the listings a stock change owes a push (the trigger) and the channels owed for a SKU
  (the outbox's query), against ``channels.rules``' Python.

Stock rows are written directly: the rules only read them, and this way an ATS can be
negative (an oversell) without replaying one. Each example runs in a savepoint rolled back
at its end.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import NamedTuple

import pytest
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bundles import rules as bundle_rules
from bundles import selectors as bundle_selectors
from bundles import services as bundle_services
from channels import rules, selectors
from channels.buffers import listed_quantity
from channels.models import BufferRule, Channel, Listing, PendingPush
from channels.pipeline import outbox, push
from inventory.models import Location, Sku, StockLevel
from reconciliation import selectors as reconciliation_selectors
from tests import factories

PROPERTY_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# --- drawing a world ------------------------------------------------------------------------


@dataclass(frozen=True)
class RuleDraw:
    percent: Decimal
    fixed_units: int
    max_cap: int | None
    # Hours from now; None is an open end. Whole hours keep "now" well inside or outside.
    cap_starts_in_h: int | None
    cap_ends_in_h: int | None
    # The velocity guard's (a SKU rule only): its rise, and whether the rule holds it alone.
    velocity_units: int = 0
    velocity_only: bool = False


@dataclass(frozen=True)
class ListingDraw:
    # An index into the world's SKUs (leaves first, then bundles); None is a mapping gap.
    sku: int | None
    is_active: bool


@dataclass(frozen=True)
class ChannelDraw:
    locations: frozenset[int]
    out_of_stock_threshold: int
    listings: tuple[ListingDraw, ...]
    channel_rule: RuleDraw | None
    # By SKU index and by listing index (within this channel).
    sku_rules: dict[int, RuleDraw]
    listing_rules: dict[int, RuleDraw]


class Level(NamedTuple):
    on_hand: int
    committed: int
    reserved: int


@dataclass(frozen=True)
class World:
    locations: int
    leaves: int
    # Per bundle, its BOM lines: (index of an earlier SKU, units per bundle).
    boms: tuple[tuple[tuple[int, int], ...], ...]
    stock: dict[tuple[int, int], Level]
    channels: tuple[ChannelDraw, ...]

    @property
    def sku_count(self) -> int:
        return self.leaves + len(self.boms)

    def leaf_units(self, sku: int) -> dict[int, int]:
        """Leaf SKU -> units in one of ``sku``: multiplied down each path, summed over paths."""
        if sku < self.leaves:
            return {sku: 1}
        units: dict[int, int] = {}
        for component, quantity in self.boms[sku - self.leaves]:
            for leaf, per_component in self.leaf_units(component).items():
                units[leaf] = units.get(leaf, 0) + quantity * per_component
        return units

    def stock_ats(self, leaf: int, locations: frozenset[int]) -> int:
        return sum(
            level.on_hand - level.committed - level.reserved
            for (stocked, location), level in self.stock.items()
            if stocked == leaf and location in locations
        )

    def ats(self, sku: int, locations: frozenset[int]) -> int:
        """``bundles.rules``' Python over the drawn data."""
        if sku < self.leaves:
            return self.stock_ats(sku, locations)
        return bundle_rules.bundle_ats(
            bundle_rules.component_allows(
                ats=self.stock_ats(leaf, locations), per_bundle=per_bundle
            )
            for leaf, per_bundle in self.leaf_units(sku).items()
        )

    def bundles_containing(self, leaf: int) -> set[int]:
        return {sku for sku in range(self.leaves, self.sku_count) if leaf in self.leaf_units(sku)}


hours = st.sampled_from([None, -3, -1, 2, 4])


@st.composite
def rule_draws(draw: st.DrawFn) -> RuleDraw:
    starts, ends = draw(hours), draw(hours)
    if starts is not None and ends is not None and ends <= starts:
        starts, ends = ends - 1, starts + 1  # the model wants the window in order
    return RuleDraw(
        percent=draw(st.decimals(min_value=0, max_value=100, places=2)),
        fixed_units=draw(st.integers(0, 4)),
        max_cap=draw(st.none() | st.integers(0, 12)),
        cap_starts_in_h=starts,
        cap_ends_in_h=ends,
    )


@st.composite
def rise_holder_draws(draw: st.DrawFn) -> RuleDraw:
    """A SKU rule the velocity guard raised: an operator's, or one holding the rise only."""
    velocity_only = draw(st.booleans())
    rise = draw(st.integers(1, 20))
    if velocity_only:
        return RuleDraw(Decimal(0), 0, None, None, None, rise, True)
    return dataclasses.replace(draw(rule_draws()), velocity_units=rise)


@st.composite
def worlds(draw: st.DrawFn) -> World:
    location_count = draw(st.integers(1, 3))
    leaves = draw(st.integers(1, 4))
    boms: list[tuple[tuple[int, int], ...]] = []
    for _ in range(draw(st.integers(0, 3))):
        components = draw(
            st.lists(st.integers(0, leaves + len(boms) - 1), min_size=1, max_size=3, unique=True)
        )
        boms.append(tuple((component, draw(st.integers(1, 3))) for component in components))
    stock = draw(
        st.dictionaries(
            st.tuples(st.integers(0, leaves - 1), st.integers(0, location_count - 1)),
            st.builds(Level, st.integers(0, 30), st.integers(0, 12), st.integers(0, 6)),
        )
    )
    sku_count = leaves + len(boms)
    channels = []
    for _ in range(draw(st.integers(1, 2))):
        listings = draw(
            st.lists(
                st.builds(
                    ListingDraw,
                    sku=st.none() | st.integers(0, sku_count - 1),
                    is_active=st.booleans(),
                ),
                min_size=1,
                max_size=5,
            )
        )
        channels.append(
            ChannelDraw(
                locations=draw(st.frozensets(st.integers(0, location_count - 1))),
                out_of_stock_threshold=draw(st.integers(0, 3)),
                listings=tuple(listings),
                channel_rule=draw(st.none() | rule_draws()),
                sku_rules=draw(
                    st.dictionaries(
                        st.integers(0, sku_count - 1), rule_draws() | rise_holder_draws()
                    )
                ),
                listing_rules=draw(
                    st.dictionaries(st.integers(0, len(listings) - 1), rule_draws())
                ),
            )
        )
    return World(location_count, leaves, tuple(boms), stock, tuple(channels))


# --- building it --------------------------------------------------------------------------


@dataclass
class Built:
    now: dt.datetime
    locations: list[Location]
    skus: list[Sku]
    channels: list[Channel]
    # Per channel, its listings in drawing order.
    listings: list[list[Listing]]
    rules: list[BufferRule]


@contextmanager
def rolled_back() -> Iterator[None]:
    with transaction.atomic():
        try:
            yield
        finally:
            transaction.set_rollback(True)
            outbox.forget_unlisted()


def _hours_from(now: dt.datetime, in_h: int | None) -> dt.datetime | None:
    return None if in_h is None else now + dt.timedelta(hours=in_h)


def build(world: World) -> Built:
    now = timezone.now()
    locations = [factories.make_location() for _ in range(world.locations)]
    skus = [factories.make_sku() for _ in range(world.sku_count)]
    for number, bom in enumerate(world.boms):
        bundle_services.set_bom(
            bundle=skus[world.leaves + number],
            lines=[(skus[component], quantity) for component, quantity in bom],
        )
    StockLevel.objects.bulk_create(
        StockLevel(sku=skus[leaf], location=locations[location], **level._asdict())
        for (leaf, location), level in world.stock.items()
    )
    channels, listings, buffer_rules = [], [], []
    for drawn in world.channels:
        channel = factories.make_channel(
            locations=[locations[index] for index in drawn.locations],
            out_of_stock_threshold=drawn.out_of_stock_threshold,
        )
        channel_listings = Listing.objects.bulk_create(
            Listing(
                channel=channel,
                sku=None if listing.sku is None else skus[listing.sku],
                external_id=f"{channel.pk}-{number}",
                is_active=listing.is_active,
            )
            for number, listing in enumerate(drawn.listings)
        )
        scoped: list[tuple[dict[str, object], RuleDraw]] = [
            ({"sku": skus[sku]}, rule) for sku, rule in drawn.sku_rules.items()
        ]
        scoped += [
            ({"listing": channel_listings[index]}, rule)
            for index, rule in drawn.listing_rules.items()
        ]
        if drawn.channel_rule is not None:
            scoped.append(({}, drawn.channel_rule))
        buffer_rules += BufferRule.objects.bulk_create(
            BufferRule(
                channel=channel,
                percent=rule.percent,
                fixed_units=rule.fixed_units,
                max_cap=rule.max_cap,
                cap_starts_at=_hours_from(now, rule.cap_starts_in_h),
                cap_ends_at=_hours_from(now, rule.cap_ends_in_h),
                velocity_units=rule.velocity_units,
                velocity_only=rule.velocity_only,
                **scope,
            )
            for scope, rule in scoped
        )
        channels.append(channel)
        listings.append(channel_listings)
    return Built(now, locations, skus, channels, listings, buffer_rules)


def python_scoped_rules(built: Built, listing: Listing) -> rules.ScopedRules[BufferRule]:
    """The channel's rules as drawn, not as queried."""
    return rules.ScopedRules.of(
        rules.Scoped(rule.listing_id, rule.sku_id, rule, rule.velocity_units, rule.velocity_only)
        for rule in built.rules
        if rule.channel_id == listing.channel_id
    )


def python_effective_rule(built: Built, listing: Listing) -> BufferRule | None:
    """``ScopedRules.effective`` over the channel's rules as drawn."""
    scoped = python_scoped_rules(built, listing)
    return scoped.effective(listing_id=listing.pk, sku_id=listing.sku_id)


class EffectiveRuleRow(NamedTuple):
    listing_id: int
    rule_id: int | None


_EFFECTIVE_RULE_ID_SQL = rules.effective_rule_sql(
    channel_id="listing.channel_id", listing="listing", columns="candidate.id"
)
# Raw: the fragment under test, on its own, with the rule's id as its one column.
_EFFECTIVE_RULE_IDS_SQL = f"""
SELECT listing.id, rule.id
  FROM channels_listing AS listing
  LEFT JOIN LATERAL ({_EFFECTIVE_RULE_ID_SQL}) AS rule ON true
 WHERE listing.id = ANY(%(listing_ids)s)
"""


def sql_effective_rule_ids(listing_ids: list[int]) -> dict[int, int | None]:
    with connection.cursor() as cursor:
        cursor.execute(_EFFECTIVE_RULE_IDS_SQL, {"listing_ids": listing_ids})
        return {
            row.listing_id: row.rule_id
            for row in (EffectiveRuleRow(*values) for values in cursor.fetchall())
        }


# --- the properties -----------------------------------------------------------------------


@pytest.mark.django_db
@PROPERTY_SETTINGS
@given(world=worlds())
def test_sql_and_python_agree_on_rule_ats_and_listed_quantity(world: World):
    """For every listing, the claim (SQL) reads the rule and ATS that the Python rules choose,
    and every path to a listed quantity gives the same figure."""
    with rolled_back():
        built = build(world)
        all_listings = [listing for listings in built.listings for listing in listings]
        sql_rule_ids = sql_effective_rule_ids([listing.pk for listing in all_listings])
        PendingPush.objects.all().delete()
        PendingPush.objects.bulk_create(
            PendingPush(listing=listing, channel_id=listing.channel_id) for listing in all_listings
        )

        for channel, drawn, listings in zip(
            built.channels, world.channels, built.listings, strict=True
        ):
            claims = push._claim(channel=channel, limit=len(listings))
            push._work_out_targets(channel, claims)
            claimed = {claim.listing.pk: claim for claim in claims}
            assert claimed.keys() == {listing.pk for listing in listings}
            listed = selectors.listed_quantities(channel=channel, listings=listings, now=built.now)
            location_ids = [built.locations[index].pk for index in drawn.locations]
            expected = reconciliation_selectors.expected_listed_quantities(
                channel=channel,
                location_ids=location_ids,
                rules=reconciliation_selectors.channel_rules(channel=channel),
                rows=reconciliation_selectors.listing_rows(channel=channel),
                now=built.now,
            )

            for listing, drawn_listing in zip(listings, drawn.listings, strict=True):
                rule = python_effective_rule(built, listing)
                values = selectors.buffer_rule_values(
                    rule,
                    velocity_units=python_scoped_rules(built, listing).velocity_units(
                        sku_id=listing.sku_id
                    ),
                )
                assert sql_rule_ids[listing.pk] == (None if rule is None else rule.pk)
                assert selectors.effective_buffer_rule(listing=listing) == rule
                claim = claimed[listing.pk]
                assert claim.rule == values

                ats = (
                    0
                    if drawn_listing.sku is None
                    else world.ats(drawn_listing.sku, drawn.locations)
                )
                assert claim.ats == ats
                if listing.sku_id is not None:
                    assert (
                        selectors.ats_on_channel(sku_id=listing.sku_id, channel_id=channel.pk)
                        == ats
                    )
                    assert (
                        selectors.available_to_sell(
                            sku_id=listing.sku_id, location_ids=location_ids
                        )
                        == ats
                    )

                quantity = (
                    0
                    if listing.sku_id is None
                    else listed_quantity(
                        ats=ats,
                        rule=values,
                        out_of_stock_threshold=drawn.out_of_stock_threshold,
                        now=built.now,
                    )
                )
                assert claim.target == quantity
                assert listed[listing.pk] == quantity
                assert selectors.explain_listing(listing=listing, now=built.now).listed == quantity
                if listing.is_active:
                    assert expected[listing.pk] == quantity


@pytest.mark.django_db
@PROPERTY_SETTINGS
@given(world=worlds(), data=st.data())
def test_sql_and_python_agree_on_bundle_ats_over_any_locations(world: World, data: st.DataObject):
    """Every bundle's ATS from ``bundles.rules``' SQL, over all locations and over any set of
    them, is its Python applied to the drawn BOM and stock."""
    with rolled_back():
        built = build(world)
        subset = data.draw(st.frozensets(st.integers(0, world.locations - 1)))
        subset_ids = [built.locations[index].pk for index in subset]
        everywhere = frozenset(range(world.locations))
        bundle_ids = [sku.pk for sku in built.skus[world.leaves :]]
        over_subset = bundle_selectors.bundle_availabilities(
            bundle_ids=bundle_ids, location_ids=subset_ids
        )
        anywhere = bundle_selectors.bundle_availabilities(bundle_ids=bundle_ids, location_ids=None)
        by_sku = bundle_selectors.available_by_sku(
            sku_ids=[sku.pk for sku in built.skus], location_ids=subset_ids
        )
        for index, sku in enumerate(built.skus):
            assert by_sku.get(sku.pk, 0) == world.ats(index, subset)
            if index < world.leaves:
                continue
            assert over_subset[sku.pk] == world.ats(index, subset)
            assert anywhere[sku.pk] == world.ats(index, everywhere)
            assert bundle_selectors.bundle_available(
                bundle_id=sku.pk, location_ids=subset_ids
            ) == world.ats(index, subset)
            assert bundle_selectors.bundle_available(
                bundle_id=sku.pk, location_ids=None
            ) == world.ats(index, everywhere)
            explanation = bundle_selectors.explain_bundle(
                bundle_id=sku.pk, location_ids=subset_ids
            )
            assert explanation.available == world.ats(index, subset)


class StockChange(NamedTuple):
    leaf: int
    location: int
    delta_on_hand: int


@pytest.mark.django_db
@PROPERTY_SETTINGS
@given(world=worlds(), data=st.data())
def test_trigger_and_outbox_owe_the_listings_the_python_rule_finds(
    world: World, data: st.DataObject
):
    """A stock change owes exactly the listings ``channels.rules.owed_by_stock_change`` finds
    (the trigger), and the outbox's query finds for a SKU exactly the channels owed a push
    for a listing the SKU affects, and whether it affects any."""
    with rolled_back():
        built = build(world)
        drawn_listings = [
            (listing, drawn, channel_drawn)
            for listings, channel_drawn in zip(built.listings, world.channels, strict=True)
            for listing, drawn in zip(listings, channel_drawn.listings, strict=True)
        ]
        facts = {
            listing.pk: rules.ListingFacts(
                sku_id=listing.sku_id,
                is_active=drawn.is_active,
                channel_location_ids=frozenset(
                    built.locations[index].pk for index in channel_drawn.locations
                ),
            )
            for listing, drawn, channel_drawn in drawn_listings
        }
        owing_listings = data.draw(st.sets(st.sampled_from(sorted(facts))))
        changes = data.draw(
            st.lists(
                st.builds(
                    StockChange,
                    st.integers(0, world.leaves - 1),
                    st.integers(0, world.locations - 1),
                    st.integers(1, 5),
                ),
                min_size=1,
                max_size=3,
            )
        )
        PendingPush.objects.all().delete()
        PendingPush.objects.bulk_create(
            PendingPush(listing_id=listing.pk, channel_id=listing.channel_id)
            for listing, _, _ in drawn_listings
            if listing.pk in owing_listings
        )

        for index, sku in enumerate(built.skus):
            containing = {built.skus[bundle].pk for bundle in world.bundles_containing(index)}
            affected = {
                listing.pk
                for listing, _, _ in drawn_listings
                if rules.affected_by_sku(
                    listing_sku_id=listing.sku_id, sku_id=sku.pk, bundles_containing=containing
                )
            }
            outbox.forget_unlisted()
            assert outbox.channels_owing_for_skus([sku.pk]) == {
                listing.channel_id
                for listing, _, _ in drawn_listings
                if listing.pk in affected & owing_listings
            }
            assert (sku.pk in outbox._unlisted_until) == (not affected)

        for change in changes:
            sku, location = built.skus[change.leaf], built.locations[change.location]
            PendingPush.objects.all().delete()
            updated = StockLevel.objects.filter(sku=sku, location=location).update(
                on_hand=F("on_hand") + change.delta_on_hand
            )
            if not updated:
                StockLevel.objects.create(sku=sku, location=location, on_hand=change.delta_on_hand)
            containing = {
                built.skus[bundle].pk for bundle in world.bundles_containing(change.leaf)
            }
            assert set(PendingPush.objects.values_list("listing_id", flat=True)) == {
                listing_id
                for listing_id, listing in facts.items()
                if rules.owed_by_stock_change(
                    listing=listing,
                    sku_id=sku.pk,
                    location_id=location.pk,
                    bundles_containing=containing,
                )
            }
