"""The push pipeline: from the outbox to the channel, rate-limited, batched, retried.

One run for one channel (``push_owed``) loops: claim a batch of owed listings, work out
their quantities from the master as it is now, and send them through the channel's
connector. A claim is a lease written in its own short transaction, never a row lock held
over HTTP, so a stock change is never kept waiting by a slow channel; a change that comes
in during the push bumps the row's generation, and the row stays owed.

What can happen to an item, and what follows:

- applied: the sync state remembers the figure; the outbox row goes (if no newer change);
- stale (compare-and-set found another figure): a drift is recorded with the channel's
  figure and the master's is written over it at once, comparing against what was found;
- rejected or not applied: counted as a failed attempt of that item alone;
- the whole call failed (5xx, timeout): a failed attempt of every item in it;
- throttled: no attempt is counted; every worker holds off as long as the platform says.

A failed attempt is retried with exponential backoff and jitter; the last one
(``Channel.max_push_attempts``) turns the item into a ``DeadLetter`` with every error.

Poison is contained: an attempt is counted when the row is claimed (and given back when
the run lets it go untried), so a push that kills its worker still spends a try. Rows
claimed behind the first group wait their turn with the try given back, counted again
just before their group is sent: a killed worker spends the tries of what it was sending
only. Anything
unexpected while a batch is pushed (an exception, an answer the connector cannot read)
ends that batch only: its rows are let go with the try counted and marked, and a marked
row, or one whose earlier claim never settled, is pushed alone from then on, so one bad
listing cannot take the others' tries. A row sent ``max_push_attempts`` times without
settling is a dead letter at its next claim, unsent.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import random
import types
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.db.models.functions import Greatest
from django.utils import timezone

from channels import rules
from channels.buffers import BufferRuleValues, listed_quantity
from channels.connectors.base import ChannelError, ChannelThrottled, Connector
from channels.connectors.registry import get_connector
from channels.connectors.types import (
    Capability,
    ItemResult,
    ItemStatus,
    ListingRef,
    QuantityUpdate,
    SubmissionRef,
)
from channels.models import (
    UNEXPLAINED_MOVES_WAIT_S,
    Channel,
    DeadLetter,
    DriftRecord,
    Listing,
    ListingSyncState,
    PendingPush,
    PushAttempt,
    SubmittedWrite,
)
from channels.pipeline import breaker, enqueue, outbox, ratelimit
from nventory import fault_injection, prepared_sql
from nventory.db import retried_on_deadlock

logger = logging.getLogger(__name__)

# Rounds of one run in which a listing that moved again before our overwrite is claimed
# again at once, uncounted; after them, such a listing counts as a failed attempt.
MAX_RACE_RETRIES = 3
DEFAULT_RETRY_BASE_S = 1.0
MAX_RETRY_DELAY_S = 300.0
# Shared by every update of a channel with one figure per listing: nothing built per row.
_NO_LOCATIONS: Mapping[str, int] = types.MappingProxyType({})


@dataclasses.dataclass
class _Claim:
    pending_id: int
    listing: Listing
    generation: int
    first_change_at: dt.datetime
    last_change_at: dt.datetime
    attempts: int
    errors: list[dict[str, str]]
    compare: int | None = None
    last_pushed: int | None = None
    channel_moves_at_claim: int = 0
    ats: int = 0
    rule: BufferRuleValues | None = None
    target: int = 0
    # Set when a compare-and-set found another figure and ours was written over it: what
    # the channel had moved that we had not heard of (its figure less the expected one).
    overwrote_moves: int | None = None
    # A compare-and-set that found another figure: (what we compared with, what it found),
    # recorded as drift when the run settles the claim.
    drift: tuple[int | None, int | None] | None = None
    # LOCATION_QUANTITIES: the figure of each of the channel's locations, by code (the
    # target is their sum).
    location_targets: dict[str, int] | None = None
    # The lease as this run holds it (the row's claimed_until): its token. A run that
    # finds the row with another has lost it to a later claim, and must not write.
    lease_until: dt.datetime | None = None


# What a push needs of each claimed listing, read by a statement of its own after the claim
# (_claim): the listing's ids, what we last told the channel, the ATS over the channel's
# locations and the effective buffer rule, both built from the rules' own SQL
# (channels.rules, bundles.rules).
_LISTING_ATS_SQL = rules.ats_on_channel_sql(sku_id="listing.sku_id", channel_id="%(channel_id)s")
_LISTING_RULE_SQL = rules.effective_rule_sql(
    channel_id="%(channel_id)s",
    listing="listing",
    columns="percent, fixed_units, max_cap, cap_starts_at, cap_ends_at",
)
_LISTING_VELOCITY_SQL = rules.velocity_units_sql(channel_id="%(channel_id)s", listing="listing")
# ``= ANY(ARRAY(…))``, not ``IN (…)``: see nventory.prepared_sql on claims' generic plans.
_CLAIM_SQL = """
UPDATE channels_pendingpush AS pending
   SET claimed_until = statement_timestamp() + make_interval(secs => %(lease_s)s),
       -- Counted at the claim: a push that ends its run (a crash, a killed worker) still
       -- spends a try. _claim_from_row reads the count before this claim.
       attempts = pending.attempts + 1
 WHERE pending.id = ANY(ARRAY(
        SELECT id FROM channels_pendingpush
         WHERE channel_id = %(channel_id)s
           AND not_before <= statement_timestamp()
           AND (claimed_until IS NULL OR claimed_until < statement_timestamp())
         ORDER BY first_change_at, id
         LIMIT %(limit)s
           FOR UPDATE SKIP LOCKED))
RETURNING pending.id, pending.listing_id, pending.generation, pending.first_change_at,
          pending.last_change_at, pending.attempts - 1 AS attempts, pending.errors,
          pending.claimed_until
"""

# Before each write: the lease renewed for the rows this run still holds (the lease it
# was given, unchanged), a try counted for the rows about to be sent. A row whose lease
# lapsed while the run waited (its groups go out in turn, a slow channel, a retry's
# backoff) may have been claimed and pushed by another run since: writing our older figure
# after theirs would leave the channel wrong with nothing owed.
# Every write of several outbox rows takes their locks first, in listing order: the order
# the outbox trigger takes them in a stock change (channels.rules), so a push settling its
# batch and a sale owing the same listings cannot deadlock (an UPDATE ... WHERE id IN
# locks in whatever order its plan reads the rows; the load bench met that deadlock, a
# reservation answered 500).
_LOCK_OWED_ROWS_SQL = """
SELECT id FROM channels_pendingpush
 WHERE id = ANY(%(ids)s::bigint[])
 ORDER BY listing_id
   FOR UPDATE
"""

_RENEW_LEASES_SQL = """
UPDATE channels_pendingpush AS pending
   SET claimed_until = statement_timestamp() + make_interval(secs => %(lease_s)s),
       attempts = pending.attempts + %(tries)s
  FROM unnest(%(ids)s::bigint[], %(leases)s::timestamptz[]) AS held(id, lease_until)
 WHERE pending.id = held.id AND pending.claimed_until = held.lease_until
RETURNING pending.id, pending.claimed_until
"""

# Not in the claim's statement: a stock change that commits while the claim runs is seen
# by its row lock (which takes the newest version of the owed row, with the change's
# generation) but not by its snapshot (the ATS before the change). Pushing that ATS under
# the change's generation would let the push settle as if the change were out: the listing
# left one sale behind with nothing owed. Read after the claim, the ATS includes every
# change whose generation the claim holds.
_CLAIMED_LISTINGS_SQL = f"""
SELECT listing.id, listing.sku_id, listing.external_id, listing.extra_identifiers,
       listing.fulfilled_by_channel,
       state.expected_channel_quantity, state.last_pushed_quantity,
       COALESCE(state.channel_moves_total, 0) AS channel_moves_total,
       {_LISTING_ATS_SQL} AS ats,
       rule.percent, rule.fixed_units, rule.max_cap, rule.cap_starts_at, rule.cap_ends_at,
       {_LISTING_VELOCITY_SQL} AS velocity_units
  FROM channels_listing AS listing
  LEFT JOIN channels_listingsyncstate AS state ON state.listing_id = listing.id
  LEFT JOIN LATERAL ({_LISTING_RULE_SQL}) AS rule ON true
 WHERE listing.id = ANY(%(listing_ids)s::bigint[])
"""

# LOCATION_QUANTITIES only (a second statement, so the claim above stays as it is for every
# other channel): each claimed listing's ATS at each of the channel's locations.
_LOCATION_ATS_SQL = f"""
SELECT listing.id, location.code,
       {rules.ats_at_location_sql(sku_id="listing.sku_id", location_id="location.id")} AS ats
  FROM channels_listing AS listing
  JOIN channels_channel_locations AS sells_from ON sells_from.channel_id = listing.channel_id
  JOIN inventory_location AS location ON location.id = sells_from.location_id
 WHERE listing.id = ANY(%(listing_ids)s::bigint[])
"""

# Done: gone unless a change came in meanwhile; then it stays owed, as a fresh row.
_FINISH_SQL = """
WITH done AS (
    SELECT * FROM unnest(%(ids)s::bigint[], %(generations)s::bigint[]) AS d(id, generation)
), removed AS (
    DELETE FROM channels_pendingpush AS pending USING done
     WHERE pending.id = done.id AND pending.generation = done.generation
    RETURNING pending.id
)
UPDATE channels_pendingpush AS pending
   SET claimed_until = NULL, attempts = 0, errors = '[]'::jsonb, held_reason = '',
       first_change_at = pending.last_change_at, not_before = statement_timestamp()
  FROM done
 WHERE pending.id = done.id AND pending.id NOT IN (SELECT id FROM removed)
RETURNING pending.id
"""

# What the channel acknowledged: remembered as sent and expected, logged as an attempt.
_REMEMBER_APPLIED_SQL = """
WITH pushed AS (
    SELECT * FROM unnest(%(listing_ids)s::bigint[], %(quantities)s::integer[],
                         %(compares)s::integer[], %(attempt_numbers)s::integer[],
                         %(change_ats)s::timestamptz[], %(moves_at_claim)s::bigint[],
                         %(overwrote_moves)s::integer[])
           AS p(listing_id, quantity, compare, attempt_number, change_at, moves_at_claim,
                overwrote_moves)
), remembered AS (
    -- Expected on the channel: our figure, plus what its own sales moved since the claim
    -- (ingested while the push was in flight; channel_moves_total is their running sum):
    -- a compare-and-set that passed proves those sales came after our write.
    -- A write over moves we had not heard of absorbed them instead: expected is our figure
    -- alone, and what of those moves is not ingested yet waits as unexplained, for ingest
    -- to take out before it moves the expected figure (channels.pipeline.ingest).
    INSERT INTO channels_listingsyncstate AS state
           (listing_id, last_pushed_quantity, last_pushed_at, expected_channel_quantity,
            channel_moves_total, unexplained_channel_moves, updated_at)
    SELECT listing_id, quantity, %(acked_at)s, quantity, moves_at_claim,
           coalesce(overwrote_moves, 0), %(acked_at)s
      FROM pushed
    ON CONFLICT (listing_id) DO UPDATE
       SET last_pushed_quantity = EXCLUDED.last_pushed_quantity,
           last_pushed_at = EXCLUDED.last_pushed_at,
           expected_channel_quantity = EXCLUDED.expected_channel_quantity
               + CASE WHEN EXCLUDED.unexplained_channel_moves = 0
                      THEN state.channel_moves_total - EXCLUDED.channel_moves_total
                      ELSE 0 END,
           unexplained_channel_moves = CASE
               WHEN EXCLUDED.unexplained_channel_moves = 0
               THEN state.unexplained_channel_moves
               ELSE (CASE WHEN state.unexplained_moves_until > statement_timestamp()
                          THEN state.unexplained_channel_moves ELSE 0 END)
                    -- the moves found, less those ingested since the claim, never past 0
                    + CASE WHEN EXCLUDED.unexplained_channel_moves < 0
                           THEN least(0, EXCLUDED.unexplained_channel_moves
                                  - (state.channel_moves_total - EXCLUDED.channel_moves_total))
                           ELSE greatest(0, EXCLUDED.unexplained_channel_moves
                                  - (state.channel_moves_total - EXCLUDED.channel_moves_total))
                      END
               END,
           unexplained_moves_until = CASE
               WHEN EXCLUDED.unexplained_channel_moves = 0 THEN state.unexplained_moves_until
               ELSE statement_timestamp() + make_interval(secs => %(unexplained_wait_s)s)
               END,
           updated_at = EXCLUDED.updated_at
)
INSERT INTO channels_pushattempt
       (channel_id, listing_id, target_quantity, compare_quantity, outcome, error,
        attempt_number, change_at, sent_at, acked_at, latency_ms)
SELECT %(channel_id)s, listing_id, quantity, compare, 'applied', '', attempt_number,
       change_at, %(sent_at)s, %(acked_at)s,
       extract(epoch FROM (%(acked_at)s - change_at)) * 1000
  FROM pushed
"""


def push_owed(*, channel_id: int) -> None:
    """Push what the channel is owed and due, a batch at a time, until none is left.

    It claims again after a full batch, and after any batch with a row that changed while
    its push was in flight: that row stays owed, and the run its change woke may have
    found it still claimed by this one. Otherwise it stops without asking again: a change
    made during the run queued a run of its own.
    """
    # Raw SQL: a run per channel per coalescing window, and the ORM's query building cost
    # more than the query.
    found = list(Channel.objects.raw(_CHANNEL_SQL, [channel_id]))
    channel = found[0] if found else None
    if channel is None or channel.mode == Channel.Mode.PAUSED:
        return
    connector = get_connector(channel)
    reading = breaker.Reading(
        failures=channel.breaker_failures or 0,  # type: ignore[attr-defined]
        open_until=channel.breaker_open_until,  # type: ignore[attr-defined]
        trips=channel.breaker_trips or 0,  # type: ignore[attr-defined]
    )
    in_a_spell = reading.in_a_spell
    if channel.mode == Channel.Mode.ACTIVE:
        allowed = breaker.permission(channel_id=channel.pk, reading=reading)
        if not allowed.may_call:
            # The run queued when it opened (or the sweep) comes back after the cooldown.
            return
        if allowed.probe:
            open_for_s = breaker.probe_channel(channel=channel, connector=connector)
            if open_for_s is not None:
                enqueue.enqueue_push(channel_id=channel.pk, countdown=open_for_s)
                return
    batch_size = connector.batch_size
    raced_rounds = 0
    while True:
        wait_s = _wait_for_rate_limit(channel)
        if wait_s > 0:
            enqueue.enqueue_push(channel_id=channel.pk, countdown=wait_s)
            return
        claims = _claim(channel=channel, limit=batch_size)
        if not claims:
            return
        claims = _drop_fulfilled_by_channel(claims)
        if not claims:
            continue
        _work_out_targets(channel, claims)
        if connector.has(Capability.LOCATION_QUANTITIES):
            _work_out_location_targets(channel, claims)
        changed_in_flight = 0
        groups = _groups(_dead_letter_worn_out(channel, claims))
        # The rows of the groups after the first wait their turn (suspects go one by one):
        # a worker killed meanwhile must not spend their try, or a few kills in a row
        # would dead-letter listings that were never sent. Their try is given back now
        # and counted again right before their group is sent.
        _give_back_tries(groups[1:])
        for position, group in enumerate(groups):
            if position:
                group = _still_held(group, count_try=True)
                if not group:
                    continue
            try:
                outcome = _push_group(
                    channel, connector, group, count_races=raced_rounds >= MAX_RACE_RETRIES
                )
            except Exception as error:
                # Whatever it was (a bug, an answer nobody foresaw), it ends this group
                # only; its rows keep the try their claim counted and are pushed alone
                # from now on, until they go through or run out of tries.
                logger.exception("push of %d listings to %s failed", len(group), channel.slug)
                _let_go_after_error(group, error)
                # Tried again alone, after the backoff of their tries so far.
                enqueue.enqueue_push(
                    channel_id=channel.pk,
                    countdown=retry_delay_s(
                        channel=channel, attempts=max(claim.attempts + 1 for claim in group)
                    ),
                )
                continue
            raced_rounds += bool(outcome.raced)
            changed_in_flight += outcome.changed_in_flight
            if outcome.channel_error is not None:
                in_a_spell = True
            elif in_a_spell and outcome.pushed:
                breaker.record_answer(channel=channel, pushed=True)
                in_a_spell = False
            if outcome.retry_in is not None:
                for untried in groups[position + 1 :]:
                    _release(untried, try_counted=False)
                enqueue.enqueue_push(channel_id=channel.pk, countdown=outcome.retry_in)
                return
        if len(claims) < batch_size and not changed_in_flight:
            return


def _push_group(
    channel: Channel, connector: Connector, claims: list[_Claim], *, count_races: bool
) -> _BatchOutcome:
    """Send one group of claims (or, in shadow mode, record them); its outcome."""
    if channel.mode == Channel.Mode.SHADOW:
        return _record_shadow(channel, connector, claims)
    due = _hold_increases_to_settle(channel, claims)
    if not due:
        return _BatchOutcome()
    return dataclasses.replace(
        _send(channel, connector, due, count_races=count_races), pushed=True
    )


def _is_suspect(claim: _Claim) -> bool:
    """Whether the row has ended a run before: a try that never settled (its worker died)
    or one that ended in something unexpected."""
    return claim.attempts > len(claim.errors) or any(
        error.get("ended_run") for error in claim.errors if isinstance(error, dict)
    )


def _groups(claims: list[_Claim]) -> list[list[_Claim]]:
    """The batch as it is sent: every suspect alone, the rest together."""
    suspects = [claim for claim in claims if _is_suspect(claim)]
    others = [claim for claim in claims if not _is_suspect(claim)]
    return ([others] if others else []) + [[suspect] for suspect in suspects]


def _dead_letter_worn_out(channel: Channel, claims: list[_Claim]) -> list[_Claim]:
    """Dead-letter, unsent, the rows claimed ``max_push_attempts`` times already without
    settling (their pushes keep ending the run); the others, to push."""
    worn_out = [claim for claim in claims if claim.attempts >= channel.max_push_attempts]
    if worn_out:
        now = timezone.now().isoformat()
        with transaction.atomic():
            for claim in worn_out:
                _dead_letter(
                    channel,
                    claim,
                    [
                        *claim.errors,
                        {
                            "at": now,
                            "error": f"Tried {claim.attempts} times and no try settled: "
                            "its push ended the run each time (a crash or a killed worker).",
                        },
                    ],
                )
    return [claim for claim in claims if claim.attempts < channel.max_push_attempts]


def _let_go_after_error(claims: Sequence[_Claim], error: Exception) -> None:
    """Free the rows of a group that ended unexpectedly, the try counted and marked."""
    now = timezone.now()
    message = f"Unexpected {type(error).__name__}: {error}"[:2000]
    for claim in claims:
        PendingPush.objects.filter(pk=claim.pending_id).update(
            claimed_until=None,
            not_before=now
            + dt.timedelta(
                seconds=retry_delay_s(channel=claim.listing.channel, attempts=claim.attempts + 1)
            ),
            errors=[*claim.errors, {"at": now.isoformat(), "error": message, "ended_run": True}],
        )


# The channel and its circuit breaker, as they are at the start of a run.
_CHANNEL_SQL = """
SELECT channel.*, breaker.failures AS breaker_failures,
       breaker.open_until AS breaker_open_until, breaker.trips AS breaker_trips
  FROM channels_channel AS channel
  LEFT JOIN channels_channelbreaker AS breaker ON breaker.channel_id = channel.id
 WHERE channel.id = %s
"""


@dataclasses.dataclass(frozen=True)
class _BatchOutcome:
    # Seconds until the channel may be called again (throttled or failed), if at all.
    retry_in: float | None = None
    # The call failed as a whole (5xx, timeout, no connection): the circuit breaker counts it.
    channel_error: str | None = None
    # Rows of the batch that changed while it was pushed, so are owed again now.
    changed_in_flight: int = 0
    # Rows the channel moved again between our read-back and our overwrite.
    raced: int = 0
    # Something was sent to the channel (the breaker hears when it answered).
    pushed: bool = False


def _wait_for_rate_limit(channel: Channel) -> float:
    return ratelimit.take(channel_id=channel.pk, rate_per_s=channel.rate_limit_per_s)


def _observe_rate_budget(channel: Channel, connector: Connector) -> None:
    """Hand what the platform said is left of its limit to the shared bucket, if it said."""
    budget = connector.rate_budget()
    if budget is not None:
        ratelimit.observe(
            channel_id=channel.pk,
            rate_per_s=channel.rate_limit_per_s,
            remaining_calls=budget.remaining_calls,
            refill_in_s=budget.refill_in_s,
        )


def _claim(*, channel: Channel, limit: int) -> list[_Claim]:
    # Prepared (nventory.prepared_sql), in text as Django's cursor reads them (JSON as
    # text): the reading of the listings cost more to plan than to run, at every run.
    claimed = prepared_sql.fetch(
        _CLAIM_SQL,
        {"channel_id": channel.pk, "limit": limit, "lease_s": settings.PUSH_CLAIM_LEASE_S},
        binary=False,
    )
    if not claimed:
        return []
    listings = {
        row[0]: row[1:]
        for row in prepared_sql.fetch(
            _CLAIMED_LISTINGS_SQL,
            {"channel_id": channel.pk, "listing_ids": [row[1] for row in claimed]},
            binary=False,
        )
    }
    claims = []
    for *claim, lease_until in claimed:
        if claim[1] in listings:
            claims.append(_claim_from_row(channel, (*claim, *listings[claim[1]])))
            claims[-1].lease_until = lease_until
    return claims


def _still_held(claims: Sequence[_Claim], *, count_try: bool) -> list[_Claim]:
    """The claims whose lease this run still holds, renewed (``_RENEW_LEASES_SQL``); the
    others are left to the run that holds them now."""
    if not claims:
        return []
    ids = [claim.pending_id for claim in claims]
    with transaction.atomic():
        prepared_sql.fetch(_LOCK_OWED_ROWS_SQL, {"ids": ids})
        renewed = dict(
            prepared_sql.fetch(
                _RENEW_LEASES_SQL,
                {
                    "lease_s": settings.PUSH_CLAIM_LEASE_S,
                    "tries": int(count_try),
                    "ids": ids,
                    "leases": [claim.lease_until for claim in claims],
                },
            )
        )
    held = []
    for claim in claims:
        if claim.pending_id in renewed:
            claim.lease_until = renewed[claim.pending_id]
            held.append(claim)
        else:
            logger.warning(
                "push of listing %s not sent: its lease lapsed and another run has it",
                claim.listing.pk,
            )
    return held


def _claim_from_row(channel: Channel, row: Sequence[Any]) -> _Claim:
    (
        pending_id,
        listing_id,
        generation,
        first_change_at,
        last_change_at,
        attempts,
        errors,
        sku_id,
        external_id,
        extra_identifiers,
        fulfilled_by_channel,
        expected_channel_quantity,
        last_pushed_quantity,
        channel_moves_at_claim,
        ats,
        *rule_columns,
    ) = row
    percent, fixed_units, max_cap, cap_starts_at, cap_ends_at, velocity_units = rule_columns
    return _Claim(
        pending_id=pending_id,
        listing=Listing(
            pk=listing_id,
            channel=channel,
            sku_id=sku_id,
            external_id=external_id,
            extra_identifiers=_json(extra_identifiers) or {},
            fulfilled_by_channel=fulfilled_by_channel,
        ),
        generation=generation,
        first_change_at=first_change_at,
        last_change_at=last_change_at,
        attempts=attempts,
        errors=list(_json(errors) or []),
        compare=expected_channel_quantity,
        last_pushed=last_pushed_quantity,
        channel_moves_at_claim=channel_moves_at_claim,
        ats=int(ats),
        rule=(
            (BufferRuleValues(velocity_units=velocity_units) if velocity_units else None)
            if percent is None
            else BufferRuleValues(
                percent=percent,
                fixed_units=fixed_units,
                max_cap=max_cap,
                cap_starts_at=cap_starts_at,
                cap_ends_at=cap_ends_at,
                velocity_units=velocity_units,
            )
        ),
    )


def _json(value: Any) -> Any:
    # Django hands jsonb to raw cursors as text.
    return json.loads(value) if isinstance(value, str) else value


def _update_owed(claims: Iterable[_Claim], **changes: Any) -> None:
    """Update the claims' outbox rows, locked in listing order (``_LOCK_OWED_ROWS_SQL``)."""
    ids = [claim.pending_id for claim in claims]
    if not ids:
        return
    with transaction.atomic():
        prepared_sql.fetch(_LOCK_OWED_ROWS_SQL, {"ids": ids})
        PendingPush.objects.filter(pk__in=ids).update(**changes)


def _release(claims: Sequence[_Claim], *, try_counted: bool = True) -> None:
    """Let the claims go untried: the try their claim counted is given back."""
    _update_owed(
        claims,
        claimed_until=None,
        **({"attempts": Greatest(F("attempts") - 1, 0)} if try_counted else {}),
    )


def _give_back_tries(groups: Sequence[Sequence[_Claim]]) -> None:
    """The claim's try of rows that stay claimed, not sent yet (counted again by
    ``_still_held`` right before their group is sent)."""
    _update_owed(
        [claim for group in groups for claim in group], attempts=Greatest(F("attempts") - 1, 0)
    )


def _finish(claims: Sequence[_Claim]) -> int:
    """Settle pushed rows; how many changed meanwhile and so stay owed."""
    if not claims:
        return 0
    ids = [claim.pending_id for claim in claims]
    with transaction.atomic():
        prepared_sql.fetch(_LOCK_OWED_ROWS_SQL, {"ids": ids})
        with connection.cursor() as cursor:
            cursor.execute(
                _FINISH_SQL, {"ids": ids, "generations": [claim.generation for claim in claims]}
            )
            still_owed = cursor.fetchall()
    if still_owed:
        # Changes came in while we pushed: this run's loop claims them again.
        logger.debug("%d listings changed during their push", len(still_owed))
    return len(still_owed)


def _drop_fulfilled_by_channel(claims: Sequence[_Claim]) -> list[_Claim]:
    """The claims to push: a listing whose stock the channel holds itself (Amazon FBA,
    ``CHANNEL_APIS.md`` §2.6) owes nothing and is settled unsent, whatever changed."""
    dropped = [claim for claim in claims if claim.listing.fulfilled_by_channel]
    if dropped:
        _finish(dropped)
    return [claim for claim in claims if not claim.listing.fulfilled_by_channel]


def _work_out_targets(channel: Channel, claims: Sequence[_Claim]) -> None:
    now = timezone.now()
    for claim in claims:
        claim.target = (
            0
            if claim.listing.sku_id is None
            else listed_quantity(
                ats=claim.ats,
                rule=claim.rule,
                out_of_stock_threshold=channel.out_of_stock_threshold,
                now=now,
            )
        )


def _work_out_location_targets(channel: Channel, claims: Sequence[_Claim]) -> None:
    """Each location's figure, the listing's buffer rule applied to that location's ATS;
    the target becomes their sum, so what is remembered as pushed is what the channel got."""
    with connection.cursor() as cursor:
        cursor.execute(_LOCATION_ATS_SQL, {"listing_ids": [claim.listing.pk for claim in claims]})
        rows = cursor.fetchall()
    targets: dict[int, dict[str, int]] = {claim.listing.pk: {} for claim in claims}
    by_listing = {claim.listing.pk: claim for claim in claims}
    now = timezone.now()
    for listing_id, location_code, ats in rows:
        claim = by_listing[listing_id]
        targets[listing_id][location_code] = (
            0
            if claim.listing.sku_id is None
            else listed_quantity(
                ats=int(ats),
                rule=claim.rule,
                out_of_stock_threshold=channel.out_of_stock_threshold,
                now=now,
            )
        )
    for claim in claims:
        claim.location_targets = targets[claim.listing.pk]
        claim.target = sum(claim.location_targets.values())


def _record_shadow(
    channel: Channel, connector: Connector, claims: Sequence[_Claim]
) -> _BatchOutcome:
    """Shadow mode: log what would be pushed next to what the channel shows; send nothing."""
    try:
        shown = connector.read_quantities([_listing_ref(claim.listing) for claim in claims])
    except ChannelError as error:
        logger.warning("shadow read from %s failed: %s", channel.slug, error)
        shown = {}
    now = timezone.now()
    PushAttempt.objects.bulk_create(
        [
            PushAttempt(
                channel=channel,
                listing=claim.listing,
                target_quantity=claim.target,
                compare_quantity=claim.compare,
                channel_quantity=shown.get(claim.listing.pk),
                outcome=PushAttempt.Outcome.SHADOW,
                change_at=claim.first_change_at,
                sent_at=now,
            )
            for claim in claims
        ]
    )
    return _BatchOutcome(changed_in_flight=_finish(claims))


def _hold_increases_to_settle(channel: Channel, claims: Sequence[_Claim]) -> list[_Claim]:
    """Decreases go at once; an increase waits out the channel's settle window."""
    if channel.settle_window_s <= 0:
        return list(claims)
    now = timezone.now()
    window = dt.timedelta(seconds=channel.settle_window_s)
    due, held = [], []
    for claim in claims:
        is_increase = claim.last_pushed is not None and claim.target > claim.last_pushed
        if is_increase and claim.last_change_at + window > now:
            held.append(claim)
        else:
            due.append(claim)
    for claim in held:
        PendingPush.objects.filter(pk=claim.pending_id).update(
            claimed_until=None,
            not_before=claim.last_change_at + window,
            attempts=Greatest(F("attempts") - 1, 0),
        )
    if held:
        earliest = min(claim.last_change_at + window for claim in held)
        enqueue.enqueue_push(channel_id=channel.pk, countdown=(earliest - now).total_seconds())
    return due


def _listing_ref(listing: Listing) -> ListingRef:
    return ListingRef(
        listing_id=listing.pk,
        external_id=listing.external_id,
        extra_identifiers=listing.extra_identifiers,
    )


def _update_for(claim: _Claim, compare: int | None) -> QuantityUpdate:
    return QuantityUpdate(
        listing_id=claim.listing.pk,
        external_id=claim.listing.external_id,
        quantity=claim.target,
        compare_quantity=compare,
        # The same write keeps its key across retries, so a call that timed out after the
        # channel applied it is not applied twice; another target or compare is another write.
        idempotency_key=f"push-{claim.pending_id}-{claim.generation}-{compare}-{claim.target}",
        extra_identifiers=claim.listing.extra_identifiers,
        location_quantities=_NO_LOCATIONS
        if claim.location_targets is None
        else claim.location_targets,
    )


def _send(
    channel: Channel, connector: Connector, claims: list[_Claim], *, count_races: bool = True
) -> _BatchOutcome:
    """Send one batch; what the run does next follows from the outcome."""
    sent_at = timezone.now()
    try:
        results = connector.push_quantities([_update_for(c, c.compare) for c in claims])
        fault_injection.after_push_answered(
            lambda: [[channel.slug, c.listing.external_id, c.target] for c in claims]
        )
    except ChannelThrottled as error:
        _observe_rate_budget(channel, connector)
        retry_after = error.retry_after_s or 1.0
        ratelimit.hold_off(
            channel_id=channel.pk, rate_per_s=channel.rate_limit_per_s, seconds=retry_after
        )
        _record_attempts(channel, claims, sent_at, PushAttempt.Outcome.THROTTLED, str(error))
        _release(claims)
        return _BatchOutcome(retry_in=retry_after)
    except ChannelError as error:
        _observe_rate_budget(channel, connector)
        _record_attempts(channel, claims, sent_at, PushAttempt.Outcome.FAILED, str(error))
        open_for_s = breaker.record_failure(channel=channel, error=str(error), probe=False)
        if open_for_s is not None:
            # The breaker takes this failure on: the items keep their tries for the channel's
            # return (an outage must not turn what it is owed into dead letters).
            _hold(claims, seconds=open_for_s)
            return _BatchOutcome(retry_in=open_for_s, channel_error=str(error))
        return _BatchOutcome(
            retry_in=_fail(channel, claims, str(error), at_least_s=error.retry_after_s),
            channel_error=str(error),
        )
    _observe_rate_budget(channel, connector)

    by_listing = {claim.listing.pk: claim for claim in claims}
    stale = [r for r in results if r.status == ItemStatus.STALE]
    if stale:
        results = _overwrite_drift(channel, connector, by_listing, results, stale, sent_at)
    return _settle_results(
        channel, connector, by_listing, results, sent_at, count_races=count_races
    )


# What the channel was expected to hold is what we compared against plus the moves of its
# own ingested since the claim (its orders, and levels its webhooks reported): a sale known
# by then is no drift, and one a level webhook already recorded is not recorded twice. The
# running total is read under a share lock: an ingest that moved it and has not committed
# yet is waited for, not missed. Run when the claim is settled (with the sync state, for a
# write that went through), so a sale ingested while we wrote over it counts as known.
_RECORD_DRIFT_SQL = """
INSERT INTO channels_driftrecord
       (channel_id, listing_id, expected_quantity, channel_quantity, master_quantity,
        detected_by, explained_units, explained_by, created_at)
SELECT %(channel_id)s, found.listing_id,
       found.compare + moves.since_claim, found.quantity, found.target, %(drift_detected_by)s,
       0, '', statement_timestamp()
  FROM unnest(%(drift_listing_ids)s::bigint[], %(drift_compares)s::integer[],
              %(drift_moves_at_claim)s::bigint[], %(drift_found)s::integer[],
              %(drift_targets)s::integer[])
       AS found(listing_id, compare, moves_at_claim, quantity, target)
 CROSS JOIN LATERAL (
       SELECT coalesce((SELECT state.channel_moves_total FROM channels_listingsyncstate AS state
                         WHERE state.listing_id = found.listing_id FOR SHARE),
                       found.moves_at_claim) - found.moves_at_claim AS since_claim
 ) AS moves
 WHERE found.compare IS NULL OR found.quantity IS NULL
    OR found.compare + moves.since_claim <> found.quantity
"""


def _overwrite_drift(
    channel: Channel,
    connector: Connector,
    by_listing: dict[int, _Claim],
    results: list[ItemResult],
    stale: list[ItemResult],
    sent_at: dt.datetime,
) -> list[ItemResult]:
    """Note what the channel held instead (drift), then write the master's figure over it."""
    _record_attempts(
        channel,
        [by_listing[result.listing_id] for result in stale],
        sent_at,
        PushAttempt.Outcome.STALE,
        "compare-and-set: the channel held another figure",
    )
    held = {
        claim.listing.pk
        for claim in _still_held(
            [by_listing[result.listing_id] for result in stale], count_try=False
        )
    }
    # A listing another run holds now is theirs to settle: no result of ours for it.
    lost = {result.listing_id for result in stale} - held
    results = [result for result in results if result.listing_id not in lost]
    stale = [result for result in stale if result.listing_id in held]
    if not stale:
        return results
    retry = [by_listing[result.listing_id] for result in stale]
    for claim, result in zip(retry, stale, strict=True):
        claim.drift = (claim.compare, result.actual_quantity)
        if result.actual_quantity is not None and claim.compare is not None:
            claim.overwrote_moves = result.actual_quantity - claim.compare
            claim.compare = result.actual_quantity
    try:
        second = connector.push_quantities(
            [
                _update_for(claim, result.actual_quantity)
                for claim, result in zip(retry, stale, strict=True)
            ]
        )
    except ChannelError as error:
        second = [
            ItemResult(listing_id=claim.listing.pk, status=ItemStatus.RETRY, error=str(error))
            for claim in retry
        ]
    second_by_listing = {result.listing_id: result for result in second}
    return [second_by_listing.get(result.listing_id, result) for result in results]


def _drift_params(claims: Sequence[_Claim]) -> dict[str, Any] | None:
    """The parameters of ``_RECORD_DRIFT_SQL`` for the claims that found drift, if any."""
    drifted = [(claim, claim.drift) for claim in claims if claim.drift is not None]
    if not drifted:
        return None
    return {
        "drift_detected_by": str(DriftRecord.DetectedBy.COMPARE_AND_SET),
        "drift_listing_ids": [claim.listing.pk for claim, _ in drifted],
        "drift_compares": [compared for _, (compared, _found) in drifted],
        "drift_moves_at_claim": [claim.channel_moves_at_claim for claim, _ in drifted],
        "drift_found": [found for _, (_compared, found) in drifted],
        "drift_targets": [claim.target for claim, _ in drifted],
    }


def _record_drift(channel: Channel, claims: Sequence[_Claim]) -> None:
    """Drift found by claims whose write did not go through (those that did: with it)."""
    if (drift := _drift_params(claims)) is not None:
        with connection.cursor() as cursor:
            cursor.execute(_RECORD_DRIFT_SQL, {"channel_id": channel.pk, **drift})


def _settle_results(
    channel: Channel,
    connector: Connector,
    by_listing: dict[int, _Claim],
    results: list[ItemResult],
    sent_at: dt.datetime,
    *,
    count_races: bool = True,
) -> _BatchOutcome:
    acked_at = timezone.now()
    applied = [by_listing[r.listing_id] for r in results if r.status == ItemStatus.APPLIED]
    # Stale even after the overwrite: the channel moved again between our read and our
    # write (a hot listing selling fast). Contention, not a failure of the channel: claimed
    # again at once by this run and not counted towards the dead letter, for a few rounds;
    # a listing that keeps moving after those counts as failed (count_races).
    raced = [
        (by_listing[r.listing_id], r.error or str(r.status))
        for r in results
        if r.status == ItemStatus.STALE
    ]
    failed = [
        (by_listing[r.listing_id], r.error or str(r.status))
        for r in results
        if r.status
        not in (ItemStatus.APPLIED, ItemStatus.STALE, ItemStatus.PENDING, ItemStatus.HELD)
    ]
    _hold_until_the_channel_takes_them(
        [(by_listing[r.listing_id], r) for r in results if r.status == ItemStatus.HELD]
    )
    submitted = [(by_listing[r.listing_id], r) for r in results if r.status == ItemStatus.PENDING]
    refused = {r.listing_id for r in results if r.status == ItemStatus.REJECTED}
    changed_in_flight = _remember_applied(channel, applied, sent_at, acked_at) if applied else 0
    if submitted:
        changed_in_flight += _remember_submitted(
            channel, connector, submitted, sent_at, accepted_at=acked_at
        )
    _record_drift(channel, [claim for claim, _ in raced + failed])
    for claim, error in raced:
        _record_attempts(channel, [claim], sent_at, PushAttempt.Outcome.STALE, error)
    for claim, error in failed:
        _record_attempts(channel, [claim], sent_at, PushAttempt.Outcome.REJECTED, error)
    if raced and not count_races:
        _hold([claim for claim, _ in raced], seconds=0)
        changed_in_flight += len(raced)
        raced_to_fail = []
    else:
        raced_to_fail = raced
    if not failed and not raced_to_fail:
        return _BatchOutcome(changed_in_flight=changed_in_flight, raced=len(raced))
    # Refused for good (an item the channel does not have, not stocked where we push it):
    # sending it again changes nothing, so it is a dead letter at once, for an operator to
    # fix and replay.
    delays = [
        _fail(channel, [claim], error, final=claim.listing.pk in refused)
        for claim, error in failed + raced_to_fail
    ]
    pending_delays = [delay for delay in delays if delay is not None]
    if pending_delays:
        # Items that still have tries left come back after their backoff, via the queue.
        enqueue.enqueue_push(channel_id=channel.pk, countdown=min(pending_delays))
    return _BatchOutcome(changed_in_flight=changed_in_flight, raced=len(raced))


def _remember_submitted(
    channel: Channel,
    connector: Connector,
    submitted: Sequence[tuple[_Claim, ItemResult]],
    sent_at: dt.datetime,
    *,
    accepted_at: dt.datetime,
) -> int:
    """Items an asynchronous write accepted: owed no more, waiting to be settled.

    The outbox rows go (unless changed meanwhile: those stay owed, as after a write that
    applied); what the channel holds is known only once ``settle_submissions`` hears the
    outcome, so the sync state is left alone. How many changed in flight.
    """
    with transaction.atomic():
        for claim, result in submitted:
            SubmittedWrite.objects.update_or_create(
                listing_id=claim.listing.pk,
                defaults={
                    "channel_id": channel.pk,
                    "submission_id": result.submission_id,
                    "quantity": claim.target,
                    "change_at": claim.first_change_at,
                    "submitted_at": sent_at,
                    "attempt_number": claim.attempts + 1,
                },
            )
        claims = [claim for claim, _ in submitted]
        # Acknowledged (accepted) but not applied: no latency yet, it runs to "applied".
        _record_attempts(
            channel, claims, sent_at, PushAttempt.Outcome.SUBMITTED, "", acked_at=accepted_at
        )
        changed_in_flight = _finish(claims)
    enqueue.enqueue_settlement(
        channel_id=channel.pk, countdown=connector.submission_poll_interval_s
    )
    return changed_in_flight


def settle_submissions(*, channel_id: int) -> int:
    """Ask the channel how its waiting submissions ended, and settle those that did.

    Applied: remembered as pushed and expected (the latency runs to "applied"). Refused:
    a dead letter. Failed, may succeed again: the listing is owed a fresh push, with the
    master's figure of that moment (the write is absolute). Still pending: asked again
    after the connector's poll interval. How many were settled.
    """
    channel = Channel.objects.filter(pk=channel_id).first()
    if channel is None:
        return 0
    waiting = list(SubmittedWrite.objects.filter(channel_id=channel_id).select_related("listing"))
    if not waiting:
        return 0
    connector = get_connector(channel)
    try:
        outcomes = connector.read_submissions(
            [
                SubmissionRef(
                    listing_id=write.listing_id,
                    submission_id=write.submission_id,
                    external_id=write.listing.external_id,
                    quantity=write.quantity,
                )
                for write in waiting
            ]
        )
    except ChannelError as error:
        logger.info("cannot read submissions of %s yet: %s", channel.slug, error)
        outcomes = []
    _observe_rate_budget(channel, connector)
    by_listing = {outcome.listing_id: outcome for outcome in outcomes}
    settled = 0
    for write in waiting:
        outcome = by_listing.get(write.listing_id)
        if outcome is not None and outcome.status != ItemStatus.PENDING:
            settled += _settle_submission(channel, write, outcome)
    if SubmittedWrite.objects.filter(channel_id=channel_id).exists():
        enqueue.enqueue_settlement(
            channel_id=channel_id, countdown=connector.submission_poll_interval_s
        )
    return settled


def sweep_submitted_writes(*, older_than_s: float = 60) -> int:
    """Wake the settlement of every channel with a write waiting longer than that; how many.

    The net under the settlement each submission schedules (a lost broker message).
    """
    cutoff = timezone.now() - dt.timedelta(seconds=older_than_s)
    channel_ids = set(
        SubmittedWrite.objects.filter(submitted_at__lt=cutoff)
        .values_list("channel_id", flat=True)
        .distinct()
    )
    for channel_id in channel_ids:
        enqueue.enqueue_settlement(channel_id=channel_id, countdown=0)
    return len(channel_ids)


@transaction.atomic
def _settle_submission(channel: Channel, write: SubmittedWrite, outcome: ItemResult) -> int:
    """Settle one item, unless a newer submission replaced it meanwhile (then 0)."""
    current = (
        SubmittedWrite.objects.select_for_update()
        .filter(listing_id=write.listing_id, submission_id=write.submission_id)
        .first()
    )
    if current is None:
        return 0
    now = timezone.now()
    if outcome.status == ItemStatus.APPLIED:
        ListingSyncState.objects.update_or_create(
            listing_id=current.listing_id,
            defaults={
                "last_pushed_quantity": current.quantity,
                "last_pushed_at": now,
                "expected_channel_quantity": current.quantity,
            },
        )
        PushAttempt.objects.create(
            channel=channel,
            listing_id=current.listing_id,
            target_quantity=current.quantity,
            outcome=PushAttempt.Outcome.APPLIED,
            attempt_number=current.attempt_number,
            change_at=current.change_at,
            sent_at=current.submitted_at,
            acked_at=now,
            latency_ms=(now - current.change_at).total_seconds() * 1000,
        )
    elif outcome.status == ItemStatus.REJECTED:
        DeadLetter.objects.create(
            channel=channel,
            listing_id=current.listing_id,
            target_quantity=current.quantity,
            attempts=[{"at": now.isoformat(), "error": outcome.error[:2000]}],
        )
    else:
        outbox.mark_listings_owed(listing_ids=[current.listing_id])
    current.delete()
    return 1


def _hold_until_the_channel_takes_them(held: Sequence[tuple[_Claim, ItemResult]]) -> None:
    """Let held claims go until the time the platform gave, with its reason for the
    operator; no attempt counted (the platform refused nothing), and a change meanwhile
    only updates the figure that goes out then. The outbox sweep wakes them when due."""
    now = timezone.now()
    for claim, result in held:
        PendingPush.objects.filter(pk=claim.pending_id).update(
            claimed_until=None,
            not_before=max(result.hold_until or now, now),
            held_reason=result.error[:500],
            # The try its claim counted is given back: nothing was sent.
            attempts=Greatest(F("attempts") - 1, 0),
        )


def _hold(claims: Sequence[_Claim], *, seconds: float) -> None:
    """Let the claims go, owed again in ``seconds`` (0: at once), no attempt counted."""
    _update_owed(
        claims,
        claimed_until=None,
        not_before=timezone.now() + dt.timedelta(seconds=seconds),
        attempts=Greatest(F("attempts") - 1, 0),
    )


@retried_on_deadlock  # the channel has the figures already: only our record runs again
def _remember_applied(
    channel: Channel, applied: list[_Claim], sent_at: dt.datetime, acked_at: dt.datetime
) -> int:
    """Outbox rows first (locked in listing order), then sync states: the order a stock
    change's transaction takes them in (trigger, then ingest)."""
    # Outbox rows, sync states, then the drift those writes went over: one query, one
    # round trip, and (outside a transaction) one implicit transaction.
    drift = _drift_params(applied)
    statements = [_LOCK_OWED_ROWS_SQL, _FINISH_SQL, _REMEMBER_APPLIED_SQL]
    if drift is not None:
        statements.append(_RECORD_DRIFT_SQL)
    with connection.cursor() as cursor:
        cursor.execute(
            ";\n".join(statements),
            {
                **(drift or {}),
                "ids": [claim.pending_id for claim in applied],
                "generations": [claim.generation for claim in applied],
                "channel_id": channel.pk,
                "listing_ids": [claim.listing.pk for claim in applied],
                "quantities": [claim.target for claim in applied],
                "compares": [claim.compare for claim in applied],
                "attempt_numbers": [claim.attempts + 1 for claim in applied],
                "change_ats": [claim.first_change_at for claim in applied],
                "moves_at_claim": [claim.channel_moves_at_claim for claim in applied],
                "overwrote_moves": [claim.overwrote_moves for claim in applied],
                "unexplained_wait_s": UNEXPLAINED_MOVES_WAIT_S,
                "sent_at": sent_at,
                "acked_at": acked_at,
            },
        )
        cursor.nextset()  # past the locks, to the rows _FINISH_SQL left owed
        return len(cursor.fetchall())


# Attempts other than applied writes (stale, refused, failed, throttled, submitted), in one
# prepared statement: through the ORM, building and inserting them cost a twelfth of a push
# run.
_RECORD_ATTEMPTS_SQL = """
INSERT INTO channels_pushattempt
       (channel_id, listing_id, target_quantity, compare_quantity, outcome, error,
        attempt_number, change_at, sent_at, acked_at)
SELECT %(channel_id)s, attempt.listing_id, attempt.target, attempt.compare, %(outcome)s,
       %(error)s, attempt.attempt_number, attempt.change_at, %(sent_at)s,
       %(acked_at)s::timestamptz
  FROM unnest(%(listing_ids)s::bigint[], %(targets)s::integer[], %(compares)s::integer[],
              %(attempt_numbers)s::integer[], %(change_ats)s::timestamptz[])
       AS attempt(listing_id, target, compare, attempt_number, change_at)
"""


def _record_attempts(
    channel: Channel,
    claims: Sequence[_Claim],
    sent_at: dt.datetime,
    outcome: str,
    error: str,
    *,
    acked_at: dt.datetime | None = None,
) -> None:
    if not claims:
        return
    prepared_sql.fetch(
        _RECORD_ATTEMPTS_SQL,
        {
            "channel_id": channel.pk,
            "outcome": str(outcome),
            "error": error[:2000],
            "sent_at": sent_at,
            "acked_at": acked_at,
            "listing_ids": [claim.listing.pk for claim in claims],
            "targets": [claim.target for claim in claims],
            "compares": [claim.compare for claim in claims],
            "attempt_numbers": [claim.attempts + 1 for claim in claims],
            "change_ats": [claim.first_change_at for claim in claims],
        },
    )


def retry_delay_s(*, channel: Channel, attempts: int) -> float:
    """Exponential backoff with full jitter around it: base x 2^(n-1) x [0.5, 1.5)."""
    base = float(channel.platform_settings.get("retry_base_s", DEFAULT_RETRY_BASE_S))
    delay = base * (2 ** max(attempts - 1, 0)) * (0.5 + random.random())
    return min(delay, MAX_RETRY_DELAY_S)


def _fail(
    channel: Channel,
    claims: Sequence[_Claim],
    error: str,
    *,
    at_least_s: float | None = None,
    final: bool = False,
) -> float | None:
    """Count a failed attempt; dead-letter what has no tries left (or, ``final``, no use
    for them). The next try's delay.

    The claims of one failed call come back together, after one delay: sent again as the
    same batch, they carry the same batch idempotency key, so a call that timed out after
    the platform applied it is answered from the platform's record, not applied again.
    """
    now = timezone.now()
    delays = []
    most_attempts = max((claim.attempts for claim in claims), default=0) + 1
    batch_delay = max(retry_delay_s(channel=channel, attempts=most_attempts), at_least_s or 0)
    with transaction.atomic():
        for claim in claims:
            attempts = claim.attempts + 1
            errors = [*claim.errors, {"at": now.isoformat(), "error": error[:2000]}]
            if final or attempts >= channel.max_push_attempts:
                _dead_letter(channel, claim, errors)
                continue
            delay = batch_delay
            delays.append(delay)
            PendingPush.objects.filter(pk=claim.pending_id).update(
                attempts=attempts,
                errors=errors,
                target_quantity=claim.target,
                claimed_until=None,
                not_before=now + dt.timedelta(seconds=delay),
            )
    return min(delays) if delays else None


def _dead_letter(channel: Channel, claim: _Claim, errors: list[dict[str, str]]) -> None:
    DeadLetter.objects.create(
        channel=channel,
        listing=claim.listing,
        target_quantity=claim.target,
        attempts=errors,
    )
    # A change that came in meanwhile still owes its own push, with fresh tries.
    _finish([claim])
    logger.warning(
        "push of %s to listing %s on %s is a dead letter after %d attempts",
        claim.target,
        claim.listing.pk,
        channel.slug,
        len(errors),
    )
