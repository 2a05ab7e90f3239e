"""Two channel rules, each defined once, in Python and as the SQL the statements embed.

**Buffer precedence.** A listing's quantity is shaped by one buffer rule of its channel:
the rule on the listing, else the rule on its SKU, else the channel's rule, else none. A
SKU rule that exists only to hold the velocity guard's rise (``velocity_only``) takes no
part in it. The velocity guard's rise (``velocity_units`` of the SKU's rule on the channel)
is held back on top of whichever rule governs, listing overrides included: it is about the
SKU selling fast on that channel, not about one listing.

**Listings a SKU change affects.** A change in the stock of a SKU changes what a listing
can list when the listing is of that SKU, or of a bundle that has the SKU among its leaf
components (``bundles.rules``). A stock change at a location owes a push to each such
listing that is active, on a channel that sells from that location.

The SQL fragments are constant text composed around the caller's aliases and placeholders
(never values). ``MARK_LISTINGS_OWED_FUNCTION`` is the outbox trigger's function, built from
them; a migration installs it (0018), so a change to any fragment it uses needs a new
migration that runs it again and records its checksum (a test holds the two equal).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Generic, NamedTuple, TypeVar

from django.db.models import Q

from bundles.rules import StockScope, sku_ats_sql

RuleT = TypeVar("RuleT")


# Buffer precedence ------------------------------------------------------------------------


class Scoped(NamedTuple, Generic[RuleT]):
    """A buffer rule with its scope: a listing's, a SKU's, or (both None) the channel's,
    and the velocity guard's rise it holds (a SKU rule only)."""

    listing_id: int | None
    sku_id: int | None
    rule: RuleT
    velocity_units: int = 0
    velocity_only: bool = False


@dataclass(frozen=True)
class ScopedRules(Generic[RuleT]):
    """One channel's buffer rules by scope."""

    channel_rule: RuleT | None = None
    by_sku: Mapping[int, RuleT] = field(default_factory=dict)
    by_listing: Mapping[int, RuleT] = field(default_factory=dict)
    velocity_by_sku: Mapping[int, int] = field(default_factory=dict)

    @classmethod
    def of(cls, rules: Iterable[Scoped[RuleT]]) -> ScopedRules[RuleT]:
        """Rules of one channel, sorted by scope (the model allows one rule per scope)."""
        channel_rule: RuleT | None = None
        by_sku: dict[int, RuleT] = {}
        by_listing: dict[int, RuleT] = {}
        velocity_by_sku: dict[int, int] = {}
        for scoped in rules:
            if scoped.listing_id is not None:
                by_listing[scoped.listing_id] = scoped.rule
            elif scoped.sku_id is not None:
                if scoped.velocity_units:
                    velocity_by_sku[scoped.sku_id] = scoped.velocity_units
                if not scoped.velocity_only:
                    by_sku[scoped.sku_id] = scoped.rule
            else:
                channel_rule = scoped.rule
        return cls(
            channel_rule=channel_rule,
            by_sku=by_sku,
            by_listing=by_listing,
            velocity_by_sku=velocity_by_sku,
        )

    def effective(self, *, listing_id: int, sku_id: int | None) -> RuleT | None:
        """The listing's rule, else its SKU's, else the channel's, else None."""
        rule = self.by_listing.get(listing_id)
        if rule is None and sku_id is not None:
            rule = self.by_sku.get(sku_id)
        return self.channel_rule if rule is None else rule

    def velocity_units(self, *, sku_id: int | None) -> int:
        """The velocity guard's rise for the SKU's listings, whichever rule governs them."""
        return 0 if sku_id is None else self.velocity_by_sku.get(sku_id, 0)


def candidate_rules(*, listing_ids: Iterable[int], sku_ids: Iterable[int]) -> Q:
    """A ``BufferRule`` filter, with the channel's: every rule that may govern listings with
    these ids and SKUs (``ScopedRules.effective`` picks among them)."""
    return (
        Q(listing_id__in=list(listing_ids))
        | Q(sku_id__in=list(sku_ids), listing__isnull=True)
        | Q(sku__isnull=True, listing__isnull=True)
    )


def effective_rule_sql(*, channel_id: str, listing: str, columns: str) -> str:
    """A query of at most one row: ``columns`` of the effective rule (``channels_bufferrule
    AS candidate``) of the listing aliased ``listing`` on the channel ``channel_id``."""
    return f"""
        SELECT {columns}
          FROM channels_bufferrule AS candidate
         WHERE candidate.channel_id = {channel_id}
           AND NOT candidate.velocity_only
           AND (candidate.listing_id = {listing}.id
                OR (candidate.sku_id = {listing}.sku_id AND candidate.listing_id IS NULL)
                OR (candidate.sku_id IS NULL AND candidate.listing_id IS NULL))
         ORDER BY candidate.listing_id IS NOT NULL DESC, candidate.sku_id IS NOT NULL DESC
         LIMIT 1"""


def velocity_units_sql(*, channel_id: str, listing: str) -> str:
    """An SQL expression: ``ScopedRules.velocity_units`` for the listing aliased
    ``listing`` on the channel ``channel_id`` (0 without a rise)."""
    return f"""COALESCE((SELECT rise.velocity_units
                   FROM channels_bufferrule AS rise
                  WHERE rise.channel_id = {channel_id}
                    AND rise.sku_id = {listing}.sku_id
                    AND rise.listing_id IS NULL), 0)"""


# ATS over a channel's locations ------------------------------------------------------------


def sells_from(*, channel_id: str) -> StockScope:
    """Stock at the locations the channel ``channel_id`` (SQL) sells from."""
    return StockScope(
        join=f"""
                       JOIN channels_channel_locations AS sells_from
                         ON sells_from.location_id = level.location_id
                        AND sells_from.channel_id = {channel_id}"""
    )


def ats_on_channel_sql(*, sku_id: str, channel_id: str) -> str:
    """An SQL expression: the SKU's ATS (a bundle's by its components) over the channel's
    locations, the figure its listings' quantities start from."""
    return sku_ats_sql(sku_id=sku_id, scope=sells_from(channel_id=channel_id))


def ats_at_location_sql(*, sku_id: str, location_id: str) -> str:
    """An SQL expression: the SKU's ATS (a bundle's by its components) at one location, the
    figure a channel that holds one per location (``Capability.LOCATION_QUANTITIES``) is
    given for it."""
    return sku_ats_sql(
        sku_id=sku_id, scope=StockScope(condition=f"AND level.location_id = {location_id}")
    )


# Listings a SKU change affects ---------------------------------------------------------------


@dataclass(frozen=True)
class ListingFacts:
    """What the rule reads of a listing."""

    sku_id: int | None
    is_active: bool
    # The locations its channel sells from.
    channel_location_ids: frozenset[int]


def affected_by_sku(
    *, listing_sku_id: int | None, sku_id: int, bundles_containing: Collection[int]
) -> bool:
    """Whether a change of the SKU's stock changes what a listing of ``listing_sku_id`` can
    list; ``bundles_containing`` are the bundles with the SKU among their leaf components."""
    return listing_sku_id is not None and (
        listing_sku_id == sku_id or listing_sku_id in bundles_containing
    )


def owed_by_stock_change(
    *, listing: ListingFacts, sku_id: int, location_id: int, bundles_containing: Collection[int]
) -> bool:
    """Whether a change of the SKU's stock at the location owes the listing a push."""
    return (
        listing.is_active
        and location_id in listing.channel_location_ids
        and affected_by_sku(
            listing_sku_id=listing.sku_id, sku_id=sku_id, bundles_containing=bundles_containing
        )
    )


def affected_by_sku_sql(*, listing: str, sku_id: str) -> str:
    """An SQL condition: ``affected_by_sku`` for the listing aliased ``listing``.

    One array of the SKU and the bundles containing it, so that the listings are found
    through their SKU index: written as "the SKU OR one of its bundles", PostgreSQL read
    every listing for every stock change (40 ms at 60,000 listings, against 0.3 ms).
    """
    return f"""{listing}.sku_id = ANY(ARRAY(
               SELECT {sku_id}
               UNION ALL
               SELECT bundle_id FROM bundles_bundlecomponent WHERE component_id = {sku_id}))"""


def affects_no_listing_sql(*, sku_id: str) -> str:
    """An SQL condition, true only if the SKU affects no listing (false does not say it
    does): two index probes, cheaper than looking for the listings when, as for most SKUs,
    there are none."""
    return f"""NOT EXISTS (SELECT 1 FROM channels_listing WHERE sku_id = {sku_id})
       AND NOT EXISTS (SELECT 1 FROM bundles_bundlecomponent
                        WHERE component_id = {sku_id})"""


# The outbox trigger's function: a stock change owes a push to each listing it affects, in
# the transaction of the change. It runs inside every stock change while the stock row is
# locked, hence the early return.
MARK_LISTINGS_OWED_FUNCTION = f"""
CREATE OR REPLACE FUNCTION channels_mark_listings_owed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF {affects_no_listing_sql(sku_id="NEW.sku_id")} THEN
        RETURN NULL;
    END IF;
    INSERT INTO channels_pendingpush AS pending (listing_id, channel_id, generation,
                                                 attempts, errors)
    SELECT listing.id, listing.channel_id, 1, 0, '[]'::jsonb
      FROM channels_listing AS listing
      JOIN channels_channel_locations AS sells_from
        ON sells_from.channel_id = listing.channel_id
       AND sells_from.location_id = NEW.location_id
     WHERE {affected_by_sku_sql(listing="listing", sku_id="NEW.sku_id")}
       AND listing.is_active
     ORDER BY listing.id  -- one lock order for every writer of these rows
    ON CONFLICT (listing_id) DO UPDATE
       SET generation = pending.generation + 1,
           last_change_at = statement_timestamp();
    RETURN NULL;
END;
$$;
"""
